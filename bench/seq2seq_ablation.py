"""The seq2seq ablation: the encoder-decoder without attention, with additive attention, and the
Transformer, trained on the same pairs for the same number of epochs; dev BLEU of greedy and beam-5
decoding, each model scored by `dlcli evaluate` (sacrebleu's BLEU on the same outputs).

Each model is its recipe in recipes/seq2seq/ ({rnn_seq2seq,transformer_seq2seq}_tatoeba_<direction>),
the no-attention one with model.attention=none, all with the same --epochs and, to fit a small
budget, the first --pairs training pairs (0: all). Prints the table and appends it to
docs/benchmarks.md.

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
VARIANTS = {"GRU encoder-decoder, no attention": ("rnn_seq2seq", ["model.attention=none"]),
            "GRU encoder-decoder, additive attention": ("rnn_seq2seq", []),
            "Transformer": ("transformer_seq2seq", [])}


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, (model, extra) in VARIANTS.items():
            recipe = RECIPES / f"{model}_tatoeba_{args.direction}.yaml"
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
                   f"--epochs {args.epochs}` |")
            print(row, flush=True)
            add_row("Seq2seq ablation: attention and the Transformer", row,
                    "The recipes in recipes/seq2seq/ on the same training pairs for the same epochs (the "
                    "no-attention row: model.attention=none); dev BLEU (sacrebleu-equal, 13a or zh) of greedy and "
                    "beam-5 decoding of the best epoch, chrF of beam 5; training time on the 2-core CPU, "
                    "shared with other jobs.",
                    "| date | direction | model | training pairs | epochs | BLEU greedy | BLEU beam 5 | chrF beam 5 "
                    "| train time | command |")


if __name__ == "__main__":
    main()
