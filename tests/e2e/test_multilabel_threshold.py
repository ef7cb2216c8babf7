"""A one-vs-all multi-label model: `dlcli evaluate --threshold` scores exactly the label sets that
`dlcli classify --threshold` predicts, worked out here by hand from those predictions."""

from __future__ import annotations

import random

import pytest
from helpers import FILLER, LABELS, TOPICS, assert_ok, train

THRESHOLDS = (0.1, 0.5, 0.9)


def fasttext_lines(n: int, seed: int) -> list[tuple[set[str], str]]:
    """(gold labels, text): one or two labels a line, one keyword per label among filler words."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        labels = set(rng.sample(LABELS, rng.randint(1, 2)))
        words = [rng.choice(TOPICS[label]) for label in sorted(labels)] + rng.sample(FILLER, 3)
        rng.shuffle(words)
        out.append((labels, " ".join(words)))
    return out


def write_fasttext(path, rows) -> None:
    path.write_text("".join(" ".join([*(f"__label__{x}" for x in sorted(g)), text]) + "\n" for g, text in rows),
                    encoding="utf-8")


def by_hand(gold: list[set[str]], pred: list[set[str]]) -> dict:
    """Per-label and micro precision / recall / F1; a label with no gold and no prediction is left out."""
    def prf(tp, fp, fn):
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    per_label, total = {}, [0, 0, 0]
    for label in LABELS:
        counts = [sum(label in g and label in p for g, p in zip(gold, pred)),
                  sum(label not in g and label in p for g, p in zip(gold, pred)),
                  sum(label in g and label not in p for g, p in zip(gold, pred))]
        total = [a + b for a, b in zip(total, counts)]
        if any(counts):
            p, r, f = prf(*counts)
            per_label[label] = {"precision": p, "recall": r, "f1": f, "support": counts[0] + counts[2]}
    p, r, f = prf(*total)
    return {"per_label": per_label, "precision": p, "recall": r, "micro_f1": f,
            "accuracy": sum(g == p for g, p in zip(gold, pred)) / len(gold)}


def test_evaluate_threshold_scores_what_classify_threshold_predicts(cli, dataset):
    write_fasttext(dataset.root / "train.txt", fasttext_lines(60, seed=1))
    dev = fasttext_lines(30, seed=2)
    write_fasttext(dataset.root / "dev.txt", dev)
    data = {"train": "./train.txt", "dev": "./dev.txt", "format": "fasttext"}
    out = dataset.root / "m.pt"
    # a few epochs: scores spread out between the thresholds, so each threshold predicts other sets
    assert_ok(train(cli, dataset.recipe(data=data, train={"epochs": 3, "optimizer": {"type": "adam", "lr": 0.2}}),
                    out))
    gold, texts = [g for g, _ in dev], "".join(text + "\n" for _, text in dev).encode()
    reports = {}
    for threshold in THRESHOLDS:
        predicted = cli("classify", out, "--threshold", threshold, stdin=texts).records()
        assert len(predicted) == len(dev)
        want = by_hand(gold, [set(r["labels"]) for r in predicted])
        got = cli("evaluate", out, dataset.root / "dev.txt", "--threshold", threshold).json()
        assert got["n"] == len(dev)
        assert got["per_label"].keys() == want["per_label"].keys()
        for label, scores in want["per_label"].items():
            assert got["per_label"][label] == pytest.approx(scores), (threshold, label)
        for key in ("precision", "recall", "micro_f1", "accuracy"):
            assert got[key] == pytest.approx(want[key]), (threshold, key)
        reports[threshold] = got
    low, middle, high = (reports[t] for t in THRESHOLDS)
    assert low["per_label"] != middle["per_label"] != high["per_label"]  # the threshold changes the scores
    assert low["recall"] >= middle["recall"] >= high["recall"] and low["recall"] > high["recall"]
    assert cli("evaluate", out, dataset.root / "dev.txt").json() == middle  # no --threshold: 0.5
