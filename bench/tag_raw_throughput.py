"""Benchmark: `dlcli tag` throughput on raw text (tokenizing included), stdin -> JSONL, start-up included.

Runs `dlcli tag MODEL < input > out.jsonl` on N sentences made by repeating the CoNLL-2003 dev
sentences detokenized into raw text as people write it (`Moscow .` -> `Moscow.`, `do n't` ->
`don't`, `( AP )` -> `(AP)`), several times, and reports the median sentences/s. The reference is
the same sentences already tokenized, with `--tokenize whitespace`, timed in turn with the raw
runs (so both see the same machine load): the ratio is what tokenizing costs. It also checks that
the raw-text tokenizer gives back the dev tokens (the share of sentences tokenized exactly as
CoNLL-2003 did). Appends a row to docs/benchmarks.md. Default model: the shipped `en-ner`.

    DLCLI_DATA_DIR=../shared/datasets python bench/tag_raw_throughput.py
    python bench/tag_raw_throughput.py --model runs/bilstm_crf_conll2003_en.pt --sentences 20000 --repeats 5
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

from _report import add_row
from tag_throughput import time_cli

from dlcli.recipe import parse_section
from dlcli.tasks.tag import TagData
from dlcli.text.tagging import read_tagged
from dlcli.text.tokenize import tokenize

_NO_SPACE_BEFORE = re.compile(r" ([.,;:!?)\]}%]|n't|'(?:s|re|ve|ll|d|m))(?= |$)", re.IGNORECASE)
_NO_SPACE_AFTER = re.compile(r"(?:^|(?<= ))([(\[{$]) ")


def detokenize(tokens: list[str]) -> str:
    """Tokens as a person would type them: no space before closing punctuation and clitics, none
    after opening brackets; quotes are left spaced (which side they close is not known)."""
    text = " ".join(tokens)
    return _NO_SPACE_AFTER.sub(r"\1", _NO_SPACE_BEFORE.sub(r"\1", text))


def dev_sentences(data_root: Path) -> list[list[str]]:
    cfg = parse_section(TagData, {"format": "conll", "tag_column": 3}, "data")
    return [s.tokens for s in read_tagged(data_root / "conll2003_en" / "dev.iob1.txt", cfg)]


def make_input(path: Path, n: int, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(lines[i % len(lines)] + "\n")


def round_trip(sentences: list[list[str]]) -> float:
    """Share of the dev sentences whose detokenized text tokenizes back to the CoNLL tokens."""
    same = 0
    for tokens in sentences:
        text = detokenize(tokens)
        same += [text[s:e] for s, e in tokenize(text)] == tokens
    return same / len(sentences)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="en-ner")
    parser.add_argument("--sentences", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DLCLI_DATA_DIR", "data")))
    parser.add_argument("--no-append", action="store_true", help="print only; leave docs/benchmarks.md")
    args = parser.parse_args()

    sentences = dev_sentences(args.data_dir)
    exact = round_trip(sentences)
    tokens = sum(len(sentences[i % len(sentences)]) for i in range(args.sentences))
    with tempfile.TemporaryDirectory() as tmp:
        raw_path, tokenized_path, out_path = Path(tmp) / "raw.txt", Path(tmp) / "tokenized.txt", Path(tmp) / "out"
        make_input(raw_path, args.sentences, [detokenize(s) for s in sentences])
        make_input(tokenized_path, args.sentences, [" ".join(s) for s in sentences])
        runs, reference = [], []
        for _ in range(args.repeats):
            runs.append(time_cli(args.model, raw_path, out_path))
            produced = sum(1 for _ in open(out_path, encoding="utf-8"))
            if produced != args.sentences:
                sys.exit(f"dlcli tag wrote {produced} lines for {args.sentences} inputs")
            reference.append(time_cli(args.model, tokenized_path, out_path, "--tokenize", "whitespace"))

    seconds, ref_seconds = statistics.median(runs), statistics.median(reference)
    today = datetime.date.today().isoformat()
    row = (f"| {today} | tag throughput on raw text (tokenizing included), {args.model}, {args.sentences:,} "
           f"detokenized CoNLL dev sentences stdin -> JSONL; {exact:.1%} of dev sentences tokenize back to the "
           f"CoNLL tokens | {os.cpu_count()} cores | {args.sentences / seconds:,.0f} sentences/s, "
           f"{tokens / seconds:,.0f} tokens/s (median of {args.repeats}, start-up included) | "
           f"tokenized text, --tokenize whitespace: {args.sentences / ref_seconds:,.0f} sentences/s; "
           f"target 2,000 sentences/s | {ref_seconds / seconds:.2f}x of tokenized, "
           f"{args.sentences / seconds / 2000:.2f}x of target |")
    print(row)
    print(f"raw runs (s): {', '.join(f'{t:.2f}' for t in runs)}; tokenized runs (s): "
          f"{', '.join(f'{t:.2f}' for t in reference)}", file=sys.stderr)
    if not args.no_append:
        add_row("`dlcli tag` throughput on raw text (tokenizing included)",
                row + f" `python bench/tag_raw_throughput.py --model {args.model} --sentences {args.sentences}` |",
                intro="Target (issue 18): at least 2,000 sentences/s with en-ner on raw text, 2 CPU cores.",
                columns="| date | benchmark | machine | dlcli | reference | ratio | command |")


if __name__ == "__main__":
    main()
