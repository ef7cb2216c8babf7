"""The backend facade: plain Python in and out, no printing; the CLI is a thin layer over it.

It names no task and no model: training goes through dlcli/training.py, loading through
dlcli/loading.py, and prediction through each task's `predict`. Importing it costs no torch,
so a checkpoint with a torch-free prediction backend (see dlcli/numpy_predict.py) starts fast.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import IO, Any

from dlcli import loading, numpy_predict
from dlcli.errors import DataError, RecipeError
from dlcli.loading import LoadedModel, load_model
from dlcli.pathlists import path_lines
from dlcli.text.readers import BadInput, chunked_inputs

__all__ = ["LoadedModel", "load_model", "train", "cross_validate", "load_predictor", "predict", "generate", "evaluate",
           "text_chunks", "input_chunks", "batched", "expect_task"]


def default_output(recipe_path: str | Path) -> Path:
    return Path("runs") / f"{Path(recipe_path).stem}.pt"


# ---------------------------------------------------------------- training


def train(recipe_path: str | Path, *, overrides: Iterable[str] = (), out: str | Path | None = None,
          device: str | None = None, data_dir: str | None = None, resume: bool = False,
          overwrite: bool = False, console=None, threads: int | None = None) -> dict[str, Any]:
    """Train what a recipe describes; returns a summary with the checkpoint path and best score.
    An earlier run's files at `out` need `resume` (continue it) or `overwrite` (replace it).
    `threads`: CPU threads for torch and training kernels (default: torch's own, every CPU for a kernel)."""
    from dlcli import registry, training

    recipe = registry.load_recipe(recipe_path, overrides)
    if device:
        recipe = dataclasses.replace(recipe, device=device)
    out = Path(out) if out else default_output(recipe_path)
    return training.run(recipe, Path(recipe_path), out, data_dir, resume, console, overwrite=overwrite,
                        threads=threads)


def cross_validate(recipe_path: str | Path, folds: int, *, overrides: Iterable[str] = (), data_dir: str | None = None,
                   keep: str | Path | None = None, console=None) -> dict[str, Any]:
    """k-fold cross-validation of a classify or tag recipe on its training file; returns the report
    described in dlcli/cross_validation.py. `keep`: a folder for the folds' checkpoints."""
    from dlcli.cross_validation import cross_validate as run

    return run(Path(recipe_path), folds, list(overrides), data_dir, Path(keep) if keep else None, console)


# ---------------------------------------------------------------- inference


def load_predictor(name: str | os.PathLike, device: str = "cpu", options: Iterable[str] = ()):
    """What predicts with a checkpoint: a torch-free backend where one implements the model and
    every option named in `options` (on the CPU), else the torch model (`load_model`). Both offer
    `data`, `predict_defaults`, `check_options(options)` and `predict(ids, inputs, options)`."""
    path, content = loading.read(name)
    if device == "cpu":
        backend = numpy_predict.backend_for(path, content, set(options))
        if backend is not None:
            return backend
    return load_model(path, device, content)


def predict(predictor, chunks: Iterable[tuple[list, list]], **options) -> Iterator[list[dict]]:
    """JSON-ready records for chunks of (ids, inputs), a list per chunk, in input order. Options
    given (not None) override the checkpoint's `predict` section."""
    return _records(predictor.predict, predictor, chunks, options)


def generate(loaded: LoadedModel, chunks: Iterable[tuple[list, list[str]]], on_text=None,
             **options) -> Iterator[list[dict]]:
    """Records of text generated from chunks of (ids, prompts), as `predict` gives records (a
    prompt may give several: `num_samples`). `on_text`: see the task's `generate`."""
    def run(ids, prompts, merged):
        return loaded.generate(ids, prompts, merged, on_text)

    return _records(run, loaded, chunks, options)


def _records(run, predictor, chunks, options: dict) -> Iterator[list[dict]]:
    merged = {**predictor.predict_defaults, **{k: v for k, v in options.items() if v is not None}}
    predictor.check_options(merged)
    for ids, inputs in chunks:
        if not any(isinstance(x, BadInput) for x in inputs):
            yield run(ids, inputs, merged)
            continue
        # Lines that could not be read (skipped errors) keep their place as error records.
        good = [i for i, x in enumerate(inputs) if not isinstance(x, BadInput)]
        records = run([ids[i] for i in good], [inputs[i] for i in good], merged) if good else []
        out, at = [], 0
        for i, x in zip(ids, inputs):
            if isinstance(x, BadInput):
                out.append({"id": i, "error": x.message})
                continue
            while at < len(records) and records[at]["id"] == i:  # an input may give several records
                out.append(records[at])
                at += 1
        yield out + records[at:]


def expect_task(predictor, task: str, command: str) -> None:
    found = predictor.data["task"]
    if found != task:
        from dlcli import registry

        raise DataError(f"{command} needs a {task} model; this checkpoint is a {found} model",
                        f"use {registry.task_adapter(found).command} with it")


def text_chunks(stream: IO[bytes], source: str = "<stdin>", input_format: str = "text", encoding: str = "utf-8",
                chunk: int = 4096, skip_errors: bool = False) -> Iterator[tuple[list, list[str]]]:
    """(ids, texts) per chunk of input lines: line numbers, or the "id" fields of JSON Lines. A
    line that cannot be read raises a DataError naming it; with `skip_errors` it becomes an error
    record in its place when predicted (see `predict`)."""
    return chunked_inputs(stream, source, input_format, encoding, chunk, skip_errors)


def input_chunks(predictor, stream: IO[bytes], source: str = "<stdin>", input_format: str = "text",
                 encoding: str = "utf-8", skip_errors: bool = False) -> Iterator[tuple[list, list]]:
    """Chunks of what the predictor's task reads from a stream: texts (see text_chunks), or paths
    (one per non-blank line), as many as its `batch_size`."""
    if predictor.input_kind == "text":
        return text_chunks(stream, source, input_format, encoding, skip_errors=skip_errors)
    return batched(path_lines(stream, encoding), int(predictor.predict_defaults.get("batch_size", 8)))


def batched(items: Iterable, size: int) -> Iterator[tuple[list, list]]:
    """(items, items) per batch: inputs that are their own ids, such as image paths."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch, batch


# ---------------------------------------------------------------- evaluation


def evaluate(loaded: LoadedModel, data_path: str | Path, data_overrides: dict | None = None, **options) -> dict:
    """Metrics on a labelled file, read with the checkpoint's data options unless overridden.
    `options` (threshold, iou, ...): those the task's `evaluate_options` declares."""
    from dlcli.recipe import parse_section

    task = loaded.task
    given = {k: v for k, v in options.items() if v is not None}
    foreign = sorted(set(given) - set(task.evaluate_options))
    if foreign:
        raise RecipeError(f"--{foreign[0].replace('_', '-')} does not apply to a {task.name} model",
                          f"its options: {', '.join(sorted(task.evaluate_options)) or 'none'}")
    stored = dict(loaded.recipe.get("data") or {})
    known = {f.name for f in dataclasses.fields(task.data_section)}
    for key, value in (data_overrides or {}).items():
        if value is None:
            continue
        if key not in known:
            raise RecipeError(f"--{key.replace('_', '-')} does not apply to a {task.name} model's data")
        stored[key] = value
    cfg = parse_section(task.data_section, stored, "data")
    path = Path(data_path)
    if not path.exists():
        raise DataError(f"data file not found: {path.resolve()}")
    records = task.read(path, cfg)
    return task.evaluate(loaded.model, records, {**loaded.predict_defaults, **given})
