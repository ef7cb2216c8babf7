"""The backend facade: plain Python in and out, no printing; the CLI is a thin layer over it."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch

from dlcli import checkpoint, registry
from dlcli.device import resolve_device, seed_everything, setup_placement, teardown_placement
from dlcli.errors import CheckpointError, DataError, RecipeError
from dlcli.recipe import DataConfig, Recipe, data_root, load_recipe, parse_section, resolve_data_path
from dlcli.tasks.classify_output import predict_options
from dlcli.text.readers import chunked_inputs
from dlcli.trainer import LOWER_IS_BETTER, Trainer

# Recipe sections that must match for --resume to continue the same run.
_RESUME_KEYS = ("task", "seed", "data", "vocab", "model")


def default_output(recipe_path: str | Path) -> Path:
    return Path("runs") / f"{Path(recipe_path).stem}.pt"


def sidecar(out: Path, suffix: str) -> Path:
    """Files that live next to a checkpoint: `model.pt` -> `model.metrics.jsonl`, ..."""
    return out.with_name(f"{out.stem}.{suffix}")


# ---------------------------------------------------------------- training


def train(recipe_path: str | Path, *, overrides: Iterable[str] = (), out: str | Path | None = None,
          device: str | None = None, data_dir: str | None = None, resume: bool = False,
          console=None) -> dict[str, Any]:
    """Train what a recipe describes; returns a summary with the checkpoint path and best score."""
    recipe = load_recipe(recipe_path, list(overrides))
    if device:
        recipe = dataclasses.replace(recipe, device=device)
    parts = registry.resolve_recipe(recipe)
    out = Path(out) if out else default_output(recipe_path)
    placement = setup_placement(recipe.device)
    try:
        return _train(recipe, parts, Path(recipe_path), out, data_dir, resume, placement, console)
    finally:
        teardown_placement(placement)


def _train(recipe: Recipe, parts: registry.Resolved, recipe_path: Path, out: Path, data_dir, resume: bool,
           placement, console):
    seed_everything(recipe.seed, recipe.train.deterministic)
    task = _prepare_task(recipe, parts, recipe_path, data_dir)
    builder, model_kwargs = parts.model
    try:
        model = builder(*task.model_sizes(), **model_kwargs)
    except ValueError as exc:  # a knob the builder refuses, e.g. an unknown pooling
        raise RecipeError(f"model: {exc}", f"fix that value in the {recipe.model.type} model section") from None
    task.min_length = getattr(model, "min_length", 1)
    if hasattr(task, "init_model"):  # e.g. a detector's later stage starts from the earlier ones
        task.init_model(model)
    if recipe.data.vectors:
        task.notes = [*getattr(task, "notes", ()), _init_vectors(model, task, recipe, recipe_path, data_dir)]
    model.to(placement.device)

    cfg = recipe.train
    optimizer, scheduler = _optimization(parts, model, task.num_train, cfg, placement.world_size)
    resolved = parts.recipe_dict(recipe)

    def save_model(module: torch.nn.Module, metrics: dict) -> None:
        checkpoint.save(out, {
            "task": recipe.task, "recipe": resolved,
            "model": {"type": recipe.model.type, "kwargs": model_kwargs},
            **task.payload(), "state_dict": module.state_dict(), "metrics": metrics,
        })

    state_path, log_path = sidecar(out, "train-state.pt"), sidecar(out, "metrics.jsonl")
    trainer = Trainer(model, task, cfg, optimizer=optimizer, scheduler=scheduler, placement=placement,
                      seed=recipe.seed, precision=recipe.precision, save_model=save_model,
                      state_path=state_path, log_path=log_path, console=console)
    if resume:
        _restore(trainer, state_path, resolved)
    elif placement.is_main:
        out.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("", encoding="utf-8")
    if console is not None and placement.is_main:
        for note in getattr(task, "notes", ()):
            console.print(f"note: {note}")
        console.print(_announcement(recipe, task, model, placement))
    progress = trainer.fit({"recipe": resolved})
    best = trainer.metric
    summary = {"checkpoint": str(out), "steps": progress.global_step, "epochs": progress.epoch,
               "metric": best, "best_step": progress.best_step}
    if progress.best is not None:
        summary["best"] = -progress.best if best in LOWER_IS_BETTER else progress.best
    return summary


def _optimization(parts: registry.Resolved, model, num_train: int, cfg, world_size: int):
    steps_per_epoch = max(1, math.ceil(num_train / cfg.batch_size) // world_size)
    total = min(cfg.epochs * steps_per_epoch, cfg.max_steps or math.inf)
    return registry.build_optimization(parts, model.parameters(), int(total), steps_per_epoch)


def _announcement(recipe: Recipe, task, model, placement) -> str:
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    ranks = f" x{placement.world_size}" if placement.distributed else ""
    what = task.describe() if hasattr(task, "describe") else \
        f"{len(task.labels)} labels, vocabulary {task.vocab.size:,}"
    return (f"training {recipe.model.type} on {task.num_train:,} examples, {what}, {params:,} trained parameters, "
            f"device {placement.device}{ranks}")


def _prepare_task(recipe: Recipe, parts: registry.Resolved, recipe_path: Path, data_dir):
    root = data_root(data_dir)
    if not recipe.data.train:
        raise RecipeError("data.train: required to train", "name the training file in the recipe")

    def resolve(name: str) -> str:
        return str(resolve_data_path(name, root, recipe_path.parent))

    data = recipe.data
    if data.extra_train or data.backgrounds:  # data files an adapter reads itself
        data = dataclasses.replace(data, extra_train=[resolve(name) for name in data.extra_train],
                                   backgrounds=resolve(data.backgrounds) if data.backgrounds else None)
    train_records = parts.adapter.read(Path(resolve(data.train)), data)
    dev_records = parts.adapter.read(Path(resolve(data.dev)), data) if data.dev else None
    vocab_builder, vocab_kwargs = parts.vocab
    return parts.adapter.from_records(vocab_builder, vocab_kwargs, data, train_records, dev_records)


def _init_vectors(model, task, recipe: Recipe, recipe_path: Path, data_dir) -> str:
    from dlcli.text.vectors import init_embedding

    table = getattr(model, "embedding", None)
    index = getattr(task.vocab, "index", None)
    if not isinstance(table, torch.nn.Embedding) or index is None:
        raise RecipeError(f"data.vectors: a {recipe.model.type} model over a {recipe.vocab.type} vocabulary has no "
                          "word embedding to initialise", "use vocab type word or char")
    path = resolve_data_path(recipe.data.vectors, data_root(data_dir), recipe_path.parent)
    found = init_embedding(table, index, task.vocab.lowercase, path, recipe.data.vectors_format, recipe.data.encoding)
    hook = getattr(model, "after_init_vectors", None)
    if hook is not None:  # e.g. TextCNN's multichannel starts its fixed channel from the same table
        hook()
    return f"{path}: initialised {found:,} of {len(index):,} vocabulary words"


def _restore(trainer: Trainer, state_path: Path, resolved: dict) -> None:
    if not state_path.exists():
        raise CheckpointError(f"nothing to resume: {state_path.resolve()} does not exist",
                              "train without --resume first, with the same --out")
    state = checkpoint.load(state_path, checkpoint.STATE_FORMAT)
    saved = state.get("recipe", {})
    changed = [k for k in _RESUME_KEYS if saved.get(k) != resolved.get(k)]
    if changed:
        raise RecipeError(f"--resume: the recipe's {', '.join(changed)} differ from the saved run's",
                          "resume with the recipe the run started with (epochs may grow)")
    try:
        trainer.load_state_dict(state["trainer"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{state_path}: train state does not fit this model: {exc}") from None
    trainer.progress.done = False  # resuming may continue past a finished run when epochs grew


# ---------------------------------------------------------------- inference


@dataclass
class LoadedModel:
    data: dict
    task: Any
    model: torch.nn.Module

    @property
    def recipe(self) -> dict:
        return self.data["recipe"]


def load_model(path: str | Path, device: str = "cpu", data: dict | None = None) -> LoadedModel:
    """Rebuild a model from a checkpoint; only registered types can be named by the file.
    `data`: the checkpoint's content if the caller has read it already (`checkpoint.read`)."""
    path = checkpoint.resolve_model(path)
    data = checkpoint.as_torch(data) if data is not None else checkpoint.load(path)
    try:
        task = registry.task_adapter(data["task"]).from_checkpoint(data)
        builder = registry.lookup(registry.MODELS[data["task"]], data["model"]["type"], "model.type")
        model = _rebuild(builder, task.model_sizes(), data["model"]["kwargs"], data["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, RecipeError) as exc:
        raise CheckpointError(f"{path}: checkpoint content does not fit dlcli "
                              f"{data.get('dlcli_version')}'s models: {exc}") from None
    model.to(resolve_device(device)).eval()
    return LoadedModel(data, task, model)


@contextlib.contextmanager
def _without_weight_init():
    """torch.nn.init's in-place initialisers become no-ops: a model about to receive a checkpoint's
    tensors skips drawing random ones (seconds for a 200M-row fastText table)."""
    names = [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(torch.nn.init, n) for n in names}
    for name in names:
        setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


def _rebuild(builder, sizes: tuple, kwargs: dict, state: dict) -> torch.nn.Module:
    """The model holding `state`, adopting its (memory-mapped) tensors where their dtypes match,
    copying (and casting, e.g. float16 shipped weights) where not."""
    with _without_weight_init():
        model = builder(*sizes, **kwargs)
    own = model.state_dict()
    model.load_state_dict(state, assign=all(k in own and own[k].dtype == v.dtype for k, v in state.items()))
    return model


def classify(loaded: LoadedModel, stream: IO[bytes], source: str = "<stdin>", *,
             input_format: str = "text", encoding: str = "utf-8", top_k: int | None = None,
             threshold: float | None = None, batch_size: int | None = None, explain: bool = False,
             chunk: int = 4096) -> Iterator[list[dict]]:
    """Classify a stream of texts; yields lists of JSON-ready records in input order."""
    _expect_task(loaded, "classify", "dlcli classify")
    top_k, threshold, batch_size = predict_options(loaded.recipe, top_k, threshold, batch_size)
    for ids, texts in chunked_inputs(stream, source, input_format, encoding, chunk):
        yield loaded.task.predict(loaded.model, ids, texts, top_k, threshold, batch_size, explain)


def tag(loaded: LoadedModel, stream: IO[bytes], source: str = "<stdin>", *, input_format: str = "text",
        encoding: str = "utf-8", batch_size: int | None = None, n_best: int | None = None,
        chunk: int = 2048) -> Iterator[list[dict]]:
    """Tag a stream of sentences (one per line); yields lists of records in input order."""
    _expect_task(loaded, "tag", "dlcli tag")
    batch_size = batch_size or loaded.recipe.get("predict", {}).get("batch_size", 128)
    for ids, texts in chunked_inputs(stream, source, input_format, encoding, chunk):
        yield loaded.task.predict(loaded.model, ids, texts, batch_size, n_best)


def _expect_task(loaded: LoadedModel, task: str, command: str) -> None:
    if loaded.data["task"] != task:
        other = {"classify": "dlcli classify", "tag": "dlcli tag"}.get(loaded.data["task"], "another command")
        raise DataError(f"{command} needs a {task} model; this checkpoint is a {loaded.data['task']} model",
                        f"use {other} with it")


def evaluate(loaded: LoadedModel, data_path: str | Path, data_overrides: dict | None = None,
             threshold: float | None = None, iou: float | None = None) -> dict:
    """Metrics on a labelled file, read with the checkpoint's data options unless overridden.

    iou: face detectors only, the overlap a detection needs to count as a hit for `ap` (0.5).
    """
    detector = loaded.data["task"] == "detect_faces"
    if iou is not None and not detector:
        raise RecipeError(f"--iou applies to face detectors; this checkpoint is a {loaded.data['task']} model")
    if iou is not None and not 0 < iou <= 1:
        raise RecipeError(f"--iou must be above 0 and at most 1, not {iou}")
    stored = dict(loaded.recipe.get("data", {}))
    stored.update({k: v for k, v in (data_overrides or {}).items() if v is not None})
    cfg = parse_section(DataConfig, stored, "data")
    path = Path(data_path)
    if not path.exists():
        raise DataError(f"data file not found: {path.resolve()}")
    records = loaded.task.read(path, cfg)
    if threshold is None:
        threshold = loaded.recipe.get("predict", {}).get("threshold")
    if detector:
        return loaded.task.evaluate(loaded.model, records, threshold, iou=0.5 if iou is None else iou)
    return loaded.task.evaluate(loaded.model, records, threshold)


