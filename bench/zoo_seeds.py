"""Benchmark: the classifier zoo on SST-2 over several seeds, from random and from pretrained embeddings.

A recipe picked by its best dev run of many tries flatters itself (issue 19: on the SST-2 test set
the RNN family trailed TextCNN by more than their dev scores had said). This trains each model's
SST-2 recipe (recipes/classify/<model>_sst2.yaml, random embeddings) and its pretrained twin
(<model>_sst2_w2v.yaml: dlcli's wiki skip-gram vectors, fine-tuned) with seeds 1..N and nothing
else changed, and reports each one's mean and standard deviation of the best dev accuracy under the
recipe's early stopping. Each run is cached as JSON under runs/seeds/ (keyed by the recipe's
content and the seed), so a rerun trains only what is missing. Jobs run with OMP_NUM_THREADS=1,
`--jobs` side by side. The section "## Classifier zoo on SST-2 over seeds" of docs/benchmarks.md is
replaced by a table of the cached runs.

    DLCLI_DATA_DIR=../shared/datasets python bench/zoo_seeds.py
    DLCLI_DATA_DIR=../shared/datasets python bench/zoo_seeds.py --models gru rcnn --variants pretrained
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import hashlib
import json
import os
import statistics
import sys
from pathlib import Path

import yaml
from _report import replace_section
from classifier_table import train_one_thread

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "classify"
CACHE = ROOT / "runs" / "seeds"
HEADING = "## Classifier zoo on SST-2 over seeds"
VARIANTS = {"random": "_sst2", "pretrained": "_sst2_w2v"}


def fingerprint(recipe: Path, seed: int) -> str:
    """What a cached run was trained from: the recipe's values (not its comments, nor its own seed,
    which the run's --set seed replaces) and the seed."""
    content = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    content.pop("seed", None)
    return hashlib.sha256(json.dumps([content, seed], sort_keys=True).encode("utf-8")).hexdigest()[:16]


def recipe_of(model: str, variant: str) -> Path:
    return RECIPES / f"{model}{VARIANTS[variant]}.yaml"


def run_path(recipe: Path, seed: int) -> Path:
    return CACHE / f"{recipe.stem}_seed{seed}.json"


def cached(recipe: Path, seed: int) -> dict | None:
    path = run_path(recipe, seed)
    if not path.exists():
        return None
    run = json.loads(path.read_text(encoding="utf-8"))
    return run if run.get("fingerprint") == fingerprint(recipe, seed) else None


def train_run(recipe: Path, seed: int) -> dict:
    if run := cached(recipe, seed):  # another process of this bench trained it meanwhile
        return run
    key = fingerprint(recipe, seed)  # the recipe as it is when the run starts
    out = CACHE / f"{recipe.stem}_seed{seed}.pt"
    summary = train_one_thread(recipe, out, [f"seed={seed}"], f"{recipe.name} seed {seed}")
    run = {"recipe": recipe.relative_to(ROOT).as_posix(), "seed": seed, "fingerprint": key,
           "accuracy": summary["best"], "seconds": summary["seconds"], "epochs": summary["epochs"],
           "best_epoch": summary["best_epoch"], "date": datetime.date.today().isoformat()}
    run_path(recipe, seed).write_text(json.dumps(run, indent=1) + "\n", encoding="utf-8")
    for done_with in (out, out.with_name(out.stem + ".train-state.pt")):
        done_with.unlink(missing_ok=True)  # the numbers and the log are kept; a model is a `dlcli train` away
    return run


def cell(model: str, variant: str, seeds: int) -> str:
    recipe = recipe_of(model, variant)
    runs = [r for s in range(1, seeds + 1) if (r := cached(recipe, s))] if recipe.exists() else []
    if not runs:
        return "-"
    scores = [r["accuracy"] for r in runs]
    spread = f" ± {statistics.stdev(scores):.3f}" if len(scores) > 1 else ""
    return f"{statistics.fmean(scores):.3f}{spread} ({len(scores)})"


def table(models: list[str], seeds: int, command: str) -> list[str]:
    dates = sorted({json.loads(p.read_text(encoding="utf-8"))["date"] for p in CACHE.glob("*.json")})
    lines = [
        HEADING, "",
        "Best dev accuracy under each recipe's early stopping, mean ± standard deviation over seeds 1.."
        f"{seeds} (runs in brackets), from random embeddings (`<model>_sst2.yaml`) and from dlcli's wiki "
        "skip-gram vectors, fine-tuned (`<model>_sst2_w2v.yaml`, dim 100; a word vocabulary extended with the "
        "vectors' words, while fasttext's and mlp's n-gram vocabularies keep the training words). Choose between "
        "settings by these means, never by one seed's best.", "",
        f"Date: {', '.join(dates) or '-'}. Machine: 2 CPU cores, 1 thread per job. Command: `{command}`", "",
        "| model | random embeddings | pretrained (wiki skip-gram) |",
        "|---|---|---|",
    ]
    for model in models:
        lines.append(f"| `{model}` | {cell(model, 'random', seeds)} | {cell(model, 'pretrained', seeds)} |")
    lines += ["", "Not in the table: `transformer` (its d_model, 256, is not the vectors' 100) and `charcnn` "
              "(characters, not words)."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+",
                        default=["textcnn", "attn_lstm", "bilstm", "bigru", "lstm", "gru", "rnn", "rcnn", "mlp",
                                 "fasttext"])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N (default 3)")
    parser.add_argument("--jobs", type=int, default=2, help="trainings side by side, 1 thread each (default 2)")
    parser.add_argument("--no-doc", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args()

    CACHE.mkdir(parents=True, exist_ok=True)
    todo = [(recipe_of(m, v), s) for v in args.variants for s in range(1, args.seeds + 1) for m in args.models
            if recipe_of(m, v).exists() and not cached(recipe_of(m, v), s)]
    data_dir = os.environ.get("DLCLI_DATA_DIR", "")
    command = " ".join(["python", "bench/zoo_seeds.py", *sys.argv[1:]])
    command = f"DLCLI_DATA_DIR={data_dir} {command}" if data_dir else command
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(train_run, recipe, seed): (recipe, seed) for recipe, seed in todo}
        for future in concurrent.futures.as_completed(futures):
            recipe, seed = futures[future]
            try:
                run = future.result()
            except RuntimeError as exc:
                print(exc, file=sys.stderr)
                continue
            print(f"{recipe.stem:22s} seed {seed}: accuracy {run['accuracy']:.4f}  {run['seconds']:6.0f} s  "
                  f"best epoch {run['best_epoch']} of {run['epochs']}", file=sys.stderr, flush=True)
    lines = table(args.models, args.seeds, command)
    print("\n".join(lines))
    if not args.no_doc:
        replace_section(lines)


if __name__ == "__main__":
    main()
