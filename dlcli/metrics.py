"""Evaluation metrics, returned as plain JSON-ready dicts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from dlcli.text.tagging import spans


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def classification_report(gold: Sequence[int], pred: Sequence[int], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 over labels present in gold or predictions, per-label P/R/F1, confusion."""
    k = len(labels)
    confusion = [[0] * k for _ in range(k)]  # rows: gold, columns: predicted
    for g, p in zip(gold, pred, strict=True):
        confusion[g][p] += 1
    n = len(gold)
    correct = sum(confusion[i][i] for i in range(k))
    per_label, f1s = {}, []
    for i, name in enumerate(labels):
        tp = confusion[i][i]
        support = sum(confusion[i])
        predicted = sum(row[i] for row in confusion)
        if support == 0 and predicted == 0:
            continue
        precision, recall, f1 = _prf(tp, predicted - tp, support - tp)
        per_label[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        f1s.append(f1)
    accuracy = correct / n if n else 0.0
    return {
        "accuracy": accuracy,
        "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
        "micro_f1": accuracy,  # one gold and one predicted label per example: micro-F1 = accuracy
        "n": n,
        "per_label": per_label,
        "confusion": {"labels": list(labels), "matrix": confusion},
    }


def multilabel_report(gold: Sequence[set[int]], pred: Sequence[set[int]], labels: Sequence[str]) -> dict:
    """Subset accuracy, micro/macro F1 and per-label P/R/F1 for multi-label predictions."""
    per_label, f1s = {}, []
    tp_all = fp_all = fn_all = 0
    for i, name in enumerate(labels):
        tp = sum(1 for g, p in zip(gold, pred) if i in g and i in p)
        fp = sum(1 for g, p in zip(gold, pred) if i not in g and i in p)
        fn = sum(1 for g, p in zip(gold, pred) if i in g and i not in p)
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
        if tp + fp + fn == 0:
            continue
        precision, recall, f1 = _prf(tp, fp, fn)
        per_label[name] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
        f1s.append(f1)
    precision, recall, micro_f1 = _prf(tp_all, fp_all, fn_all)
    n = len(gold)
    return {
        "accuracy": sum(1 for g, p in zip(gold, pred) if g == p) / n if n else 0.0,
        "micro_f1": micro_f1,
        "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
        "precision": precision,
        "recall": recall,
        "n": n,
        "per_label": per_label,
    }


def tagging_report(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], with_spans: bool = True) -> dict:
    """Token accuracy and, for span schemes, conlleval's micro P/R/F1 with per-type scores.

    Spans come from `dlcli.text.tagging.spans` (conlleval's chunk rules), so for a segmenter
    (untyped B/M/E/S tags) P/R/F1 are word-level segmentation scores.
    """
    tokens = correct = 0
    found, guessed, hit = Counter(), Counter(), Counter()
    for g, p in zip(gold, pred, strict=True):
        if len(g) != len(p):
            raise ValueError(f"a gold sentence has {len(g)} tags and its prediction {len(p)}")
        tokens += len(g)
        correct += sum(1 for a, b in zip(g, p) if a == b)
        if with_spans:
            gold_spans, pred_spans = set(spans(list(g))), set(spans(list(p)))
            found.update(kind for _, _, kind in gold_spans)
            guessed.update(kind for _, _, kind in pred_spans)
            hit.update(kind for _, _, kind in gold_spans & pred_spans)
    report = {"accuracy": correct / tokens if tokens else 0.0, "n": len(gold), "n_tokens": tokens}
    if with_spans:
        precision, recall, f1 = _prf(sum(hit.values()), sum(guessed.values()) - sum(hit.values()),
                                     sum(found.values()) - sum(hit.values()))
        per_type = {}
        for kind in sorted(set(found) | set(guessed)):
            p_, r_, f_ = _prf(hit[kind], guessed[kind] - hit[kind], found[kind] - hit[kind])
            per_type[kind] = {"precision": p_, "recall": r_, "f1": f_, "support": found[kind]}
        report.update(f1=f1, precision=precision, recall=recall, n_spans=sum(found.values()),
                      per_type=per_type)
    return report
