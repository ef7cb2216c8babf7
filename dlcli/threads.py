"""How many CPU threads a prediction command or a training kernel uses (`--threads`), decided
without importing torch."""

from __future__ import annotations

import os
import sys

from dlcli.errors import RecipeError

# bench/inference_threads.py measured every shipped model with 1 and 2 threads on 2 cores, idle and
# beside two busy processes (docs/benchmarks.md, "Threads for prediction"): idle, one thread was
# 2-19% slower (mtcnn the most); busy, it was as fast or up to 1.7x faster (zh-seg 10.0 s vs 17.5 s).
# Shared machines are the common case, so one thread it is.
DEFAULT_INFERENCE_THREADS = 1


def inference_threads(requested: int | None = None) -> int:
    """`requested`, else $OMP_NUM_THREADS when it is a positive number, else the measured default."""
    if requested is not None:
        if requested < 1:
            raise RecipeError(f"--threads: {requested} is below 1")
        return requested
    return _env_threads() or DEFAULT_INFERENCE_THREADS


def kernel_threads() -> int:
    """A training kernel's threads when --threads is not given: $OMP_NUM_THREADS if set (as torch
    reads it), else every CPU this process may run on."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return _env_threads() or cpus


def _env_threads() -> int | None:
    """$OMP_NUM_THREADS when it is a positive number."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) > 0 else None


def set_inference_threads(requested: int | None = None) -> int:
    """Apply the thread count to torch when a torch model is in use (a torch-free predictor has no
    threads to set); returns it."""
    threads = inference_threads(requested)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    return threads
