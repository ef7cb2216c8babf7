"""Decoding speed of a trained seq2seq model: sentences per second for greedy and beam-5 search,
batched (the checkpoint's batch size) and one sentence at a time, on the first --sentences dev
sources; the outputs of the batched and one-at-a-time runs must agree (padding changes nothing).
Medians of --repeats runs. Prints the table and appends it to docs/benchmarks.md.

    DLCLI_DATA_DIR=../shared/datasets python bench/seq2seq_decoding_speed.py runs/transformer_seq2seq_tatoeba_en2fr.pt
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from pathlib import Path

import torch
from _report import add_row

from dlcli import api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = api.load_model(args.model)
    data = loaded.recipe["data"]
    dev = Path(os.environ.get("DLCLI_DATA_DIR", ".")) / data["dev"]
    column = int(data.get("source_column", 0))
    lines = [line.split("\t")[column] for line in dev.read_text(encoding="utf-8").splitlines()[: args.sentences]]
    ids = list(range(1, len(lines) + 1))
    batch = int(loaded.predict_defaults["batch_size"])
    for beam in (1, 5):
        outputs, speeds = {}, {}
        for name, size in (("batched", batch), ("one at a time", 1)):
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                records = loaded.generate(ids, lines, {**loaded.predict_defaults, "beam_size": beam,
                                                       "batch_size": size})
                times.append(time.perf_counter() - start)
            outputs[name] = [r["output"] for r in records]
            speeds[name] = len(lines) / statistics.median(times)
        same = sum(a == b for a, b in zip(outputs["batched"], outputs["one at a time"]))
        row = (f"| {datetime.date.today()} | {Path(args.model).name} | {beam} | {speeds['batched']:.1f} "
               f"(batch {batch}) | {speeds['one at a time']:.1f} | {speeds['batched'] / speeds['one at a time']:.1f}x "
               f"| {same}/{len(lines)} | `python bench/seq2seq_decoding_speed.py {args.model} --sentences "
               f"{args.sentences} --threads {args.threads}` |")
        print(row, flush=True)
        add_row("Seq2seq decoding speed", row,
                "Sentences per second (median of 3 runs) translating the first dev sources, batched and one at a "
                "time, greedy (beam 1) and beam 5; identical outputs counted. 2-core CPU, one thread.",
                "| date | model | beam | batched sent/s | one at a time sent/s | speed-up | same outputs | command |")


if __name__ == "__main__":
    main()
