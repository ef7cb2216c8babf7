"""Benchmark: `dlcli classify` streaming throughput, stdin -> JSONL, start-up included.

Runs `dlcli classify MODEL < input > out.jsonl` on an N-line input made by repeating the TREC
training questions, several times, and reports the median lines/s next to the model's forward
pass alone (in-process, same batches) so the CLI overhead shows as a ratio. Appends a row to
docs/benchmarks.md.

    DLCLI_DATA_DIR=../shared/datasets python bench/classify_throughput.py
    python bench/classify_throughput.py --model runs/textcnn_trec.pt --lines 50000 --repeats 5
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

ROOT = Path(__file__).resolve().parents[1]


def ensure_model(path: Path) -> None:
    if path.exists():
        return
    print(f"training {path} with recipes/classify/textcnn_trec.yaml ...", file=sys.stderr)
    subprocess.run(["dlcli", "train", str(ROOT / "recipes/classify/textcnn_trec.yaml"), "--out", str(path),
                    "--quiet"], check=True, stdout=subprocess.DEVNULL)


def make_input(path: Path, lines: int, data_root: Path) -> None:
    source = data_root / "trec" / "train.tsv"
    texts = [line.split("\t", 1)[1] for line in source.read_text(encoding="utf-8").splitlines()]
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(lines):
            fh.write(texts[i % len(texts)] + "\n")


def time_cli(model: Path, input_path: Path, out_path: Path) -> float:
    with open(input_path, "rb") as stdin, open(out_path, "wb") as stdout:
        start = time.perf_counter()
        subprocess.run(["dlcli", "classify", str(model)], stdin=stdin, stdout=stdout, check=True)
        return time.perf_counter() - start


def time_forward(model: Path, input_path: Path) -> float:
    """Seconds for the forward passes alone over the same texts, batched as the CLI batches."""
    import torch

    from dlcli import api
    from dlcli.text.batching import bucket_batches, pad

    loaded = api.load_model(model)
    task = loaded.task
    texts = input_path.read_text(encoding="utf-8").splitlines()
    ids = task.encode(texts)
    batch_size = loaded.recipe.get("predict", {}).get("batch_size", 256)
    batches = []
    for start in range(0, len(ids), 4096):
        chunk = ids[start:start + 4096]
        batches += [pad([chunk[i] for i in b], task.vocab.pad_id, task.min_length)
                    for b in bucket_batches([len(x) for x in chunk], batch_size)]
    with torch.inference_mode():
        start = time.perf_counter()
        for tokens, mask in batches:
            loaded.model(tokens, mask)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "runs" / "textcnn_trec.pt")
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DLCLI_DATA_DIR", "data")))
    parser.add_argument("--no-append", action="store_true", help="print only; leave docs/benchmarks.md")
    args = parser.parse_args()

    ensure_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        input_path, out_path = Path(tmp) / "input.txt", Path(tmp) / "out.jsonl"
        make_input(input_path, args.lines, args.data_dir)
        cli = [time_cli(args.model, input_path, out_path) for _ in range(args.repeats)]
        produced = sum(1 for _ in open(out_path, encoding="utf-8"))
        if produced != args.lines:
            sys.exit(f"dlcli classify wrote {produced} lines for {args.lines} inputs")
        forward = [time_forward(args.model, input_path) for _ in range(args.repeats)]

    cli_rate = args.lines / statistics.median(cli)
    fwd_rate = args.lines / statistics.median(forward)
    today = datetime.date.today().isoformat()
    row = (f"| {today} | classify throughput, TREC TextCNN, {args.lines:,} lines stdin -> JSONL | "
           f"{os.cpu_count()} cores | CLI {cli_rate:,.0f} lines/s (median of {args.repeats}, start-up "
           f"included) | forward alone {fwd_rate:,.0f} lines/s | CLI/forward {cli_rate / fwd_rate:.2f} |")
    print(row)
    print(f"CLI runs (s): {', '.join(f'{t:.2f}' for t in cli)}", file=sys.stderr)
    if not args.no_append:
        add_row("`dlcli classify` throughput (TREC TextCNN, stdin -> JSONL, start-up included)",
                row + f" `python bench/classify_throughput.py --lines {args.lines}` |")


if __name__ == "__main__":
    main()
