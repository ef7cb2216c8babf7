"""A training run from a recipe: read the data, build the task and model, optimise with the
recipe's step strategy, write the checkpoint. Task-agnostic: everything task-specific comes
through the adapter contract (dlcli/tasks/__init__.py). A task whose models hold no torch
(`autograd = False`: NumPy tables trained by their kernels) trains without importing torch."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from dlcli import checkpoint, loading, registry, run_outputs
from dlcli.device import host_placement, seed_everything, setup_placement, teardown_placement, wrap_distributed
from dlcli.errors import CheckpointError, RecipeError, TrainingError
from dlcli.recipe import Recipe, checkpoint_fields, data_root, path_fields, recipe_warnings, resolve_data_path
from dlcli.tasks import held_out
from dlcli.trainer import Trainer

# Recipe sections that must match for --resume to continue the same run.
_RESUME_KEYS = ("task", "seed", "data", "vocab", "model")


def run(recipe: Recipe, recipe_path: Path, out: Path, data_dir: str | None, resume: bool, console,
        overwrite: bool = False, threads: int | None = None) -> dict:
    """`threads`: CPU threads for torch and for a kernel (default: torch's own, every CPU for a kernel)."""
    if resume and overwrite:
        raise RecipeError("--resume and --overwrite: choose one",
                          "--resume continues the run saved beside --out; --overwrite starts a new one over it")
    parts = registry.resolve_recipe(recipe)
    placement = setup_placement(recipe.device) if parts.adapter.autograd else host_placement()
    try:
        parts.step.check(recipe, parts.adapter, placement)
        outputs = run_outputs.Outputs.of(run_outputs.refuse_directory(Path(out)))
        with run_outputs.claimed(outputs, resume, overwrite, placement) as replaces:
            return _run(recipe, parts, recipe_path, outputs, data_dir, resume, replaces, placement, console, threads)
    finally:
        teardown_placement(placement)


def _run(recipe: Recipe, parts: registry.Resolved, recipe_path: Path, outputs: run_outputs.Outputs, data_dir,
         resume: bool, replaces: bool, placement, console, threads: int | None) -> dict:
    with_torch = parts.adapter.autograd
    if with_torch and threads is not None:
        import torch

        torch.set_num_threads(threads)
    seed_everything(recipe.seed, recipe.train.deterministic, torch_too=with_torch)
    task = _prepare_task(recipe, parts, recipe_path, data_dir)
    builder, model_kwargs = parts.model
    model_kwargs = task.model_kwargs(model_kwargs)
    try:
        model = builder(*task.model_sizes(), **model_kwargs)
    except ValueError as exc:  # a knob the builder refuses, e.g. an unknown pooling
        raise RecipeError(f"model: {exc}", f"fix that value in the {recipe.model.type} model section") from None
    task.prepare_model(model)
    if with_torch:
        model.to(placement.device)

    cfg = recipe.train
    optimizer, scheduler = _optimization(parts, model, task, cfg, placement.world_size)
    resolved = task.stored_recipe(parts.recipe_dict(recipe))
    resolved["model"] = {"type": recipe.model.type, **model_kwargs}  # as completed from the data

    state = _read_state(outputs.state, resolved) if resume else None
    # A run that began over an earlier model writes its best model beside it, and moves it to --out
    # only when it finishes: Ctrl-C, a failure or kill -9 leave the earlier model where it was.
    staged = bool(state.get("staged")) if state is not None else replaces
    target = outputs.partial if staged else outputs.model

    def save_model(module, metrics: dict) -> None:
        checkpoint.save(target, {
            "task": recipe.task, "recipe": resolved,
            "model": {"type": recipe.model.type, "kwargs": model_kwargs},
            **task.payload(), "state_dict": module.state_dict(), "metrics": metrics,
        })

    step = parts.step(model, wrap_distributed(model, placement), task, optimizer, cfg, placement, recipe.precision,
                      threads)
    trainer = Trainer(model, task, cfg, optimizer=optimizer, scheduler=scheduler, step=step, placement=placement,
                      seed=recipe.seed, save_model=save_model, state_path=outputs.state, log_path=outputs.log,
                      console=console)
    if state is not None:
        _apply_state(trainer, state, outputs.state)
    elif placement.is_main:
        run_outputs.start_new(outputs)
    if console is not None and placement.is_main:
        for note in task.notes:
            console.print(f"note: {note}")
        for warning in recipe_warnings(recipe):
            console.print(f"warning: {warning}")
        console.print(_announcement(recipe, task, model, placement, with_torch))
    try:
        progress = trainer.fit({"recipe": resolved, "staged": staged})
    except (KeyboardInterrupt, TrainingError):
        if staged and console is not None and placement.is_main:
            console.print(run_outputs.kept_note(outputs))
        raise
    if placement.is_main:
        run_outputs.finish(outputs, staged)
    summary = {"checkpoint": str(outputs.model), "steps": progress.global_step, "epochs": progress.epoch,
               "metric": trainer.metric, "best_step": progress.best_step}
    if progress.best is not None:
        summary["best"] = trainer.reported(progress.best)
    return summary


def _optimization(parts: registry.Resolved, model, task, cfg, world_size: int):
    steps_per_epoch = max(1, math.ceil(task.num_train / cfg.batch_size) // world_size)
    total = min(cfg.epochs * steps_per_epoch, cfg.max_steps or math.inf)
    params = model.parameters()
    if cfg.layer_lr_decay is not None:  # the top layer at the optimizer's lr, each one below at decay x
        layers = task.layer_groups(model)
        lr = parts.optimizer[1].get("lr", 1.0e-3)
        params = [{"params": group, "lr": lr * cfg.layer_lr_decay ** (len(layers) - 1 - depth)}
                  for depth, group in enumerate(layers) if group]
    return registry.build_optimization(parts, params, int(total), steps_per_epoch)


def _announcement(recipe: Recipe, task, model, placement, with_torch: bool) -> str:
    if with_torch:
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    else:  # NumPy tables
        params = sum(p.size for p in model.parameters())
    ranks = f" x{placement.world_size}" if placement.distributed else ""
    return (f"training {recipe.model.type} on {task.describe()}, {params:,} trained parameters, "
            f"device {placement.device}{ranks}")


def _prepare_task(recipe: Recipe, parts: registry.Resolved, recipe_path: Path, data_dir):
    """The task built from the recipe's data: file names resolved against the data root, the
    checkpoint a run starts from (`data.init`) loaded, train and dev records read."""
    if not recipe.data.train:
        raise RecipeError("data.train: required to train", "name the training file in the recipe")
    data = _resolved_paths(recipe.data, data_root(data_dir), recipe_path.parent)
    init = None
    for name in checkpoint_fields(data):
        if getattr(data, name):
            init = _load_init(getattr(data, name), name)
    carved = isinstance(data, held_out.HeldOutData)  # its dev split may come from the training file
    if carved:
        held_out.check(data)  # before reading: a dev split named twice is refused at once
    train_records = parts.adapter.read(Path(data.train), data)
    dev_records = parts.adapter.read(Path(data.dev), data) if data.dev else None
    if carved:
        train_records, dev_records = held_out.split(train_records, dev_records, data, data.train)
    return parts.adapter.from_records(dataclasses.replace(recipe, data=data), parts.vocabs, train_records,
                                      dev_records, init)


def _resolved_paths(data: Any, root: Path, recipe_dir: Path) -> Any:
    """The data section with every file field (`recipe.data_path`) made a path that exists."""
    def resolve(value):
        if isinstance(value, list):
            return [str(resolve_data_path(v, root, recipe_dir)) for v in value]
        return str(resolve_data_path(value, root, recipe_dir)) if value else value

    return dataclasses.replace(data, **{name: resolve(getattr(data, name)) for name in path_fields(data)})


def _load_init(name: str, field: str) -> loading.LoadedModel:
    try:
        return loading.load_model(name)
    except CheckpointError as exc:
        raise CheckpointError(f"data.{field}: {exc.message}", exc.hint) from None


def _read_state(state_path: Path, resolved: dict) -> dict:
    if not state_path.exists():
        raise CheckpointError(f"nothing to resume: {state_path.resolve()} does not exist",
                              "train without --resume first, with the same --out")
    state = checkpoint.load(state_path, checkpoint.STATE_FORMAT)
    saved = state.get("recipe", {})
    changed = [k for k in _RESUME_KEYS if saved.get(k) != resolved.get(k)]
    if changed:
        raise RecipeError(f"--resume: the recipe's {', '.join(changed)} differ from the saved run's",
                          "resume with the recipe the run started with (epochs may grow)")
    return state


def _apply_state(trainer: Trainer, state: dict, state_path: Path) -> None:
    try:
        trainer.load_state_dict(state["trainer"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{state_path}: train state does not fit this model: {exc}") from None
    trainer.progress.done = False  # resuming may continue past a finished run when epochs grew
