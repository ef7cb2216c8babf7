"""The seq2seq ablation: the encoder-decoder without attention, with additive attention, and the
Transformer, trained on the same pairs for the same number of epochs; dev BLEU of greedy and beam-5
decoding, each model scored by `dlcli evaluate` (sacrebleu's BLEU on the same outputs).

Each model is its recipe in recipes/seq2seq/ ({rnn_seq2seq,transformer_seq2seq}_tatoeba_<direction>),
the no-attention one with model.attention=none, all with the same --epochs and, to fit a small
budget, the first --pairs training pairs (0: all). A recipe's learning-rate warm-up is scaled by the
budget's share of the recipe's own steps: the Transformer's 1,000 warm-up steps are 14% of its
recipe's 7,144, and more than all 940 steps of 30,000 pairs x 4 epochs (its lr never reached its
peak: dev BLEU 6.2 after 2 epochs). `--models` runs some of the three. Prints the table and
appends it to docs/benchmarks.md.

    DLCLI_DATA_DIR=../shared/datasets python bench/seq2seq_ablation.py --direction en2fr --pairs 30000 --epochs 4
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import os
import tempfile
import time
from pathlib import Path

from _report import add_row

from dlcli import api
from dlcli.registry import load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "seq2seq"
VARIANTS = {"none": ("GRU encoder-decoder, no attention", "rnn_seq2seq", ["model.attention=none"]),
            "additive": ("GRU encoder-decoder, additive attention", "rnn_seq2seq", []),
            "transformer": ("Transformer", "transformer_seq2seq", [])}


def lines(path: Path) -> int:
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8") as fh:
        return sum(1 for _ in fh)


def scaled_warmup(recipe: Path, pairs: int, epochs: int) -> int | None:
    """The recipe's warm-up steps scaled to the budget's share of its steps; None: keep the recipe's."""
    loaded = load_recipe(recipe)
    warmup = loaded.train.lr_schedule.kwargs.get("warmup_steps")
    if not warmup:
        return None
    total = lines(Path(os.environ.get("DLCLI_DATA_DIR", ".")) / loaded.data.train)
    share = (min(pairs or total, total) * epochs) / (total * loaded.train.epochs)
    return None if share >= 1 else max(1, round(warmup * share))


def subset(recipe: Path, pairs: int, folder: Path) -> list[str]:
    """Overrides that train on the first `pairs` lines of the recipe's training file."""
    if not pairs:
        return []
    train = Path(os.environ.get("DLCLI_DATA_DIR", ".")) / load_recipe(recipe).data.train
    opener = gzip.open if train.suffix == ".gz" else open
    out = folder / f"train-{pairs}.tsv"
    if not out.exists():
        with opener(train, "rt", encoding="utf-8") as fh, open(out, "w", encoding="utf-8") as dst:
            for i, line in enumerate(fh):
                if i == pairs:
                    break
                dst.write(line)
    return [f"data.train={out}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--direction", default="en2fr", choices=["en2fr", "fr2en", "zh2en", "en2zh"])
    parser.add_argument("--pairs", type=int, default=30000, help="training pairs (the file's first; 0: all)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--models", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = "" if args.models == list(VARIANTS) else f" --models {' '.join(args.models)}"
        for name, model, extra in (VARIANTS[key] for key in args.models):
            recipe = RECIPES / f"{model}_tatoeba_{args.direction}.yaml"
            warmup = scaled_warmup(recipe, args.pairs, args.epochs)
            if warmup is not None:
                name += f" (warm-up {warmup} steps)"
                extra = [*extra, f"train.lr_schedule.warmup_steps={warmup}"]
            out = folder / f"{model}-{len(extra)}.pt"
            start = time.perf_counter()
            api.train(recipe, overrides=[f"train.epochs={args.epochs}", f"seed={args.seed}", "train.patience=null",
                                         *subset(recipe, args.pairs, folder), *extra], out=out, overwrite=True)
            seconds = time.perf_counter() - start
            loaded = api.load_model(out)
            dev = Path(os.environ.get("DLCLI_DATA_DIR", ".")) / load_recipe(recipe).data.dev
            greedy = api.evaluate(loaded, dev, beam_size=1)
            beam = api.evaluate(loaded, dev, beam_size=5)
            row = (f"| {datetime.date.today()} | {args.direction} | {name} | {args.pairs or 'all'} | {args.epochs} | "
                   f"{greedy['bleu']:.2f} | {beam['bleu']:.2f} | {beam['chrf']:.2f} | {seconds / 60:.0f} min | "
                   f"`python bench/seq2seq_ablation.py --direction {args.direction} --pairs {args.pairs} "
                   f"--epochs {args.epochs}{models}` |")
            print(row, flush=True)
            add_row("Seq2seq ablation: attention and the Transformer", row,
                    "The recipes in recipes/seq2seq/ on the same training pairs for the same epochs (the "
                    "no-attention row: model.attention=none); dev BLEU (sacrebleu-equal, 13a or zh) of greedy and "
                    "beam-5 decoding of the best epoch, chrF of beam 5; a warm-up scaled to the budget's share of "
                    "the recipe's steps; training time on the 2-core CPU, shared with other jobs.",
                    "| date | direction | model | training pairs | epochs | BLEU greedy | BLEU beam 5 | chrF beam 5 "
                    "| train time | command |")


if __name__ == "__main__":
    main()
