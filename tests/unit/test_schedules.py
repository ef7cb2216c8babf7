"""Learning-rate schedules: the lr at given steps, against the closed-form values, over a torch
optimizer and over a kernel's LearningRate alike; the LearningRate's schedules read torch's states."""

from __future__ import annotations

import pytest
import torch

from dlcli import schedules


@pytest.fixture(params=["torch", "plain"])
def make(request):
    """An optimizer with a given lr: torch's SGD, or the LearningRate of a kernel-trained model."""
    def build(lr: float = 1.0):
        if request.param == "plain":
            return schedules.LearningRate([], lr=lr)
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)

    return build


def lrs(scheduler, steps: int) -> list[float]:
    """The lr used at steps 0..steps-1."""
    out = []
    for _ in range(steps):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def test_constant(make):
    assert lrs(schedules.constant(make(0.3), 10, 5), 4) == [0.3] * 4


@pytest.mark.parametrize("knobs", [{"warmup_steps": 2}, {"warmup_ratio": 0.2}])
def test_warmup_linear(knobs, make):
    got = lrs(schedules.warmup_linear(make(), 10, 5, **knobs), 11)
    want = [0.5, 1.0] + [1.0 - s / 8 for s in range(9)]  # 2 warm-up steps, then 8 to reach 0
    assert got == pytest.approx(want)


def test_warmup_linear_floor(make):
    got = lrs(schedules.warmup_linear(make(), 10, 5, final_ratio=0.1), 12)
    assert got[0] == 1.0 and got[10] == pytest.approx(0.1) and got[11] == pytest.approx(0.1)


def test_inverse_time_defaults_to_one_epoch(make):
    got = lrs(schedules.inverse_time(make(), 100, 4), 13)
    assert got[4] == pytest.approx(0.5) and got[12] == pytest.approx(0.25)
    got = lrs(schedules.inverse_time(make(), 100, 4, decay_rate=0.5, decay_steps=1), 3)
    assert got == pytest.approx([1.0, 1 / 1.5, 0.5])


def test_step_per_epoch_and_per_step(make):
    by_epoch = lrs(schedules.step(make(), 100, 3, step_size=2, gamma=0.5), 13)
    assert by_epoch[5] == 1.0 and by_epoch[6] == 0.5 and by_epoch[12] == pytest.approx(0.25)
    by_step = lrs(schedules.step(make(), 100, 3, step_size=2, gamma=0.5, unit="step"), 5)
    assert by_step == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25])
    with pytest.raises(ValueError):
        schedules.step(make(), 100, 3, unit="fortnight")


def test_plateau_cuts_after_patience_evaluations_without_improvement(make):
    opt = make()
    scheduler = schedules.plateau(opt, 100, 3, factor=0.5, patience=1)
    assert schedules.steps_on_metric(scheduler)
    seen = []
    for score in (0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7):
        scheduler.step(score)
        seen.append(opt.param_groups[0]["lr"])
    assert seen == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_only_plateau_steps_on_the_metric(make):
    others = [fn(make(), 10, 5) for name, fn in schedules.SCHEDULES.items() if name != "plateau"]
    assert not any(schedules.steps_on_metric(s) for s in others)


def test_the_plain_schedules_resume_from_torch_s_states():
    """A run saved when kernel optimizers were torch optimizers under LambdaLR resumes."""
    torch_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    torch_sched = schedules.warmup_linear(torch_opt, 10, 5)
    for _ in range(3):
        torch_opt.step()
        torch_sched.step()
    plain = schedules.LearningRate([], lr=0.1)
    plain_sched = schedules.warmup_linear(plain, 10, 5)
    plain.load_state_dict(torch_opt.state_dict())
    plain_sched.load_state_dict(torch_sched.state_dict())
    for _ in range(4):
        assert plain.param_groups[0]["lr"] == pytest.approx(torch_opt.param_groups[0]["lr"])
        torch_opt.step()
        torch_sched.step()
        plain_sched.step()


def test_the_plain_plateau_follows_torch_s_on_any_scores():
    scores = [0.5, -0.2, -0.2, -0.1, 0.0, 0.0, 0.0, 0.3, 0.30001, 0.2, 0.2, 0.2, 0.9]
    torch_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    plain = schedules.LearningRate([], lr=1.0)
    pair = [schedules.plateau(opt, 100, 3, factor=0.5, patience=1, min_lr=0.2) for opt in (torch_opt, plain)]
    for score in scores:
        for scheduler in pair:
            scheduler.step(score)
        assert plain.param_groups[0]["lr"] == torch_opt.param_groups[0]["lr"]
    assert plain.param_groups[0]["lr"] == 0.2
