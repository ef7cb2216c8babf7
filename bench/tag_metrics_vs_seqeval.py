"""Check: `dlcli evaluate`'s span scores equal seqeval's (conlleval mode) on the same predictions.

Tags a dev file with a model, scores the predictions with dlcli.metrics.tagging_report and with
seqeval, and prints both (they must agree to 1e-9). Appends a row to docs/benchmarks.md.

    DLCLI_DATA_DIR=../shared/datasets python bench/tag_metrics_vs_seqeval.py --model en-ner \\
        --data conll2003_en/dev.iob1.txt
"""

from __future__ import annotations

import argparse
import datetime
import os

from _report import add_row
from seqeval import metrics as seqeval

from dlcli import api
from dlcli.metrics import tagging_report
from dlcli.recipe import data_root, parse_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="en-ner")
    parser.add_argument("--data", default="conll2003_en/dev.iob1.txt", help="relative to the data root")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    loaded = api.load_model(args.model)
    cfg = parse_section(loaded.task.data_section, loaded.recipe["data"], "data")
    sentences = loaded.task.read(data_root() / args.data, cfg)
    pred = loaded.task.tag_sentences(loaded.model, [s.tokens for s in sentences], [s.features for s in sentences])
    gold = [s.tags for s in sentences]
    ours = tagging_report(gold, pred)
    theirs = {"f1": seqeval.f1_score(gold, pred), "precision": seqeval.precision_score(gold, pred),
              "recall": seqeval.recall_score(gold, pred), "accuracy": seqeval.accuracy_score(gold, pred)}
    for key, value in theirs.items():
        print(f"{key:10s} dlcli {ours[key]:.6f}  seqeval {value:.6f}")
        assert abs(ours[key] - value) < 1e-9, key
    row = (f"| {datetime.date.today().isoformat()} | span metrics vs seqeval, {args.model} on {args.data} "
           f"({len(sentences):,} sentences) | {os.cpu_count()} cores | F1 {ours['f1']:.6f}, P {ours['precision']:.6f}, "
           f"R {ours['recall']:.6f} | seqeval F1 {theirs['f1']:.6f} | equal | "
           f"`python bench/tag_metrics_vs_seqeval.py --model {args.model} --data {args.data}` |")
    print(row)
    if not args.no_append:
        add_row("Tagging metrics against seqeval", row,
                intro="dlcli's conlleval-style span scores next to seqeval's on the same predictions.",
                columns="| date | check | machine | dlcli | seqeval | result | command |")


if __name__ == "__main__":
    main()
