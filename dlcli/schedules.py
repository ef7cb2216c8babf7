"""Learning-rate schedules, each built as (optimizer, total_steps, steps_per_epoch, *, knobs).

Over a torch optimizer a schedule is torch's LambdaLR (or ReduceLROnPlateau); over a
`LearningRate`, the optimizer of a model that trains with its own kernel and may hold no torch at
all, it is `FactorSchedule` (or `Plateau`): the same learning rates, step for step, and state
dicts that read torch's (a run saved before these existed resumes).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable


class LearningRate:
    """An optimizer that only carries the learning rate a schedule sets, in `param_groups` as a
    torch optimizer does, for a model whose own kernel makes the updates."""

    def __init__(self, params, *, lr: float):
        if not lr > 0:
            raise ValueError(f"lr must be above 0, not {lr}")
        self.param_groups = [{"lr": float(lr)}]

    def step(self, closure=None) -> None:  # the kernel has already moved the weights
        return None

    def zero_grad(self, set_to_none: bool = True) -> None:
        return None

    def state_dict(self) -> dict:
        return {"state": {}, "param_groups": [{"lr": self.param_groups[0]["lr"]}]}

    def load_state_dict(self, state: dict) -> None:
        self.param_groups[0]["lr"] = float(state["param_groups"][0]["lr"])


class FactorSchedule:
    """torch's LambdaLR over a LearningRate: lr = base lr x factor(steps taken)."""

    def __init__(self, optimizer: LearningRate, factor: Callable[[int], float]):
        self.optimizer, self.factor = optimizer, factor
        self.base_lr = optimizer.param_groups[0]["lr"]
        self.last_epoch = 0  # LambdaLR's name for the steps taken
        self._apply()

    def _apply(self) -> None:
        self.optimizer.param_groups[0]["lr"] = self.base_lr * self.factor(self.last_epoch)

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "base_lrs": [self.base_lr]}

    def load_state_dict(self, state: dict) -> None:
        self.last_epoch, self.base_lr = int(state["last_epoch"]), float(state["base_lrs"][0])


class Plateau:
    """torch's ReduceLROnPlateau (mode max, relative threshold, no cooldown) over a LearningRate."""

    def __init__(self, optimizer: LearningRate, *, factor: float, patience: int, min_lr: float, threshold: float):
        if not 0 < factor < 1:
            raise ValueError(f"factor must lie in (0, 1), not {factor}")
        self.optimizer, self.factor, self.patience = optimizer, factor, patience
        self.min_lr, self.threshold = min_lr, threshold
        self.best, self.num_bad_epochs, self.last_epoch = -math.inf, 0, 0

    def step(self, metric: float) -> None:
        self.last_epoch += 1
        if metric > self.best * (1.0 + self.threshold):  # torch's test, whatever the sign
            self.best, self.num_bad_epochs = metric, 0
        else:
            self.num_bad_epochs += 1
        if self.num_bad_epochs > self.patience:
            group = self.optimizer.param_groups[0]
            new = max(group["lr"] * self.factor, self.min_lr)
            if group["lr"] - new > 1e-8:
                group["lr"] = new
            self.num_bad_epochs = 0

    def state_dict(self) -> dict:
        return {"best": self.best, "num_bad_epochs": self.num_bad_epochs, "last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.num_bad_epochs = float(state["best"]), int(state["num_bad_epochs"])
        self.last_epoch = int(state["last_epoch"])


def _by_factor(optimizer, factor: Callable[[int], float]):
    if isinstance(optimizer, LearningRate):
        return FactorSchedule(optimizer, factor)
    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, factor)


def constant(optimizer, total_steps: int, steps_per_epoch: int):
    return _by_factor(optimizer, lambda step: 1.0)


def warmup_linear(optimizer, total_steps: int, steps_per_epoch: int, *, warmup_steps: int = 0,
                  warmup_ratio: float = 0.0, final_ratio: float = 0.0):
    """Linear warm-up from 0, then linear decay to final_ratio * lr at the last step."""
    warmup = warmup_steps or int(warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        span = max(1, total_steps - warmup)
        return max(final_ratio, 1.0 - (1.0 - final_ratio) * (step - warmup) / span)

    return _by_factor(optimizer, factor)


def warmup_cosine(optimizer, total_steps: int, steps_per_epoch: int, *, warmup_steps: int = 0,
                  warmup_ratio: float = 0.0, final_ratio: float = 0.0):
    """Linear warm-up from 0, then half a cosine down to final_ratio * lr at the last step (the
    GPT recipe: Radford et al. 2018 warm up over 2,000 updates and anneal to 0 on a cosine)."""
    warmup = warmup_steps or int(warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        done = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * done))

    return _by_factor(optimizer, factor)


def inverse_sqrt(optimizer, total_steps: int, steps_per_epoch: int, *, warmup_steps: int = 4000):
    """Linear warm-up to lr over warmup_steps, then lr x sqrt(warmup_steps / step): the
    Transformer's schedule (Vaswani et al. 2017, eq. 3) with the recipe's lr as its peak."""
    if warmup_steps < 1:
        raise ValueError(f"warmup_steps must be at least 1, got {warmup_steps}")

    def factor(step: int) -> float:
        step += 1
        return min(step / warmup_steps, math.sqrt(warmup_steps / step))

    return _by_factor(optimizer, factor)


def inverse_time(optimizer, total_steps: int, steps_per_epoch: int, *, decay_rate: float = 1.0,
                 decay_steps: int | None = None):
    """lr / (1 + decay_rate * step / decay_steps); decay_steps defaults to one epoch."""
    every = decay_steps or steps_per_epoch
    return _by_factor(optimizer, lambda step: 1.0 / (1.0 + decay_rate * step / every))


def step(optimizer, total_steps: int, steps_per_epoch: int, *, step_size: int = 1,
         gamma: float = 0.1, unit: str = "epoch"):
    """Multiply lr by gamma every step_size epochs (or optimizer steps with unit: step)."""
    if unit not in ("epoch", "step"):
        raise ValueError("unit must be epoch or step")
    every = step_size * (steps_per_epoch if unit == "epoch" else 1)
    return _by_factor(optimizer, lambda s: gamma ** (s // max(1, every)))


def step_after(optimizer, total_steps: int, steps_per_epoch: int, *, start_epoch: int = 1, factor: float = 0.5):
    """lr for the first start_epoch epochs, then multiplied by factor at the start of each later
    epoch (Zaremba et al. 2014: 4 epochs then 0.5 for the small PTB model, 6 then 1/1.2 medium)."""
    if start_epoch < 0:
        raise ValueError(f"start_epoch must be 0 or more, not {start_epoch}")
    every = max(1, steps_per_epoch)
    return _by_factor(optimizer, lambda s: factor ** max(0, s // every - start_epoch + 1))


def plateau(optimizer, total_steps: int, steps_per_epoch: int, *, factor: float = 0.5,
            patience: int = 1, min_lr: float = 0.0, threshold: float = 1.0e-4):
    """Multiply lr by factor when the dev metric stops improving (stepped after each evaluation)."""
    if isinstance(optimizer, LearningRate):
        return Plateau(optimizer, factor=factor, patience=patience, min_lr=min_lr, threshold=threshold)
    from torch.optim.lr_scheduler import ReduceLROnPlateau

    return ReduceLROnPlateau(optimizer, mode="max", factor=factor, patience=patience,
                             min_lr=min_lr, threshold=threshold)


def steps_on_metric(scheduler) -> bool:
    if isinstance(scheduler, Plateau):
        return True
    torch_schedulers = sys.modules.get("torch.optim.lr_scheduler")  # loaded wherever a torch scheduler exists
    return torch_schedulers is not None and isinstance(scheduler, torch_schedulers.ReduceLROnPlateau)

SCHEDULES = {
    "constant": constant,
    "warmup_linear": warmup_linear,
    "warmup_cosine": warmup_cosine,
    "inverse_sqrt": inverse_sqrt,
    "inverse_time": inverse_time,
    "step": step,
    "step_after": step_after,
    "plateau": plateau,
}
