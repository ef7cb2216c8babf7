"""k-fold cross-validation of a recipe on its training file (`dlcli cross-validate`).

Fold k trains on the other k - 1 blocks and evaluates on block k (see tasks/held_out.py), with
the recipe's settings and seed. Each fold's best dev score flatters it, being chosen on the fold it
reports; the score to choose settings by, and to expect of a model trained for a fixed number of
epochs, is the best point of the fold-mean curve (`at_best`): the mean over the folds of the metric
at each evaluation, at the evaluation where that mean peaks.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
from pathlib import Path

from dlcli import registry, training
from dlcli.errors import RecipeError
from dlcli.plots import read_metrics_log
from dlcli.run_outputs import Outputs
from dlcli.tasks.held_out import HeldOutData


def cross_validate(recipe_path: Path, folds: int, overrides: list[str], data_dir: str | None = None,
                   keep: Path | None = None, console=None) -> dict:
    """Train the recipe once per fold; returns {"metric", "folds", "per_fold", "by_eval", "at_best",
    "best_mean"} (see the module). `keep`: a folder for the folds' checkpoints, else they go."""
    recipe = registry.load_recipe(recipe_path, overrides)
    if not isinstance(recipe.data, HeldOutData):
        raise RecipeError(f"cross-validate: the {recipe.task} task's data cannot be cut into folds",
                          "cross-validate classify and tag recipes")
    if folds < 2:
        raise RecipeError(f"--folds: {folds} is not a cross-validation; give 2 or more")
    with tempfile.TemporaryDirectory(prefix="dlcli-cv-") as scratch:
        where = Path(keep) if keep else Path(scratch)
        where.mkdir(parents=True, exist_ok=True)
        logs, summaries = [], []
        for fold in range(folds):
            # the held-out fold is the only dev split
            data = dataclasses.replace(recipe.data, dev=None, dev_from_train=None, folds=folds, fold=fold)
            fold_recipe = dataclasses.replace(recipe, data=data)
            if console is not None:
                console.print(f"fold {fold + 1} of {folds}")
            out = where / f"fold{fold}.pt"
            summaries.append(training.run(fold_recipe, Path(recipe_path), out, data_dir, False, console,
                                          overwrite=True))
            logs.append([r for r in read_metrics_log(Outputs.of(out).log) if "dev" in r])
    metric = summaries[0]["metric"]
    return summarize(metric, registry.task_adapter(recipe.task).metrics[metric], summaries, logs, keep)


def summarize(metric: str, higher: bool, summaries: list[dict], logs: list[list[dict]], keep: Path | None) -> dict:
    """The report of `cross_validate` from each fold's training summary and dev evaluations;
    `higher`: whether a higher `metric` is better."""
    per_fold = [{"fold": k, "best": s.get("best"), "best_step": s.get("best_step"), "evaluations": len(log)}
                | ({"checkpoint": s["checkpoint"]} if keep else {}) for k, (s, log) in enumerate(zip(summaries, logs))]
    # Folds stopped early have fewer evaluations: the curve runs as far as every fold got.
    reached = min(len(log) for log in logs)
    by_eval = []
    for i in range(reached):
        values = [log[i]["dev"][metric] for log in logs]
        by_eval.append({"epoch": logs[0][i]["epoch"], "step": logs[0][i]["step"], **_spread(values)})
    report = {"metric": metric, "folds": len(summaries), "per_fold": per_fold, "by_eval": by_eval}
    if by_eval:
        pick = max if higher else min
        report["at_best"] = pick(by_eval, key=lambda row: row["mean"])
    bests = [s["best"] for s in summaries if s.get("best") is not None]
    if bests:
        report["best_mean"] = _spread(bests)
    return report


def _spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}
