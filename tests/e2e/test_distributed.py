"""Data-parallel training under torchrun: two CPU processes over gloo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from helpers import TINY_FASTTEXT

from dlcli import api, checkpoint


def torchrun(*args: str, timeout: float = 120) -> tuple[int, str, str]:
    # --standalone: a local rendezvous on a free port, so parallel test runs do not collide
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "dlcli", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the workers too, not only torchrun
        stdout, stderr = process.communicate()
        pytest.fail(f"torchrun did not finish in {timeout} s; stderr:\n{stderr[-3000:]}")
    return process.returncode, stdout, stderr


def test_two_process_training_writes_one_summary_and_a_model_that_learned(dataset, tmp_path):
    recipe = dataset.recipe(model=TINY_FASTTEXT, train={"epochs": 4})
    out = tmp_path / "ddp.pt"
    code, stdout, stderr = torchrun("train", str(recipe), "--device", "cpu", "--out", str(out), "--quiet")
    assert code == 0, stderr[-3000:]
    (line,) = stdout.splitlines()  # one summary, from rank 0 only
    summary = json.loads(line)
    assert summary["checkpoint"] == str(out)
    assert summary["steps"] == 4 * (8 // 2)  # 8 batches an epoch, shared by 2 ranks
    assert summary["best"] >= 0.9
    report = api.evaluate(api.load_model(out), dataset.dev)
    assert report["accuracy"] == pytest.approx(summary["best"])
    log = checkpoint.sidecar(out, "metrics.jsonl").read_text().splitlines()
    assert len(log) == 4  # rank 0 alone writes the log
