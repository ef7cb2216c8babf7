"""Learning-rate schedules, each built as (optimizer, total_steps, steps_per_epoch, *, knobs)."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau


def constant(optimizer, total_steps: int, steps_per_epoch: int):
    return LambdaLR(optimizer, lambda step: 1.0)


def warmup_linear(optimizer, total_steps: int, steps_per_epoch: int, *, warmup_steps: int = 0,
                  warmup_ratio: float = 0.0, final_ratio: float = 0.0):
    """Linear warm-up from 0, then linear decay to final_ratio * lr at the last step."""
    warmup = warmup_steps or int(warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        span = max(1, total_steps - warmup)
        return max(final_ratio, 1.0 - (1.0 - final_ratio) * (step - warmup) / span)

    return LambdaLR(optimizer, factor)


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

    return LambdaLR(optimizer, factor)


def inverse_sqrt(optimizer, total_steps: int, steps_per_epoch: int, *, warmup_steps: int = 4000):
    """Linear warm-up to lr over warmup_steps, then lr x sqrt(warmup_steps / step): the
    Transformer's schedule (Vaswani et al. 2017, eq. 3) with the recipe's lr as its peak."""
    if warmup_steps < 1:
        raise ValueError(f"warmup_steps must be at least 1, got {warmup_steps}")

    def factor(step: int) -> float:
        step += 1
        return min(step / warmup_steps, math.sqrt(warmup_steps / step))

    return LambdaLR(optimizer, factor)


def inverse_time(optimizer, total_steps: int, steps_per_epoch: int, *, decay_rate: float = 1.0,
                 decay_steps: int | None = None):
    """lr / (1 + decay_rate * step / decay_steps); decay_steps defaults to one epoch."""
    every = decay_steps or steps_per_epoch
    return LambdaLR(optimizer, lambda step: 1.0 / (1.0 + decay_rate * step / every))


def step(optimizer, total_steps: int, steps_per_epoch: int, *, step_size: int = 1,
         gamma: float = 0.1, unit: str = "epoch"):
    """Multiply lr by gamma every step_size epochs (or optimizer steps with unit: step)."""
    if unit not in ("epoch", "step"):
        raise ValueError("unit must be epoch or step")
    every = step_size * (steps_per_epoch if unit == "epoch" else 1)
    return LambdaLR(optimizer, lambda s: gamma ** (s // max(1, every)))


def step_after(optimizer, total_steps: int, steps_per_epoch: int, *, start_epoch: int = 1, factor: float = 0.5):
    """lr for the first start_epoch epochs, then multiplied by factor at the start of each later
    epoch (Zaremba et al. 2014: 4 epochs then 0.5 for the small PTB model, 6 then 1/1.2 medium)."""
    if start_epoch < 0:
        raise ValueError(f"start_epoch must be 0 or more, not {start_epoch}")
    every = max(1, steps_per_epoch)
    return LambdaLR(optimizer, lambda s: factor ** max(0, s // every - start_epoch + 1))


def plateau(optimizer, total_steps: int, steps_per_epoch: int, *, factor: float = 0.5,
            patience: int = 1, min_lr: float = 0.0, threshold: float = 1.0e-4):
    """Multiply lr by factor when the dev metric stops improving (stepped after each evaluation)."""
    return ReduceLROnPlateau(optimizer, mode="max", factor=factor, patience=patience,
                             min_lr=min_lr, threshold=threshold)


def steps_on_metric(scheduler) -> bool:
    return isinstance(scheduler, ReduceLROnPlateau)


OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta,
}

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
