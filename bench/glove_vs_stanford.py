"""Benchmark: dlcli's GloVe against Stanford's GloVe C code (../shared/peers/glove), side by side.

The corpus (wiki_en_corpus train) is tokenized once here (dlcli's word pattern, lowercased) into a
whitespace-separated file, one paragraph per line; both train on it with demo.sh's settings:
min count 5, window 15, dim 50, 15 iterations, x_max 10, alpha 0.75, lr 0.05, W + W~, 2 threads.
The C tools are built from the shared copy into a scratch folder (`build.sh`) and run through
`run_wiki.sh` (vocab_count, cooccur, shuffle, glove). dlcli trains recipes/embed/glove_wiki.yaml
with the data and tokenization overridden and one dev evaluation, at the end (`train.eval_every=0`):
both tools' vectors are those of the last iteration. The recipe itself keeps the iteration that
scores best on dev, a choice the C tools do not make; letting it choose here would tune on the
numbers being reported. Wall time covers everything from the tokenized file to
the vectors (dlcli also scores the dev analogies once and writes its checkpoint);
peak RSS is the largest resident memory of the run's processes. Both tools' vectors are scored by
dlcli/text/embedding_eval.py: dev analogies, WordSim-353 and SimLex-999 Spearman. With --runs N
each tool trains N times, the tools taking turns (dlcli with seeds 1..N; glove.c seeds itself from
the clock): quality is the mean (analogy also its standard deviation), time the median, memory the
largest. The last iteration's analogy score swings by about 0.01 from run to run on this corpus,
so one run cannot tell the tools apart. Appends one row to docs/benchmarks.md.

    DLCLI_DATA_DIR=../shared/datasets python bench/glove_vs_stanford.py --runs 3
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
from word2vec_vs_gensim import EVAL, tokenize

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT.parent / "shared" / "peers" / "glove"


def timed(command: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB of the process and its children) of a command that must succeed."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def scores(words: list[str], vectors, data: Path) -> dict:
    from dlcli.text import embedding_eval as ev

    index = {w: i for i, w in enumerate(words)}
    analogy = ev.analogy_report(vectors, index, ev.read_analogies(data / EVAL / "questions-words.dev.txt"), True)
    return {"analogy": analogy["analogy_accuracy"], "coverage": analogy["coverage"],
            "ws353": ev.similarity_report(vectors, index, ev.read_similarity(data / EVAL / "wordsim353.dev.tsv"),
                                          True)["spearman"],
            "simlex": ev.similarity_report(vectors, index, ev.read_similarity(data / EVAL / "simlex999.dev.txt"),
                                           True)["spearman"],
            "vocab": len(words)}


def run_stanford(corpus: Path, work: Path, data: Path) -> dict:
    from dlcli.text.vectors import read_vectors

    if not (work / "bin").exists():
        subprocess.run([str(PEER / "build.sh"), str(work / "bin")], check=True, stdout=subprocess.DEVNULL)
    seconds, rss = timed([str(PEER / "run_wiki.sh"), str(corpus), str(work / "out"), str(work / "bin")])
    words, vectors = read_vectors(work / "out" / "vectors.txt", "glove")
    if words and words[-1] == "<unk>":  # glove.c appends the mean vector of the rare words
        words, vectors = words[:-1], vectors[:-1]
    return {"seconds": seconds, "rss_mb": rss, **scores(words, vectors, data)}


def run_dlcli(corpus: Path, work: Path, data: Path, seed: int) -> dict:
    from dlcli import loading

    out = work / "glove.pt"
    command = [sys.executable, "-m", "dlcli", "train", str(ROOT / "recipes" / "embed" / "glove_wiki.yaml"),
               "--out", str(out), "--quiet", "--overwrite", "--set", f"data.train={corpus}", "--set",
               "vocab.pattern=\\S+", "--set", "train.eval_every=0", "--set", f"seed={seed}"]
    seconds, rss = timed(command, {**os.environ, "DLCLI_DATA_DIR": str(data)})
    loaded = loading.load_model(out)
    words, vectors = loaded.task.export_vectors(loaded.model)
    return {"seconds": seconds, "rss_mb": rss, **scores(words, vectors, data)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="wiki_en_corpus/train.txt.gz", help="relative to the data root")
    parser.add_argument("--max-lines", type=int, default=None, help="train on the first N lines only")
    parser.add_argument("--runs", type=int, default=1, help="trainings per tool (dlcli: seeds 1..N)")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    data = Path(os.environ.get("DLCLI_DATA_DIR", "data")).resolve()
    runs: dict[str, list[dict]] = {"dlcli": [], "stanford": []}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        corpus = work / "tokens.txt"
        words = tokenize(data / args.corpus, corpus, args.max_lines)
        print(f"{args.corpus}: {words:,} words", flush=True)
        for seed in range(1, args.runs + 1):
            runs["dlcli"].append(run_dlcli(corpus, work, data, seed))
            print(f"dlcli seed {seed}: {runs['dlcli'][-1]}", flush=True)
            runs["stanford"].append(run_stanford(corpus, work, data))
            print(f"Stanford GloVe: {runs['stanford'][-1]}", flush=True)
    print(report(runs, words, args))


def report(runs: dict, words: int, args) -> str:
    def mean(tool: str, key: str) -> float:
        return statistics.mean(r[key] for r in runs[tool])

    def analogy(tool: str) -> str:
        values = [r["analogy"] for r in runs[tool]]
        return f"{statistics.mean(values):.4f}" + (f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else "")

    seconds = {tool: statistics.median(r["seconds"] for r in runs[tool]) for tool in runs}
    rss = {tool: max(r["rss_mb"] for r in runs[tool]) for tool in runs}
    lines = f", first {args.max_lines:,} lines" if args.max_lines else ""
    command = "`python bench/glove_vs_stanford.py" + (f" --max-lines {args.max_lines}" if args.max_lines else "") + \
              (f" --runs {args.runs}" if args.runs > 1 else "") + "`"
    row = (f"| {datetime.date.today()} | {args.corpus}{lines}: {words / 1e6:.1f}M words, dim 50, window 15, "
           f"15 iterations, vocabulary {runs['dlcli'][0]['vocab']:,} / {runs['stanford'][0]['vocab']:,}"
           f"{f', {args.runs} runs each (quality: mean, time: median)' if args.runs > 1 else ''} | 2 cores, 2 threads "
           f"| {analogy('dlcli')} / {analogy('stanford')} (coverage {mean('dlcli', 'coverage'):.2f}) "
           f"| {mean('dlcli', 'ws353'):.3f} / {mean('stanford', 'ws353'):.3f} "
           f"| {mean('dlcli', 'simlex'):.3f} / {mean('stanford', 'simlex'):.3f} "
           f"| {seconds['dlcli']:.0f} s / {seconds['stanford']:.0f} s ({seconds['stanford'] / seconds['dlcli']:.2f}x) "
           f"| {rss['dlcli']:.0f} / {rss['stanford']:.0f} MB | {command} |")
    if not args.no_append:
        add_row("GloVe against Stanford's GloVe", row,
                intro="Dev quality and wall time (tokenized file to vectors) of dlcli's GloVe and Stanford's C "
                      "tools on one tokenized file; see the header of bench/glove_vs_stanford.py.",
                columns="| date | workload | machine | dev analogy accuracy dlcli / Stanford | WordSim-353 Spearman "
                        "| SimLex-999 Spearman | wall time dlcli / Stanford (speed ratio) | peak RSS | command |")
    return row


if __name__ == "__main__":
    main()
