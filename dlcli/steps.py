"""Step strategies: how one batch of training examples changes the weights.

The recipe names the strategy through `train.optimizer.type`: any torch optimizer trains by
autograd (`AutogradStep`); `hogwild_sgd` and `hogwild_adagrad` hand each batch to the model's own
compiled loop (`HogwildStep`: fastText's and word2vec's per-example lock-free SGD, GloVe's AdaGrad).
A strategy refuses, as a RecipeError naming the key, every setting it cannot honour, so one recipe
never trains a different algorithm on another device. It also owns the randomness of training:
the trainer hands it each epoch's seed for the batch order and each step's seed. torch is imported
only by AutogradStep.
"""

from __future__ import annotations

from dlcli.device import Placement
from dlcli.errors import RecipeError
from dlcli.schedules import LearningRate
from dlcli.threads import kernel_threads


class HogwildSGD(LearningRate):
    """Plain SGD whose updates the model's kernel makes in place: this optimizer only carries the
    learning rate that the schedule sets, so schedules, logging and resume work unchanged, and a
    model without torch needs none here."""

    def __init__(self, params, *, lr: float = 0.1):
        super().__init__(params, lr=lr)


class HogwildAdaGrad(HogwildSGD):
    """AdaGrad whose updates (and squared-gradient sums, kept in the model's buffers) the model's
    kernel makes in place: GloVe's. Carries the base learning rate."""

    def __init__(self, params, *, lr: float = 0.05):
        super().__init__(params, lr=lr)


class AutogradStep:
    """Collate, loss, backward, clip, the optimizer's step: every model, device and precision."""

    def __init__(self, model, net, task, optimizer, cfg, placement: Placement, precision: str,
                 threads: int | None = None):  # torch's threads: set by training.run before the model is built
        import torch

        self.model, self.net, self.task, self.optimizer = model, net, task, optimizer
        self.cfg, self.device, self.precision = cfg, placement.device, precision
        self.scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16" and self.device.type == "cuda")

    @staticmethod
    def check(recipe, task, placement: Placement | None = None) -> None:
        """Everything goes."""

    def batches(self, batch_size: int, seed: int) -> list[list[int]]:
        import torch

        return self.task.train_batches(batch_size, torch.Generator().manual_seed(seed))

    def __call__(self, indices: list[int], lr: float, check_finite, seed: int) -> float:
        """One update; `seed` seeds torch's random stream (dropout) for this step."""
        import torch
        from torch import nn

        from dlcli.device import autocast

        if self.device.type == "cpu":  # torch.manual_seed also queues CUDA/XPU/MTIA seeding: ~1 ms a step
            torch.random.default_generator.manual_seed(seed)
        else:
            torch.manual_seed(seed)
        self.model.train()
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
    """The model's `hogwild_step(batch, lr, threads, seed)` over the task's kernel batches, on
    --threads CPU threads, else every CPU (one with `train.deterministic`). Plain SGD on the CPU in
    one fp32 process by nature; it needs no torch, so a model of NumPy tables trains without it."""

    def __init__(self, model, net, task, optimizer, cfg, placement: Placement, precision: str,
                 threads: int | None = None):
        self.model, self.task, self.optimizer = model, task, optimizer
        self.threads = 1 if cfg.deterministic else threads or kernel_threads()

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

    def batches(self, batch_size: int, seed: int) -> list:
        return self.task.kernel_batches(batch_size, seed, parts=self.threads)

    def __call__(self, indices: list[int], lr: float, check_finite, seed: int) -> float:
        """One kernel pass; `seed` (the step's) seeds the kernel's random stream."""
        value = self.model.hogwild_step(self.task.collate_kernel(indices), lr, self.threads, seed)
        check_finite(value)
        return value

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


# train.optimizer types that train with a model's own kernel, and the (task, model type) pairs
# whose models implement it; every other optimizer trains by autograd.
KERNEL_STEPS = {"hogwild_sgd": HogwildStep, "hogwild_adagrad": HogwildStep}
