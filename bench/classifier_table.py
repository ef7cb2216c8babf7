"""Benchmark: dev accuracy and training time of every classifier on SST-2, TREC, MR and ChnSentiCorp.

Trains each model's shipped SST-2 recipe (recipes/classify/<model>_sst2.yaml; a model without
one is skipped with a note) on each dataset with `dlcli train`, changing only the data: the
dataset's own train/dev files and, for ChnSentiCorp (Chinese, no spaces), a character
vocabulary with the recipe's vocabulary knobs that a character vocabulary takes, texts cut
to their first 64 characters and at most 4 epochs (the texts run to thousands of characters,
and a recurrent model reads every one). Each cell's best dev accuracy and wall time (start-up and dev evaluations
included) are cached as JSON under runs/table/, so a rerun trains only missing cells and
cells whose recipe or overrides changed (`--force` retrains). Every job runs with
OMP_NUM_THREADS=1; `--jobs` run side by side. The section "## Classifier dev accuracy (SST-2,
TREC, MR, ChnSentiCorp)" of docs/benchmarks.md is replaced by a table of all cached cells.

    DLCLI_DATA_DIR=../shared/datasets python bench/classifier_table.py
    DLCLI_DATA_DIR=../shared/datasets python bench/classifier_table.py --models lstm gru --datasets sst2 trec
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import hashlib
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from _report import replace_section

from dlcli.registry import load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "classify"
CACHE = ROOT / "runs" / "table"
HEADING = "## Classifier dev accuracy (SST-2, TREC, MR, ChnSentiCorp)"
# column order in the table; cells train in --datasets order (default: the cheap, wanted ones first)
DATASETS = {"sst2": "SST-2", "trec": "TREC", "mr": "MR", "chnsenticorp_htl": "ChnSentiCorp"}
RUN_ORDER = ["sst2", "trec", "chnsenticorp_htl", "mr"]
CHINESE = {"chnsenticorp_htl"}
# ChnSentiCorp texts run to thousands of characters (median 243): read the first 64, for at most
# 4 epochs, so that a recurrent model trains in minutes at 1 thread as on the English sets
CHINESE_MAX_CHARS = 64
CHINESE_MAX_EPOCHS = 4


def classifier_models() -> list[str]:
    """Every registered classify model, TextCNN first."""
    from dlcli.registry import MODELS

    return sorted(MODELS["classify"], key=lambda name: name != "textcnn")


def recipe_path(model: str) -> Path:
    return RECIPES / f"{model}_sst2.yaml"


def overrides(recipe: Path, dataset: str) -> list[str]:
    """The --set values that retarget an SST-2 recipe at `dataset`."""
    sets = [f"data.train={dataset}/train.tsv", f"data.dev={dataset}/dev.tsv"]
    if dataset in CHINESE:
        epochs = min(load_recipe(recipe).train.epochs, CHINESE_MAX_EPOCHS)
        sets += [f"vocab={json.dumps(char_vocab(recipe))}", f"data.max_length={CHINESE_MAX_CHARS}",
                 f"train.epochs={epochs}"]
    return sets


def char_vocab(recipe: Path) -> dict:
    """The recipe's vocabulary section as a character vocabulary, without knobs that one lacks."""
    from dlcli.registry import VOCABS

    accepted = inspect.signature(VOCABS["char"]).parameters
    section = yaml.safe_load(recipe.read_text(encoding="utf-8")).get("vocab") or {}
    if isinstance(section, str):
        section = {}
    return {"type": "char", **{k: v for k, v in section.items() if k != "type" and k in accepted}}


def fingerprint(recipe: Path, sets: list[str]) -> str:
    """What a cached cell was trained from: a changed recipe value or override makes it stale
    (the comments are left out, so writing a score into the header keeps the cell)."""
    content = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8"))
    digest.update("\n".join(sets).encode("utf-8"))
    return digest.hexdigest()[:16]


def cell_path(model: str, dataset: str) -> Path:
    return CACHE / f"{model}_{dataset}.json"


def cached(model: str, dataset: str, key: str) -> dict | None:
    path = cell_path(model, dataset)
    if not path.exists():
        return None
    cell = json.loads(path.read_text(encoding="utf-8"))
    return cell if cell.get("fingerprint") == key else None


def best_epoch(log: Path, best: float) -> int | None:
    """The 1-based epoch whose dev evaluation gave the best accuracy, from the metrics log."""
    if not log.exists():
        return None
    evals = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    evals = [e for e in evals if "dev" in e]
    for i, record in enumerate(evals, start=1):
        if abs(record["dev"].get("accuracy", -1.0) - best) < 1e-12:
            return i
    return None


def train_one_thread(recipe: Path, out: Path, sets: list[str], what: str) -> dict:
    """`dlcli train` of `recipe` with `sets` into `out`, in a process of its own at 1 thread: its
    JSON summary plus "seconds" (wall time, start-up included) and "best_epoch". RuntimeError
    naming `what` when it fails."""
    command = ["dlcli", "train", str(recipe), "--out", str(out), "--quiet", "--device", "cpu", "--overwrite"]
    for value in sets:
        command += ["--set", value]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {**summary, "seconds": round(seconds, 1),
            "best_epoch": best_epoch(out.with_name(out.stem + ".metrics.jsonl"), summary["best"])}


def train_cell(model: str, dataset: str) -> dict:
    # read the recipe when the cell starts, so one edited during a long run counts from then on
    recipe = recipe_path(model)
    sets = overrides(recipe, dataset)
    key = fingerprint(recipe, sets)
    summary = train_one_thread(recipe, CACHE / f"{model}_{dataset}.pt", sets, f"{model} on {dataset}")
    cell = {
        "model": model, "dataset": dataset, "recipe": recipe.relative_to(ROOT).as_posix(), "overrides": sets,
        "fingerprint": key, "accuracy": summary["best"], "seconds": summary["seconds"],
        "epochs": summary["epochs"], "best_epoch": summary["best_epoch"],
        "date": datetime.date.today().isoformat(), "threads": 1,
    }
    cell_path(model, dataset).write_text(json.dumps(cell, indent=1) + "\n", encoding="utf-8")
    return cell


def table(models: list[str], notes: list[str], command: str, jobs: int) -> list[str]:
    cells = {(m, d): json.loads(cell_path(m, d).read_text(encoding="utf-8"))
             for m in models for d in DATASETS if cell_path(m, d).exists()}
    dates = sorted({c["date"] for c in cells.values()})
    lines = [
        HEADING, "",
        "Each model's shipped SST-2 recipe (`recipes/classify/<model>_sst2.yaml`) trained on each dataset "
        "with only the data changed (ChnSentiCorp: character vocabulary, texts cut to their first "
        f"{CHINESE_MAX_CHARS} characters, at most {CHINESE_MAX_EPOCHS} epochs); best dev accuracy under the "
        "recipe's early stopping, and the wall time of `dlcli train` (start-up and dev evaluations included), "
        f"OMP_NUM_THREADS=1, {jobs} jobs side by side on a shared machine, so times are rough. "
        "Target (issue 3): every model within 2 points of TextCNN.",
        "",
        f"Date: {', '.join(dates) or '-'}. Machine: 2 CPU cores, 1 thread per job. "
        f"Command: `{command}`",
        "",
        "| model | " + " | ".join(f"{name} acc | {name} time" for name in DATASETS.values()) + " |",
        "|---|" + "---|---|" * len(DATASETS),
    ]
    for model in models:
        row = [f"`{model}`"]
        for dataset in DATASETS:
            cell = cells.get((model, dataset))
            row += [f"{cell['accuracy']:.3f}", f"{cell['seconds']:.0f} s"] if cell else ["-", "-"]
        if any(c != "-" for c in row[1:]):
            lines.append("| " + " | ".join(row) + " |")
    carried = sorted({f"`{c['model']}`" for c in cells.values() if c.get("restored_from")})
    if carried:  # cells copied from an earlier table of the same recipes (runs/table/ is not committed)
        lines.append(f"\nCarried over from an earlier run of the same recipes, not retrained: {', '.join(carried)}.")
    lines += [f"\n{note}" for note in notes]
    return lines


def main() -> None:
    models = classifier_models()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=models, default=models)
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=RUN_ORDER)
    parser.add_argument("--jobs", type=int, default=2, help="trainings side by side, 1 thread each (default 2)")
    parser.add_argument("--force", action="store_true", help="retrain cells that are cached already")
    parser.add_argument("--no-doc", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args()

    CACHE.mkdir(parents=True, exist_ok=True)
    notes = [f"`{m}`: skipped, no recipe {recipe_path(m).relative_to(ROOT).as_posix()}."
             for m in models if not recipe_path(m).exists()]
    for note in notes:
        print(note, file=sys.stderr)
    data_dir = os.environ.get("DLCLI_DATA_DIR", "")
    command = " ".join(["python", "bench/classifier_table.py", *sys.argv[1:]])
    command = f"DLCLI_DATA_DIR={data_dir} {command}" if data_dir else command
    tried: set[tuple[str, str, str]] = set()  # (model, dataset, fingerprint) started in this run
    failures: list[str] = []

    def next_cell() -> tuple[str, str] | None:
        """The first cell, in --datasets then --models order, not cached under its recipe as it is now:
        a recipe edited during the run is picked up, each version trained once."""
        for dataset in args.datasets:
            for model in args.models:
                if not recipe_path(model).exists():
                    continue
                key = fingerprint(recipe_path(model), overrides(recipe_path(model), dataset))
                if (model, dataset, key) in tried or (not args.force and cached(model, dataset, key)):
                    continue
                tried.add((model, dataset, key))
                return model, dataset
        return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        running: dict[concurrent.futures.Future, tuple[str, str]] = {}
        while True:
            while len(running) < args.jobs and (cell := next_cell()):
                running[pool.submit(train_cell, *cell)] = cell
            if not running:
                break
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                model, dataset = running.pop(future)
                try:
                    cell = future.result()
                except RuntimeError as exc:
                    failures.append(f"{model}/{dataset}")
                    print(exc, file=sys.stderr)
                    continue
                print(f"{model:12s} {dataset:17s} accuracy {cell['accuracy']:.3f}  {cell['seconds']:6.0f} s  "
                      f"best epoch {cell['best_epoch']} of {cell['epochs']}", file=sys.stderr, flush=True)
                if not args.no_doc:
                    replace_section(table(models, notes, command, args.jobs))
    if not args.no_doc:
        replace_section(table(models, notes, command, args.jobs))
    if failures:
        sys.exit(f"failed: {', '.join(failures)}")

if __name__ == "__main__":
    main()
