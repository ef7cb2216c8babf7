"""`dlcli cross-validate` and `data.dev_from_train`: dev splits carved from the training file."""

from __future__ import annotations

import json
import statistics

import pytest
from helpers import TINY_FASTTEXT, assert_fails, assert_ok, read_tsv, synthetic_ner, tag_recipe, train, write_conll

from dlcli import checkpoint


def dev_sizes(log_path) -> set[int]:
    return {json.loads(line)["dev"]["n"] for line in log_path.read_text().splitlines() if '"dev"' in line}


def test_cross_validation_reports_each_fold_and_the_fold_mean_curve(cli, dataset, tmp_path):
    recipe = dataset.recipe(model=TINY_FASTTEXT, train={"epochs": 3})
    result = cli("cross-validate", recipe, "--folds", 3, "--keep", tmp_path / "folds", "--quiet")
    assert_ok(result)
    report = result.json()
    assert report["metric"] == "accuracy" and report["folds"] == 3
    assert [f["fold"] for f in report["per_fold"]] == [0, 1, 2]
    n_train = len(read_tsv(dataset.train))
    logs = []
    for fold in report["per_fold"]:
        log = checkpoint.sidecar(tmp_path / "folds" / f"fold{fold['fold']}.pt", "metrics.jsonl")
        assert dev_sizes(log) == {n_train // 3}  # the held-out block, not dev.tsv
        logs.append([json.loads(line)["dev"]["accuracy"] for line in log.read_text().splitlines()])
        assert fold["best"] == max(logs[-1])
    assert len(report["by_eval"]) == 3
    for i, row in enumerate(report["by_eval"]):
        assert row["epoch"] == i + 1
        assert row["mean"] == pytest.approx(statistics.fmean(log[i] for log in logs))
        assert row["std"] == pytest.approx(statistics.stdev(log[i] for log in logs))
    assert report["at_best"] == max(report["by_eval"], key=lambda row: row["mean"])
    assert report["best_mean"]["mean"] == pytest.approx(statistics.fmean(max(log) for log in logs))
    assert report["at_best"]["mean"] <= report["best_mean"]["mean"] + 1e-12  # the fold's own best flatters


def test_without_keep_the_fold_checkpoints_are_removed(cli, dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    recipe = dataset.recipe(model=TINY_FASTTEXT, train={"epochs": 1})
    assert_ok(cli("cross-validate", recipe, "--folds", 2, "--quiet"))
    assert not list(tmp_path.glob("dlcli-cv-*"))


def test_dev_from_train_holds_out_the_last_records_of_the_training_file(cli, dataset, tmp_path):
    recipe = dataset.recipe(model=TINY_FASTTEXT, data={"dev": None, "dev_from_train": 0.25}, train={"epochs": 1})
    out = tmp_path / "m.pt"
    assert_ok(train(cli, recipe, out))
    assert dev_sizes(checkpoint.sidecar(out, "metrics.jsonl")) == {round(len(read_tsv(dataset.train)) * 0.25)}


def test_one_fold_is_not_a_cross_validation(cli, dataset):
    recipe = dataset.recipe(model=TINY_FASTTEXT)
    assert_fails(cli("cross-validate", recipe, "--folds", 1, "--quiet"), 2, "--folds: 1 is not a cross-validation")


def test_a_task_without_records_to_fold_is_refused(cli, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a b c d\n" * 20, encoding="utf-8")
    recipe = tmp_path / "lm.yaml"
    recipe.write_text(f"task: lm\ndata: {{train: {corpus}}}\nmodel: {{type: rnn_lm}}\n", encoding="utf-8")
    assert_fails(cli("cross-validate", recipe, "--folds", 2, "--quiet"), 2,
                 "the lm task's data cannot be cut into folds")


@pytest.mark.parametrize("data,fragment", [
    ({"dev_from_train": 0.2}, "data.dev_from_train: the recipe names data.dev too"),
    ({"dev": None, "folds": 3, "fold": 5}, "data.fold: 5 is not a fold of 3"),
    ({"folds": 3}, "data.folds: the held-out fold is the dev split, and data.dev names another"),
])
def test_train_refuses_a_dev_split_named_twice_or_a_missing_fold(cli, dataset, tmp_path, data, fragment):
    recipe = dataset.recipe(model=TINY_FASTTEXT, data=data)
    assert_fails(train(cli, recipe, tmp_path / "m.pt"), 2, fragment)


def test_a_tagger_cross_validates_on_sentences(cli, tmp_path):
    write_conll(tmp_path / "train.txt", synthetic_ner(30, seed=1))
    recipe = tag_recipe(tmp_path, {"format": "conll", "dev": None}, epochs=2)
    result = cli("cross-validate", recipe, "--folds", 3, "--keep", tmp_path / "folds", "--quiet")
    assert_ok(result)
    report = result.json()
    assert report["metric"] == "f1" and len(report["per_fold"]) == 3 and len(report["by_eval"]) == 2
    for fold in range(3):
        log = checkpoint.sidecar(tmp_path / "folds" / f"fold{fold}.pt", "metrics.jsonl")
        assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1, 2]
