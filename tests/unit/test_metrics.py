"""Classification metrics against hand-worked numbers."""

from __future__ import annotations

import pytest

from dlcli.metrics import classification_report, multilabel_report


def test_classification_report_hand_worked():
    # gold a a b b c ; predicted a b b b a
    report = classification_report([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert report["n"] == 5
    assert report["accuracy"] == pytest.approx(3 / 5)
    assert report["confusion"] == {"labels": ["a", "b", "c"], "matrix": [[1, 1, 0], [0, 2, 0], [1, 0, 0]]}
    per = report["per_label"]
    assert per["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert per["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert per["c"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})
    assert report["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_labels_never_seen_nor_predicted_do_not_dilute_macro_f1():
    with_unused = classification_report([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c", "d"])
    assert "d" not in with_unused["per_label"]
    assert with_unused["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert len(with_unused["confusion"]["matrix"]) == 4


def test_classification_report_perfect_and_empty():
    assert classification_report([1, 0], [1, 0], ["a", "b"])["macro_f1"] == 1.0
    assert classification_report([], [], ["a"])["accuracy"] == 0.0


def test_classification_report_refuses_length_mismatch():
    with pytest.raises(ValueError):
        classification_report([0, 1], [0], ["a", "b"])


def test_multilabel_report_hand_worked():
    gold = [{0, 1}, {1}, {2}]
    pred = [{0}, {1}, {1, 2}]
    report = multilabel_report(gold, pred, ["a", "b", "c"])
    assert report["n"] == 3
    assert report["accuracy"] == pytest.approx(1 / 3)  # exact match on the second example only
    per = report["per_label"]
    assert per["a"] == pytest.approx({"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1})
    assert per["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert per["c"] == pytest.approx({"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1})
    # micro: tp 3, fp 1, fn 1
    assert (report["precision"], report["recall"], report["micro_f1"]) == pytest.approx((0.75, 0.75, 0.75))
    assert report["macro_f1"] == pytest.approx(2.5 / 3)
