"""Device choice, precision, seeding and distributed (torchrun) set-up."""

from __future__ import annotations

import os
import random
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlcli.errors import RecipeError


@dataclass(frozen=True)
class HostCPU:
    """The CPU, for a run whose models hold no torch (NumPy tables trained by a kernel): it reads
    as a torch.device does where a run asks (`.type`, `.index`, str)."""

    type: str = "cpu"
    index: None = None

    def __str__(self) -> str:
        return "cpu"


@dataclass(frozen=True)
class Placement:
    device: Any  # a torch.device, or HostCPU for a run without torch
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str = "auto"):
    """The torch.device that `name` (auto, cpu, cuda, cuda:N, mps) means on this machine."""
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RecipeError(f"device: unknown device {name!r}", "use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RecipeError(f"device: {name} asked for, but no CUDA GPU is visible", "use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RecipeError(f"device: {name} asked for, but only {torch.cuda.device_count()} GPU(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise RecipeError("device: mps asked for, but it is not available", "use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise RecipeError(f"device: unsupported device {name!r}", "use auto, cpu, cuda, cuda:N or mps")
    return device


def host_placement() -> Placement:
    """The CPU of this process, for models without torch; under torchrun, its rank (for the
    kernel step to refuse)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    return Placement(HostCPU(), int(os.environ.get("RANK", "0")) if world_size > 1 else 0, max(1, world_size))


def setup_placement(name: str) -> Placement:
    """One process, or one rank of a torchrun job (WORLD_SIZE > 1 in the environment)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Placement(resolve_device(name))
    import torch
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Placement(device, rank, world_size)


def wrap_distributed(model, placement: Placement):
    """The module that runs forward in training: under torchrun, DistributedDataParallel around `model`."""
    if not placement.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [placement.device.index] if placement.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrapped(net):
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    from torch.nn.parallel import DistributedDataParallel

    return net.module if isinstance(net, DistributedDataParallel) else net


def teardown_placement(placement: Placement) -> None:
    if placement.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def seed_everything(seed: int, deterministic: bool = False, torch_too: bool = True) -> None:
    """Python's, NumPy's and (unless `torch_too` is False: a run without torch) torch's generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if not torch_too:
        return
    import torch

    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def autocast(device, precision: str):
    """Mixed precision on CUDA (and bf16 on CPU); a no-op for fp32."""
    if precision == "fp32" or device.type not in ("cuda", "cpu"):
        return nullcontext()
    if device.type == "cpu" and precision == "fp16":
        raise RecipeError("precision: fp16 needs a CUDA device", "use bf16 or fp32 on CPU")
    import torch

    return torch.autocast(device.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[precision])
