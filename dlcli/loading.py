"""The loading layer: a checkpoint -> its content (upgraded to the current format) -> task + model.

api.py loads through it for prediction and evaluation, and so does a run that starts from another
checkpoint (`data.init`: MTCNN's later stages now). Only registered task and model types can be
named by a file. `read` needs no torch: prediction backends that run without it (see
`dlcli/numpy_predict.py`) start from its content.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcli import checkpoint
from dlcli.errors import CheckpointError, RecipeError


@dataclass
class LoadedModel:
    """A checkpoint's task adapter and model, ready to predict (eval mode, on its device)."""

    path: Path
    data: dict  # the checkpoint's content
    task: Any
    model: Any

    @property
    def recipe(self) -> dict:
        return self.data["recipe"]

    @property
    def predict_defaults(self) -> dict:
        return predict_defaults(self.data)

    @property
    def input_kind(self) -> str:
        return self.task.input_kind

    def check_options(self, options: dict) -> None:
        self.task.check_options(options)

    def predict(self, ids: list, inputs: list, options: dict) -> list[dict]:
        return self.task.predict(self.model, ids, inputs, options)

    def generate(self, ids: list, prompts: list, options: dict, on_text=None) -> list[dict]:
        return self.task.generate(self.model, ids, prompts, options, on_text)


def predict_defaults(content: dict) -> dict:
    """The checkpoint's `predict` section: the inference options a caller does not give."""
    return dict(content["recipe"].get("predict") or {})


def read(name: str | os.PathLike) -> tuple[Path, dict]:
    """(path, content) of a checkpoint file or shipped model name, without importing torch."""
    path = checkpoint.resolve_model(name)
    return path, checkpoint.read(path)


def load_model(name: str | os.PathLike, device: str = "cpu", content: dict | None = None) -> LoadedModel:
    """Rebuild task and model; `content`: the checkpoint's, if the caller has read it already."""
    from dlcli import registry
    from dlcli.device import resolve_device

    path = checkpoint.resolve_model(name)
    data = content if content is not None else checkpoint.read(path)
    try:
        adapter = registry.task_adapter(data["task"])
        if adapter.autograd:
            data = checkpoint.as_torch(data)
        task = adapter.from_checkpoint(data)
        builder = registry.lookup(registry.MODELS[data["task"]], data["model"]["type"], "model.type")
        if adapter.autograd:
            model = build_loaded(builder, task.model_sizes(), data["model"]["kwargs"], data["state_dict"])
        else:  # NumPy tables, adopted as read (mapped from the file)
            model = builder(*task.model_sizes(), **data["model"]["kwargs"])
            model.load_state_dict(data["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, RecipeError) as exc:
        raise CheckpointError(f"{path}: checkpoint content does not fit dlcli "
                              f"{data.get('dlcli_version')}'s models: {exc}") from None
    if adapter.autograd:
        model.to(resolve_device(device))
    elif device not in ("cpu", "auto"):
        raise RecipeError(f"--device {device}: a {data['task']} model is NumPy tables on the CPU", "use --device cpu")
    model.eval()
    return LoadedModel(path, data, task, model)


def build_loaded(builder, sizes: tuple, kwargs: dict, state: dict):
    """The model holding `state`, built on the meta device so no initial weights are drawn (seconds
    for a 200M-row fastText table). Tensors whose dtypes match are adopted (memory-mapped from the
    file); others are cast (float16 shipped weights). Buffers a model computes in its constructor
    and does not save (a CRF's transition constraints) are taken from one real build, on a forked
    random state so that loading never moves the caller's random stream."""
    import torch

    with torch.device("meta"):
        model = builder(*sizes, **kwargs)
    own = model.state_dict()
    state = {k: v.to(own[k].dtype) if k in own and own[k].dtype != v.dtype else v for k, v in state.items()}
    model.load_state_dict(state, assign=True)
    unsaved = {name for name, b in model.named_buffers() if b.is_meta}
    if unsaved:
        with torch.random.fork_rng(devices=[]):
            real = dict(builder(*sizes, **kwargs).named_buffers())
        for name in unsaved:
            owner, _, leaf = name.rpartition(".")
            model.get_submodule(owner).register_buffer(leaf, real[name], persistent=False)
    return model
