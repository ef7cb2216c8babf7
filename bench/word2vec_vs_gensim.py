"""Benchmark: dlcli's word2vec against gensim 4's Word2Vec, side by side on the same corpus.

The corpus (wiki_en_corpus train, raw paragraphs) is tokenized once here (dlcli's word pattern,
lowercased) into a whitespace-separated file, and both tools train on that file with the same
settings: dim 100, window 5, min count 5, sample 1e-3, 5 negatives (or hierarchical softmax),
5 epochs, the recipe's starting lr (0.035 for skip-gram NS, 0.025 for skip-gram HS, word2vec.c's 0.05
for CBOW) decaying to 1e-4, 2 threads. dlcli trains recipes/embed/word2vec_<combo>_wiki.yaml with the data and
tokenization overridden and one dev evaluation, at the end (`train.eval_every=0`): its vectors are
the last epoch's, as gensim's are, not the epoch that the recipe would pick on the dev analogies
being reported. gensim reads the file with `corpus_file` (its fastest, multi-worker mode). Each run
is its own process, the tools taking turns; wall time covers reading the file, the vocabulary and
training (dlcli also writes its checkpoint and scores the dev analogies once). Words/s = the
file's words x epochs / that time. Peak RSS is the process's maximum resident memory. Both tools'
vectors are scored by the same code (dlcli/text/embedding_eval.py): dev analogies (3CosAdd, all
words), WordSim-353 and SimLex-999 dev Spearman. Quality is the mean over --seeds runs, time the
median. Appends one row per combination to docs/benchmarks.md.

Both tools give each thread its own part of the file (dlcli/text/corpus.py, side_by_side; gensim's
corpus_file workers start at offsets into the file). The vectors are each tool's output: gensim's
`wv` is the input rows; dlcli's CBOW NS recipe gives input + output rows (`model.output: sum`),
the others the input rows; `--set model.output=input` scores dlcli's input rows alone.

The lr schedules are not quite the same: in corpus_file mode each gensim worker measures its
progress against the whole file (gensim 4.4, word2vec_corpusfile.pyx, get_next_alpha and the loop
that calls it), so with 2 workers every epoch covers only half of its step down and the last lr
is about 0.0025, not min_alpha. dlcli decays to the recipe's final lr.
`--set train.lr_schedule.final_ratio=0.1` ends dlcli at gensim's 0.0025.

    DLCLI_DATA_DIR=../shared/datasets python bench/word2vec_vs_gensim.py
    python bench/word2vec_vs_gensim.py --combos skipgram_ns --seeds 3
    python bench/word2vec_vs_gensim.py --combos cbow_ns --seeds 3 --set model.output=input
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import add_row

ROOT = Path(__file__).resolve().parents[1]
COMBOS = ("skipgram_ns", "skipgram_hs", "cbow_ns", "cbow_hs")
EVAL = "embedding_eval_en"


def tokenize(source: Path, out: Path, max_lines: int | None) -> int:
    """The corpus as lowercased dlcli word tokens, one line per paragraph; returns the word count."""
    from dlcli.text.readers import decoded_lines, open_binary
    from dlcli.text.vocab import WORD_PATTERN

    pattern, words = re.compile(WORD_PATTERN), 0
    with open_binary(source) as fh, open(out, "w", encoding="utf-8") as dst:
        for n, item in enumerate(decoded_lines(fh, str(source))):
            if max_lines is not None and n >= max_lines:
                break
            tokens = pattern.findall(item[1].lower())
            if tokens:
                dst.write(" ".join(tokens) + "\n")
                words += len(tokens)
    return words


def run_dlcli(combo: str, corpus: Path, seed: int, work: Path, data: Path, sets: list[str]) -> dict:
    from dlcli import api, loading

    recipe = ROOT / "recipes" / "embed" / f"word2vec_{combo}_wiki.yaml"
    overrides = [f"data.train={corpus}", f"data.dev={data / EVAL / 'questions-words.dev.txt'}", f"seed={seed}",
                 "vocab.pattern=\\S+", "train.eval_every=0", *sets]
    started = time.perf_counter()
    api.train(recipe, overrides=overrides, out=work / "dlcli.pt", overwrite=True)
    seconds = time.perf_counter() - started
    loaded = loading.load_model(work / "dlcli.pt")
    words, vectors = loaded.task.export_vectors(loaded.model)
    return {"seconds": seconds, "words": words, "vectors": vectors}


def recipe_lr(combo: str) -> float:
    """The recipe's starting lr, read as plain YAML: importing dlcli here would load torch into the
    gensim worker and inflate its peak memory."""
    import yaml

    recipe = yaml.safe_load((ROOT / "recipes" / "embed" / f"word2vec_{combo}_wiki.yaml").read_text(encoding="utf-8"))
    return float(recipe["train"]["optimizer"]["lr"])


def run_gensim(combo: str, corpus: Path, seed: int, work: Path, data: Path, sets: list[str]) -> dict:
    from gensim.models import Word2Vec

    arch, loss = combo.split("_")
    started = time.perf_counter()
    model = Word2Vec(corpus_file=str(corpus), vector_size=100, window=5, min_count=5, sample=1e-3, workers=2,
                     sg=int(arch == "skipgram"), hs=int(loss == "hs"), negative=5 if loss == "ns" else 0,
                     epochs=5, seed=seed, alpha=recipe_lr(combo), min_alpha=1e-4)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "words": list(model.wv.index_to_key), "vectors": model.wv.vectors}


def worker(tool: str, combo: str, corpus: Path, seed: int, work: Path, data: Path, sets: list[str]) -> None:
    """One training run in this process; vectors to work/vectors.npy, the rest as JSON on stdout."""
    result = (run_dlcli if tool == "dlcli" else run_gensim)(combo, corpus, seed, work, data, sets)
    np.save(work / "vectors.npy", np.asarray(result["vectors"], dtype=np.float32))
    (work / "words.txt").write_text("\n".join(result["words"]) + "\n", encoding="utf-8")
    print(json.dumps({"seconds": result["seconds"]}))


def measured(tool: str, combo: str, corpus: Path, seed: int, data: Path, sets: list[str]) -> dict:
    """A run in a fresh process: its time, peak RSS and the scores of its vectors."""
    from dlcli.text import embedding_eval as ev

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        command = [sys.executable, __file__, "--worker", tool, "--combos", combo, "--corpus", str(corpus),
                   "--seeds", str(seed), "--work", str(work), *[f"--set={item}" for item in sets]]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, env={**os.environ, "DLCLI_DATA_DIR": str(data)})
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        if status != 0:
            raise SystemExit(f"{tool} {combo} seed {seed} failed")
        seconds = json.loads(out.decode().strip().splitlines()[-1])["seconds"]
        vectors = np.load(work / "vectors.npy")
        words = (work / "words.txt").read_text(encoding="utf-8").splitlines()
    index = {w: i for i, w in enumerate(words)}
    analogy = ev.analogy_report(vectors, index, ev.read_analogies(data / EVAL / "questions-words.dev.txt"), True)
    ws = ev.similarity_report(vectors, index, ev.read_similarity(data / EVAL / "wordsim353.dev.tsv"), True)
    simlex = ev.similarity_report(vectors, index, ev.read_similarity(data / EVAL / "simlex999.dev.txt"), True)
    return {"seconds": seconds, "rss_mb": usage.ru_maxrss / 1024, "analogy": analogy["analogy_accuracy"],
            "coverage": analogy["coverage"], "ws353": ws["spearman"], "simlex": simlex["spearman"],
            "vocab": len(words)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--combos", default=",".join(COMBOS))
    parser.add_argument("--seeds", type=int, default=1, help="runs per tool, seeds 1..N")
    parser.add_argument("--corpus", default="wiki_en_corpus/train.txt.gz", help="relative to the data root")
    parser.add_argument("--max-lines", type=int, default=None, help="train on the first N lines only")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value of dlcli's recipe (repeatable), e.g. train.lr_schedule.final_ratio=0.1")
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--worker", choices=("dlcli", "gensim"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = Path(os.environ.get("DLCLI_DATA_DIR", "data")).resolve()
    if args.worker:
        worker(args.worker, args.combos, Path(args.corpus), args.seeds, args.work, data, args.sets)
        return

    with tempfile.TemporaryDirectory() as scratch:
        corpus = Path(scratch) / "tokens.txt"
        words = tokenize(data / args.corpus, corpus, args.max_lines)
        print(f"{args.corpus}: {words:,} words", flush=True)
        for combo in args.combos.split(","):
            runs: dict[str, list[dict]] = {"dlcli": [], "gensim": []}
            for seed in range(1, args.seeds + 1):
                for tool in ("dlcli", "gensim"):
                    result = measured(tool, combo, corpus, seed, data, args.sets)
                    runs[tool].append(result)
                    print(f"{combo} seed {seed} {tool}: analogy {result['analogy']:.4f} ws353 {result['ws353']:.4f} "
                          f"simlex {result['simlex']:.4f}, {result['seconds']:.1f} s, {result['rss_mb']:.0f} MB",
                          flush=True)
            report(combo, runs, words, args)


def report(combo: str, runs: dict, words: int, args) -> None:
    def mean(tool, key):
        return statistics.mean(r[key] for r in runs[tool])

    speed = {tool: words * 5 / statistics.median(r["seconds"] for r in runs[tool]) for tool in runs}
    rss = {tool: max(r["rss_mb"] for r in runs[tool]) for tool in runs}
    lines = f", first {args.max_lines:,} lines" if args.max_lines else ""
    command = f"`python bench/word2vec_vs_gensim.py --combos {combo} --seeds {args.seeds}" + \
              (f" --max-lines {args.max_lines}" if args.max_lines else "") + \
              "".join(f" --set {item}" for item in args.sets) + "`"
    row = (f"| {datetime.date.today()} | {combo}, {args.corpus}{lines}: {words / 1e6:.1f}M words x 5 epochs, "
           f"lr {recipe_lr(combo)}, "
           f"vocabulary {runs['dlcli'][0]['vocab']:,} / {runs['gensim'][0]['vocab']:,} | 2 cores, 2 threads "
           f"| {mean('dlcli', 'analogy'):.4f} / {mean('gensim', 'analogy'):.4f} "
           f"(coverage {mean('dlcli', 'coverage'):.2f}) | {mean('dlcli', 'ws353'):.3f} / {mean('gensim', 'ws353'):.3f} "
           f"| {mean('dlcli', 'simlex'):.3f} / {mean('gensim', 'simlex'):.3f} "
           f"| {speed['dlcli'] / 1e6:.2f}M / {speed['gensim'] / 1e6:.2f}M ({speed['dlcli'] / speed['gensim']:.2f}x) "
           f"| {rss['dlcli']:.0f} / {rss['gensim']:.0f} MB | {command} |")
    print(row)
    if not args.no_append:
        add_row("word2vec against gensim", row,
                intro="Dev quality (mean of the seeds) and speed (median) of dlcli's word2vec and gensim 4.4's "
                      "Word2Vec on one tokenized file; see the header of bench/word2vec_vs_gensim.py.",
                columns="| date | workload | machine | dev analogy accuracy dlcli / gensim | WordSim-353 Spearman "
                        "| SimLex-999 Spearman | words/s dlcli / gensim | peak RSS | command |")


if __name__ == "__main__":
    main()
