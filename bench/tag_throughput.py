"""Benchmark: `dlcli tag` streaming throughput, stdin -> JSONL, start-up included.

Runs `dlcli tag MODEL < input > out.jsonl` on N sentences made by repeating the CoNLL-2003 dev
sentences (tokens joined by spaces), several times, and reports the median sentences/s.
Appends a row to docs/benchmarks.md. Default model: the shipped English NER model `en-ner`.

    DLCLI_DATA_DIR=../shared/datasets python bench/tag_throughput.py
    python bench/tag_throughput.py --model runs/bilstm_crf_conll2003_en.pt --sentences 20000 --repeats 5
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import add_row

from dlcli.recipe import parse_section
from dlcli.tasks.tag import TagData
from dlcli.text.tagging import read_tagged


def make_input(path: Path, n: int, data_root: Path) -> int:
    cfg = parse_section(TagData, {"format": "conll", "tag_column": 3}, "data")
    sentences = [" ".join(s.tokens) for s in read_tagged(data_root / "conll2003_en" / "dev.iob1.txt", cfg)]
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(sentences[i % len(sentences)] + "\n")
    return sum(len(sentences[i % len(sentences)].split()) for i in range(n))


def time_cli(model: str, input_path: Path, out_path: Path, *options: str) -> float:
    """Seconds `dlcli tag --model MODEL OPTIONS < input > out` takes, start-up included."""
    with open(input_path, "rb") as stdin, open(out_path, "wb") as stdout:
        start = time.perf_counter()
        subprocess.run(["dlcli", "tag", "--model", model, *options], stdin=stdin, stdout=stdout, check=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="en-ner")
    parser.add_argument("--sentences", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DLCLI_DATA_DIR", "data")))
    parser.add_argument("--no-append", action="store_true", help="print only; leave docs/benchmarks.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        input_path, out_path = Path(tmp) / "input.txt", Path(tmp) / "out.jsonl"
        tokens = make_input(input_path, args.sentences, args.data_dir)
        runs = [time_cli(args.model, input_path, out_path) for _ in range(args.repeats)]
        produced = sum(1 for _ in open(out_path, encoding="utf-8"))
        if produced != args.sentences:
            sys.exit(f"dlcli tag wrote {produced} lines for {args.sentences} inputs")

    seconds = statistics.median(runs)
    today = datetime.date.today().isoformat()
    row = (f"| {today} | tag throughput, {args.model}, {args.sentences:,} CoNLL dev sentences stdin -> JSONL | "
           f"{os.cpu_count()} cores | {args.sentences / seconds:,.0f} sentences/s, {tokens / seconds:,.0f} tokens/s "
           f"(median of {args.repeats}, start-up included) | target 2,000 sentences/s | "
           f"{args.sentences / seconds / 2000:.2f}x |")
    print(row)
    print(f"runs (s): {', '.join(f'{t:.2f}' for t in runs)}", file=sys.stderr)
    if not args.no_append:
        add_row("`dlcli tag` throughput (stdin -> JSONL, start-up included)",
                row + f" `python bench/tag_throughput.py --model {args.model} --sentences {args.sentences}` |",
                intro="Target (issue 4): at least 2,000 sentences/s with en-ner on 2 CPU cores.",
                columns="| date | benchmark | machine | dlcli | reference | ratio | command |")


if __name__ == "__main__":
    main()
