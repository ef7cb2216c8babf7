"""Learning-rate schedules: the lr at given steps, against the closed-form values."""

from __future__ import annotations

import pytest
import torch

from dlcli import schedules


def optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def lrs(scheduler, steps: int) -> list[float]:
    """The lr used at steps 0..steps-1."""
    out = []
    for _ in range(steps):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def test_constant():
    assert lrs(schedules.constant(optimizer(0.3), 10, 5), 4) == [0.3] * 4


@pytest.mark.parametrize("knobs", [{"warmup_steps": 2}, {"warmup_ratio": 0.2}])
def test_warmup_linear(knobs):
    got = lrs(schedules.warmup_linear(optimizer(), 10, 5, **knobs), 11)
    want = [0.5, 1.0] + [1.0 - s / 8 for s in range(9)]  # 2 warm-up steps, then 8 to reach 0
    assert got == pytest.approx(want)


def test_warmup_linear_floor():
    got = lrs(schedules.warmup_linear(optimizer(), 10, 5, final_ratio=0.1), 12)
    assert got[0] == 1.0 and got[10] == pytest.approx(0.1) and got[11] == pytest.approx(0.1)


def test_inverse_time_defaults_to_one_epoch():
    got = lrs(schedules.inverse_time(optimizer(), 100, 4), 13)
    assert got[4] == pytest.approx(0.5) and got[12] == pytest.approx(0.25)
    got = lrs(schedules.inverse_time(optimizer(), 100, 4, decay_rate=0.5, decay_steps=1), 3)
    assert got == pytest.approx([1.0, 1 / 1.5, 0.5])


def test_step_per_epoch_and_per_step():
    by_epoch = lrs(schedules.step(optimizer(), 100, 3, step_size=2, gamma=0.5), 13)
    assert by_epoch[5] == 1.0 and by_epoch[6] == 0.5 and by_epoch[12] == pytest.approx(0.25)
    by_step = lrs(schedules.step(optimizer(), 100, 3, step_size=2, gamma=0.5, unit="step"), 5)
    assert by_step == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25])
    with pytest.raises(ValueError):
        schedules.step(optimizer(), 100, 3, unit="fortnight")


def test_plateau_cuts_after_patience_evaluations_without_improvement():
    opt = optimizer()
    scheduler = schedules.plateau(opt, 100, 3, factor=0.5, patience=1)
    assert schedules.steps_on_metric(scheduler)
    seen = []
    for score in (0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7):
        scheduler.step(score)
        seen.append(opt.param_groups[0]["lr"])
    assert seen == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_only_plateau_steps_on_the_metric():
    others = [fn(optimizer(), 10, 5) for name, fn in schedules.SCHEDULES.items() if name != "plateau"]
    assert not any(schedules.steps_on_metric(s) for s in others)
