"""What pretraining gives: GPT-mini fine-tuned on SST-2 from the pretrained language model against
the same model (tokenizer and architecture) from random weights, over seeds; dev accuracy.

Both runs use recipes/classify/gpt_sst2.yaml; the baseline adds data.init_weights=false and, as
a model from scratch wants a larger step, its own learning rate (--random-lr). Each run keeps
its best epoch on dev (the recipe's early-stopping rule). Prints the table and appends it to
docs/benchmarks.md. Needs runs/gpt_mini_wiki.pt (see that recipe's header).

    DLCLI_DATA_DIR=../shared/datasets python bench/gpt_pretraining_gain.py --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
from pathlib import Path

from _report import add_row

from dlcli import api

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "classify" / "gpt_sst2.yaml"


def run(seed: int, extra: list[str], folder: Path) -> tuple[float, float]:
    """(best dev accuracy, seconds) of one fine-tuning run."""
    start = time.perf_counter()
    summary = api.train(RECIPE, overrides=[f"seed={seed}", *extra], out=folder / f"{seed}-{len(extra)}.pt",
                        overwrite=True)
    return summary["best"], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--random-lr", type=float, default=1.0e-3, help="the baseline's learning rate")
    args = parser.parse_args()
    variants = {"pretrained (runs/gpt_mini_wiki.pt)": [],
                f"random weights, lr {args.random_lr:g}": ["data.init_weights=false",
                                                           f"train.optimizer.lr={args.random_lr}"]}
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in variants.items():
            for seed in args.seeds:
                accuracy, seconds = run(seed, extra, Path(tmp))
                results.setdefault(name, []).append(accuracy)
                print(f"{name}, seed {seed}: dev accuracy {accuracy:.4f} ({seconds:.0f} s)", flush=True)
    seeds = " ".join(map(str, args.seeds))
    for name, accuracies in results.items():
        mean = statistics.mean(accuracies)
        spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        row = (f"| {datetime.date.today()} | {name} | {', '.join(f'{a:.4f}' for a in accuracies)} | "
               f"{mean:.4f} ± {spread:.4f} | `python bench/gpt_pretraining_gain.py --seeds {seeds}` |")
        print(row)
        add_row("GPT-mini on SST-2: pretrained against random weights", row,
                "recipes/classify/gpt_sst2.yaml from runs/gpt_mini_wiki.pt (recipes/lm/gpt_mini_wiki.yaml) or from "
                "random weights (data.init_weights=false, same tokenizer and architecture); dev accuracy of the "
                "best epoch, per seed, and mean ± standard deviation. 2-core CPU.",
                "| date | start | dev accuracy per seed | mean ± sd | command |")


if __name__ == "__main__":
    main()
