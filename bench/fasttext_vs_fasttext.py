"""Benchmark: dlcli's FastText against the fastText C++ tool (the fasttext-numpy2-wheel build), side by side.

Both read the same fastText-format files (`__label__X tok tok ...`, tokenized once here: dlcli's
word pattern, lowercased, for English; one token per character for Chinese, so bigrams are
character bigrams), with the same settings: dim 100, word bigrams in 2M buckets, softmax, SGD
with linear decay, min count 1, 2 threads. dlcli trains `recipes/classify/fasttext_20newsgroups.yaml`
with only the data, epochs and lr changed, and `vocab.pattern: \\S+` (fastText's whitespace split).

Per workload it reports dev accuracy (the mean over --seeds training runs of each tool, seeds
1..N, the tools taking turns: one run's accuracy moves by +-0.4 points with the seed and the
threads' races), training tokens/s (whitespace tokens x epochs / the median wall time of the
training call, reading, vocabulary and writing the model file included, compile caches warm;
dlcli's also includes its final dev evaluation) and prediction
lines/s through a fresh process reading stdin (start-up and model loading included): `dlcli
classify` writing JSON lines against the wheel's batch `predict` over the same lines (the wheel
ships no `fasttext predict` binary). Appends one row per workload to docs/benchmarks.md.

    DLCLI_DATA_DIR=../shared/datasets python bench/fasttext_vs_fasttext.py
    python bench/fasttext_vs_fasttext.py --workloads 20newsgroups --seeds 10 --repeats 1
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _report import add_row

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "classify" / "fasttext_20newsgroups.yaml"
THREADS = 2

# name: train, dev, label column, text column, language, epochs, lr, tokens to repeat the train set to
WORKLOADS = {
    "20newsgroups": ("20newsgroups/train.tsv.gz", "20newsgroups/dev.tsv", 0, 1, "en", 25, 1.0, None),
    "online_shopping_10cats": ("online_shopping_10cats/train.tsv.gz", "online_shopping_10cats/dev.tsv", 0, 2,
                               "zh", 10, 0.5, None),
    "20newsgroups x10M tokens": ("20newsgroups/train.tsv.gz", "20newsgroups/dev.tsv", 0, 1, "en", 5, 1.0,
                                 10_000_000),
}

FASTTEXT_PREDICT = """
import sys, fasttext
model = fasttext.load_model(sys.argv[1])
lines = [line.rstrip("\\n") for line in sys.stdin]
labels, _ = model.predict(lines)
sys.stdout.write("".join(f"{row[0]}\\n" for row in labels))
"""


def tokenizer(language: str):
    from dlcli.text.vocab import WORD_PATTERN

    if language == "zh":
        return lambda text: [c for c in text.lower() if not c.isspace()]
    return re.compile(WORD_PATTERN).findall


def read_rows(path: Path, label_col: int, text_col: int) -> list[tuple[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        fields = [line.rstrip("\n").split("\t") for line in fh]
    return [(f[label_col], f[text_col]) for f in fields]


def write_fasttext(path: Path, rows, tokenize, lowercase: bool, min_tokens: int | None = None) -> int:
    """Writes `__label__L tokens`; repeats the rows until min_tokens; returns the token count."""
    lines, tokens = [], 0
    for label, text in rows:
        words = tokenize(text.lower() if lowercase else text)
        lines.append(f"__label__{label} {' '.join(words)}\n")
        tokens += len(words)
    base, total = list(lines), tokens
    while min_tokens and total < min_tokens:
        lines += base
        total += tokens
    path.write_text("".join(lines), encoding="utf-8")
    return total


def dlcli_recipe(path: Path, train: Path, dev: Path, epochs: int, lr: float) -> Path:
    recipe = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    recipe["data"] = {"train": str(train), "dev": str(dev), "format": "fasttext"}
    recipe["vocab"].update({"pattern": r"\S+", "lowercase": False, "minn": 0, "maxn": 0})  # fastText's defaults
    recipe["train"].update({"epochs": epochs})
    recipe["train"]["optimizer"]["lr"] = lr
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


def timed_processes(commands: list[list[str]], stdin: Path, repeats: int) -> list[float]:
    """Median wall time of each command on `stdin`, the commands taking turns so that a change in
    the machine's load falls on all of them alike."""
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(repeats):
        for cmd, spent in zip(commands, times):
            with open(stdin, "rb") as fh:
                start = time.perf_counter()
                subprocess.run(cmd, stdin=fh, stdout=subprocess.DEVNULL, check=True)
                spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def run_workload(name: str, spec, data_root: Path, work: Path, predict_lines: int, repeats: int, seeds: int) -> str:
    import fasttext
    import torch

    from dlcli import api

    train_name, dev_name, label_col, text_col, language, epochs, lr, min_tokens = spec
    tokenize = tokenizer(language)
    train_ft, dev_ft = work / "train.ft", work / "dev.ft"
    tokens = write_fasttext(train_ft, read_rows(data_root / train_name, label_col, text_col), tokenize, True,
                            min_tokens)
    dev_rows = read_rows(data_root / dev_name, label_col, text_col)
    write_fasttext(dev_ft, dev_rows, tokenize, True)
    texts = [line.split(" ", 1)[1] if " " in line else "" for line in dev_ft.read_text(encoding="utf-8").splitlines()]
    predict_in = work / "predict.txt"
    predict_in.write_text("".join(f"{texts[i % len(texts)]}\n" for i in range(predict_lines)), encoding="utf-8")
    print(f"{name}: {tokens:,} training tokens x {epochs} epochs", file=sys.stderr)

    ft_times, ft_accs, dl_times, dl_accs = [], [], [], []
    torch.set_num_threads(THREADS)
    recipe = dlcli_recipe(work / "recipe.yaml", train_ft, dev_ft, epochs, lr)
    api.train(recipe, out=work / "warm.pt", overrides=["train.max_steps=1", f"data.train={dev_ft}"],
              overwrite=True)  # JIT cache
    for seed in range(1, seeds + 1):  # the tools take turns, so a change in the machine's load falls on both
        start = time.perf_counter()
        ft = fasttext.train_supervised(str(train_ft), dim=100, epoch=epochs, lr=lr, wordNgrams=2, bucket=2_000_000,
                                       minCount=1, thread=THREADS, loss="softmax", verbose=0, seed=seed)
        ft.save_model(str(work / "ft.bin"))  # `fasttext supervised` writes its model, as `dlcli train` does
        ft_times.append(time.perf_counter() - start)
        ft_accs.append(ft.test(str(dev_ft))[1])
        del ft
        start = time.perf_counter()
        summary = api.train(recipe, out=work / "dlcli.pt", overrides=[f"seed={seed}"], overwrite=True)
        dl_times.append(time.perf_counter() - start)
        dl_accs.append(summary["best"])
        print(f"{name} seed {seed}: dev accuracy dlcli {dl_accs[-1]:.4f} fastText {ft_accs[-1]:.4f}; training "
              f"dlcli {dl_times[-1]:.1f} s fastText {ft_times[-1]:.1f} s", file=sys.stderr)
    dl_train, ft_train = statistics.median(dl_times), statistics.median(ft_times)
    dl_acc, ft_acc = statistics.mean(dl_accs), statistics.mean(ft_accs)

    # fastText splits on whitespace, as the model was trained: the same for dlcli (not the raw-text tokenizer)
    dl_pred, ft_pred = timed_processes([["dlcli", "classify", str(work / "dlcli.pt"), "--tokenize", "whitespace"],
                                        [sys.executable, "-c", FASTTEXT_PREDICT, str(work / "ft.bin")]],
                                       predict_in, repeats)

    dl_tps, ft_tps = tokens * epochs / dl_train, tokens * epochs / ft_train
    dl_lps, ft_lps = predict_lines / dl_pred, predict_lines / ft_pred
    print(f"{name}: dev accuracy dlcli {dl_acc:.4f} fastText {ft_acc:.4f}; train tokens/s dlcli {dl_tps:,.0f} "
          f"fastText {ft_tps:,.0f} ({dl_tps / ft_tps:.2f}x); predict lines/s dlcli {dl_lps:,.0f} fastText "
          f"{ft_lps:,.0f} ({dl_lps / ft_lps:.2f}x)", file=sys.stderr)
    runs = f"mean of seeds 1-{seeds}" if seeds > 1 else "seed 1"
    return (f"| {datetime.date.today()} | {name}: {tokens / 1e6:.1f}M tokens x {epochs} epochs, lr {lr} "
            f"| 2 cores, 2 threads | {dl_acc:.4f} / {ft_acc:.4f} ({runs}) | {dl_tps / 1e6:.2f}M / {ft_tps / 1e6:.2f}M "
            f"({dl_tps / ft_tps:.2f}x{', median of ' + str(seeds) if seeds > 1 else ''}) | {dl_lps:,.0f} / "
            f"{ft_lps:,.0f} ({dl_lps / ft_lps:.2f}x), {predict_lines:,} lines, median of {repeats} "
            f"| `python bench/fasttext_vs_fasttext.py --workloads '{name}' --seeds {seeds}` |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("DLCLI_DATA_DIR", str(ROOT.parent / "shared/datasets")))
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated names")
    parser.add_argument("--predict-lines", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3, help="prediction runs per tool (the median counts)")
    parser.add_argument("--seeds", type=int, default=3,
                        help="training runs per tool, seeds 1..N: mean dev accuracy, median training time")
    parser.add_argument("--keep", help="keep the files and models of each workload under this folder")
    parser.add_argument("--no-report", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    for name in args.workloads.split(","):
        with tempfile.TemporaryDirectory(prefix="ftbench") as tmp:
            work = Path(args.keep) / re.sub(r"\W+", "_", name) if args.keep else Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            row = run_workload(name, WORKLOADS[name], Path(args.data_dir), work, args.predict_lines, args.repeats,
                               args.seeds)
        print(row)
        if not args.no_report:
            add_row("FastText against fastText", row,
                    intro="Same tokenized files, dim 100, bigrams in 2M buckets, softmax, linear-decay SGD, 2 "
                          "threads. Training tokens/s: wall time of the training call, file reading included. "
                          "Prediction: a fresh process on stdin, start-up and model loading included (dlcli "
                          "classify writing JSON lines; the wheel's batch predict, as it ships no CLI).",
                    columns="| date | workload | machine | dev accuracy dlcli / fastText | train tokens/s dlcli / "
                            "fastText | predict lines/s dlcli / fastText | command |")


if __name__ == "__main__":
    main()
