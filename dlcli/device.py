"""Device choice, precision, seeding and distributed (torchrun) set-up."""

from __future__ import annotations

import os
import random
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from dlcli.errors import RecipeError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Placement:
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str = "auto") -> torch.device:
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


def setup_placement(name: str) -> Placement:
    """One process, or one rank of a torchrun job (WORLD_SIZE > 1 in the environment)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Placement(resolve_device(name))
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Placement(device, rank, world_size)


def wrap_distributed(model: torch.nn.Module, placement: Placement) -> torch.nn.Module:
    """The module that runs forward in training: under torchrun, DistributedDataParallel around `model`."""
    if not placement.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [placement.device.index] if placement.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrapped(net: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    from torch.nn.parallel import DistributedDataParallel

    return net.module if isinstance(net, DistributedDataParallel) else net


def teardown_placement(placement: Placement) -> None:
    if placement.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def autocast(device: torch.device, precision: str):
    """Mixed precision on CUDA (and bf16 on CPU); a no-op for fp32."""
    if precision == "fp32" or device.type not in ("cuda", "cpu"):
        return nullcontext()
    if device.type == "cpu" and precision == "fp16":
        raise RecipeError("precision: fp16 needs a CUDA device", "use bf16 or fp32 on CPU")
    return torch.autocast(device.type, dtype=_DTYPES[precision])
