"""The optimizers of kernel-trained models carry the scheduled lr and resume it without loading
torch at all (a model of NumPy tables trains without it; torch's own optimizer methods would also
pull in torch._dynamo, about 70 MB)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from dlcli import schedules
from dlcli.steps import HogwildAdaGrad, HogwildSGD
for cls in (HogwildSGD, HogwildAdaGrad):
    opt = cls([], lr=0.1)
    sched = schedules.warmup_linear(opt, 10, 5)
    opt.step(); sched.step()
    saved, saved_sched = opt.state_dict(), sched.state_dict()
    fresh = cls([], lr=0.1)
    fresh_sched = schedules.warmup_linear(fresh, 10, 5)
    fresh.load_state_dict(saved); fresh_sched.load_state_dict(saved_sched); fresh.zero_grad()
    assert abs(fresh.param_groups[0]["lr"] - 0.09) < 1e-12, fresh.param_groups[0]["lr"]
    fresh.step(); fresh_sched.step()
    assert abs(fresh.param_groups[0]["lr"] - 0.08) < 1e-12, fresh.param_groups[0]["lr"]
print(sorted(name for name in ("torch", "torch._dynamo") if name in sys.modules))
"""


def test_kernel_optimizers_schedule_and_resume_without_torch():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
