"""Step strategies: how one batch of training examples changes the weights.

The recipe names the strategy through `train.optimizer.type`: any torch optimizer trains by
autograd (`AutogradStep`); `hogwild_sgd` and `hogwild_adagrad` hand each batch to the model's own
compiled loop (`HogwildStep`: fastText's and word2vec's per-example lock-free SGD, GloVe's AdaGrad).
A strategy refuses, as a RecipeError naming the key, every setting it cannot honour, so one recipe
never trains a different algorithm on another device.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from dlcli.device import Placement, autocast
from dlcli.errors import RecipeError


class HogwildSGD(torch.optim.Optimizer):
    """Plain SGD whose updates the model's kernel makes in place; this optimizer only carries the
    learning rate that the schedule sets, so schedules, logging and resume work unchanged."""

    def __init__(self, params, *, lr: float = 0.1):
        if not lr > 0:
            raise ValueError(f"lr must be above 0, not {lr}")
        super().__init__(params, {"lr": lr})

    def step(self, closure=None):  # the kernel has already moved the weights
        return None

    # torch wraps these in a lazy import of torch._dynamo (about 70 MB and 1.5 s on first use), which
    # an optimizer that only carries a learning rate for a compiled kernel never needs: take them plain.
    add_param_group = inspect.unwrap(torch.optim.Optimizer.add_param_group)
    state_dict = inspect.unwrap(torch.optim.Optimizer.state_dict)
    load_state_dict = inspect.unwrap(torch.optim.Optimizer.load_state_dict)
    zero_grad = inspect.unwrap(torch.optim.Optimizer.zero_grad)


class HogwildAdaGrad(HogwildSGD):
    """AdaGrad whose updates (and squared-gradient sums, kept in the model's buffers) the model's
    kernel makes in place: GloVe's. Carries the base learning rate."""

    def __init__(self, params, *, lr: float = 0.05):
        super().__init__(params, lr=lr)


class AutogradStep:
    """Collate, loss, backward, clip, the optimizer's step: every model, device and precision."""

    def __init__(self, model: nn.Module, net: nn.Module, task, optimizer, cfg, placement: Placement,
                 precision: str):
        self.model, self.net, self.task, self.optimizer = model, net, task, optimizer
        self.cfg, self.device, self.precision = cfg, placement.device, precision
        self.scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16" and self.device.type == "cuda")

    @staticmethod
    def check(recipe, task, placement: Placement | None = None) -> None:
        """Everything goes."""

    def batches(self, batch_size: int, generator: torch.Generator) -> list[list[int]]:
        return self.task.train_batches(batch_size, generator)

    def __call__(self, indices: list[int], lr: float, check_finite) -> float:
        batch = {k: v.to(self.device, non_blocking=True) for k, v in self.task.collate(indices).items()}
        with autocast(self.device, self.precision):
            loss = self.task.loss(self.net, batch)
        value = float(loss.detach())
        check_finite(value)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return value

    def state_dict(self) -> dict:
        return {"scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.scaler.load_state_dict(state["scaler"])


class HogwildStep:
    """The model's `hogwild_step(batch, lr, threads)` over the task's kernel batches, on every CPU
    thread (one with `train.deterministic`). Plain SGD on the CPU in one fp32 process by nature."""

    def __init__(self, model: nn.Module, net: nn.Module, task, optimizer, cfg, placement: Placement,
                 precision: str):
        self.model, self.task, self.optimizer = model, task, optimizer
        self.threads = 1 if cfg.deterministic else torch.get_num_threads()

    @staticmethod
    def check(recipe, task, placement: Placement | None = None) -> None:
        """Refuse what lock-free per-example SGD on the CPU cannot do. `task` is the task adapter's
        class: the hints offer autograd only where its models can train that way. `placement`
        (known once the run starts) adds the resolved device and torchrun's world size."""
        kind = recipe.train.optimizer.type
        why = f"{kind} is a model's own lock-free kernel on the CPU threads of one process"
        if task.autograd:
            alternative = ", or another train.optimizer (e.g. sgd) to train by autograd"
        else:
            alternative = f" (a {recipe.model.type} model of task {recipe.task} trains with its kernel only)"
        if str(recipe.device).startswith(("cuda", "mps")):
            raise RecipeError(f"device: {recipe.device} with train.optimizer {kind}: {why}",
                              f"use device: cpu{alternative}")
        if placement is not None and placement.device.type != "cpu":
            raise RecipeError(f"device: {recipe.device} resolved to {placement.device}; {why}",
                              f"use device: cpu{alternative}")
        if recipe.precision != "fp32":
            raise RecipeError(f"precision: {recipe.precision} with train.optimizer {kind}: it trains in fp32",
                              f"use precision: fp32{alternative}")
        if recipe.train.grad_clip:
            raise RecipeError(f"train.grad_clip: {kind} updates per example and clips nothing",
                              f"remove train.grad_clip{alternative}")
        if placement is not None and placement.distributed:
            raise RecipeError(f"train.optimizer: {kind} trains in one process, not {placement.world_size} "
                              "torchrun ranks", f"run without torchrun{alternative}")

    def batches(self, batch_size: int, generator: torch.Generator) -> list[list[int]]:
        return self.task.kernel_batches(batch_size, generator, parts=self.threads)

    def __call__(self, indices: list[int], lr: float, check_finite) -> float:
        value = self.model.hogwild_step(self.task.collate_kernel(indices), lr, self.threads)
        check_finite(value)
        self.optimizer.step()  # a no-op that keeps the schedule's step-order check quiet
        return value

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


# train.optimizer types that train with a model's own kernel, and the (task, model type) pairs
# whose models implement it; every other optimizer trains by autograd.
KERNEL_STEPS = {"hogwild_sgd": HogwildStep, "hogwild_adagrad": HogwildStep}
