"""The CLI end to end on a tiny trained checkpoint: classify, evaluate, info, recipes, help."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from helpers import LABELS, REPO, assert_ok, write_tsv

COMMANDS = [["train"], ["classify"], ["evaluate"], ["info"], ["recipes"], ["recipes", "list"], ["recipes", "show"],
            ["recipes", "validate"]]


def stdin_of(texts: list[str]) -> bytes:
    return "".join(t + "\n" for t in texts).encode("utf-8")


def classify(cli, model, texts: list[str], *options: str):
    result = cli("classify", model, *options, stdin=stdin_of(texts))
    assert_ok(result)
    return result.records()


# ---------------------------------------------------------------- classify


def test_classify_stdin_one_record_per_line_in_order(cli, trained, trained_dev):
    texts = [text for _, text in trained_dev] + [""]  # a blank line is a text too
    records = classify(cli, trained, texts)
    assert len(records) == len(texts)
    assert [r["id"] for r in records] == list(range(1, len(texts) + 1))
    for r in records:
        assert r.keys() == {"id", "label", "score", "top_k"}
        assert r["label"] in LABELS and 0.0 <= r["score"] <= 1.0
        assert r["top_k"] == [{"label": r["label"], "score": r["score"]}]
    right = sum(r["label"] == gold for r, (gold, _) in zip(records, trained_dev))
    assert right >= 0.9 * len(trained_dev)


def test_classify_file_argument_matches_stdin(cli, trained, trained_dev, tmp_path):
    texts = [text for _, text in trained_dev[:5]]
    path = tmp_path / "in.txt"
    path.write_bytes(stdin_of(texts))
    result = cli("classify", trained, path)
    assert_ok(result)
    assert result.records() == classify(cli, trained, texts)


def test_classify_top_k(cli, trained, trained_dev):
    for r in classify(cli, trained, [t for _, t in trained_dev[:6]], "--top-k", "3"):
        scores = [x["score"] for x in r["top_k"]]
        assert sorted(x["label"] for x in r["top_k"]) == LABELS
        assert scores == sorted(scores, reverse=True)
        assert sum(scores) == pytest.approx(1.0, abs=1e-4)  # softmax over all 3 labels
        assert (r["label"], r["score"]) == (r["top_k"][0]["label"], scores[0])


def test_classify_top_k_larger_than_labels_is_capped(cli, trained):
    (record,) = classify(cli, trained, ["red cat"], "--top-k", "10")
    assert len(record["top_k"]) == len(LABELS)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 1.0])
def test_classify_threshold_adds_labels(cli, trained, trained_dev, threshold):
    for r in classify(cli, trained, [t for _, t in trained_dev[:6]], "--top-k", "3", "--threshold", str(threshold)):
        assert set(r["labels"]) == {x["label"] for x in r["top_k"] if x["score"] >= threshold}
    if threshold == 0.0:
        assert set(r["labels"]) == set(LABELS)


def test_classify_jsonl_input_keeps_ids(cli, trained):
    lines = [{"id": "q-1", "text": "the red parrot"}, {"text": "seven green"}, {"id": 42, "text": "a dozen"}]
    data = "\n".join(json.dumps(x) for x in lines).encode() + b"\n"
    result = cli("classify", trained, "--input-format", "jsonl", stdin=data)
    assert_ok(result)
    assert [r["id"] for r in result.records()] == ["q-1", 2, 42]


def test_classify_empty_input_prints_nothing(cli, trained):
    result = cli("classify", trained, stdin=b"")
    assert_ok(result)
    assert result.out == ""


def test_classify_output_is_batch_size_independent(cli, trained, trained_dev):
    texts = [t for _, t in trained_dev]
    assert classify(cli, trained, texts, "--batch-size", "1") == classify(cli, trained, texts, "--batch-size", "64")


def test_classify_streams_in_chunks_keeping_order(trained, trained_dev):
    from dlcli import api

    texts = [text for _, text in trained_dev]
    chunks = list(api.predict(api.load_model(trained), api.text_chunks(io.BytesIO(stdin_of(texts)), chunk=5)))
    assert len(chunks) == math.ceil(len(texts) / 5)
    assert all(len(c) == 5 for c in chunks[:-1])
    assert [r["id"] for c in chunks for r in c] == list(range(1, len(texts) + 1))


# ---------------------------------------------------------------- evaluate


def check_report(report: dict, n: int) -> None:
    assert {"accuracy", "macro_f1", "per_label", "confusion", "n"} <= report.keys()
    assert report["n"] == n
    for scores in report["per_label"].values():
        assert scores.keys() == {"precision", "recall", "f1", "support"}
    matrix = report["confusion"]["matrix"]
    assert sum(map(sum, matrix)) == n
    assert report["accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(len(matrix))) / n)
    assert sum(s["support"] for s in report["per_label"].values()) == n


def evaluate(cli, *args) -> dict:
    result = cli("evaluate", *args)
    assert_ok(result)
    return result.json()  # exactly one line


def test_evaluate_prints_one_json_object(cli, trained, trained_dev):
    report = evaluate(cli, trained, trained.parent / "dev.tsv")
    check_report(report, len(trained_dev))
    assert report["confusion"]["labels"] == LABELS
    assert report["accuracy"] >= 0.9


def test_evaluate_reads_other_formats_with_overrides(cli, trained, trained_dev, tmp_path):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["text", "label"])
    writer.writerows((text, label) for label, text in trained_dev)
    path = tmp_path / "dev.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    as_csv = evaluate(cli, trained, path, "--format", "csv", "--header", "--label-column", "1", "--text-column", "0")
    as_tsv = evaluate(cli, trained, trained.parent / "dev.tsv")
    assert as_csv == as_tsv


def test_evaluate_jsonl(cli, trained, trained_dev, tmp_path):
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": g}) + "\n" for g, t in trained_dev), encoding="utf-8")
    assert evaluate(cli, trained, path, "--format", "jsonl") == evaluate(cli, trained, trained.parent / "dev.tsv")


def test_evaluate_counts_labels_the_model_never_saw(cli, trained, tmp_path):
    path = write_tsv(tmp_path / "dev.tsv", [("animal", "cat dog"), ("plant", "a tree")])
    report = evaluate(cli, trained, path)
    assert report["confusion"]["labels"] == [*LABELS, "plant"]
    assert report["per_label"]["plant"]["recall"] == 0.0
    assert report["accuracy"] <= 0.5


# ---------------------------------------------------------------- info


def test_info_shows_resolved_recipe_and_labels(cli, trained):
    result = cli("info", trained)
    assert_ok(result)
    info = result.json()
    assert info["task"] == "classify" and info["labels"] == LABELS
    model = info["recipe"]["model"]
    assert model["type"] == "textcnn" and model["num_filters"] == 8  # from the recipe
    assert model["max_norm"] == 3.0 and "init_scale" in model  # defaults the recipe left out
    assert info["recipe"]["train"]["epochs"] == 6
    assert info["parameters"] > 0 and info["vocab"]["type"] == "word"
    assert "state_dict" not in info and info["metrics"]["accuracy"] >= 0.9


# ---------------------------------------------------------------- recipes


def shipped_names() -> set[str]:
    root = REPO / "recipes"
    return {p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml")}


def test_recipes_list_names_every_shipped_recipe(cli):
    result = cli("recipes", "list")
    assert_ok(result)
    assert {line.split()[0] for line in result.lines} == shipped_names()
    assert "quickstart" in shipped_names()


def test_recipes_dir_can_be_moved(cli, tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "one.yaml").write_text("# One: a recipe of my own\ntask: classify\nmodel: fasttext\n")
    monkeypatch.setenv("DLCLI_RECIPES_DIR", str(tmp_path))
    result = cli("recipes", "list")
    assert_ok(result)
    assert result.lines == [f"{'mine/one':32s} One: a recipe of my own"]


def test_train_accepts_a_shipped_recipe_name(cli, tmp_path):
    out = tmp_path / "q.pt"
    result = cli("train", "quickstart", "--out", out, "--device", "cpu", "--quiet", "--set", "train.max_steps=2")
    assert_ok(result)
    assert result.json()["steps"] == 2
    assert cli("info", out).json()["labels"] == ["food", "sports", "tech", "weather"]


def test_recipes_show_prints_the_file(cli):
    result = cli("recipes", "show", "quickstart")
    assert_ok(result)
    assert result.out == (REPO / "recipes" / "quickstart.yaml").read_text(encoding="utf-8")


def test_recipes_validate(cli, dataset):
    good, quickstart = dataset.recipe(), REPO / "recipes" / "quickstart.yaml"
    result = cli("recipes", "validate", good, quickstart, "--set", "train.epochs=1")
    assert_ok(result)
    assert result.lines == [f"ok {good}", f"ok {quickstart}"]


def test_recipes_validate_refuses_a_bad_binding(cli, dataset):
    result = cli("recipes", "validate", dataset.recipe(), "--set", "model.embeding_dim=3")
    assert result.code == 2 and result.out == ""
    assert "model.embeding_dim: unknown key (did you mean 'embedding_dim'?)" in result.err


# ---------------------------------------------------------------- help


@pytest.mark.parametrize("command", [[], *COMMANDS], ids=lambda c: " ".join(c) or "dlcli")
def test_help_ends_with_examples(cli, command):
    result = cli(*command, "--help")
    assert_ok(result)
    assert "Usage: dlcli" in result.out
    examples = result.out[result.out.index("Examples") :]
    assert examples.count("dlcli ") >= 2


def test_version(cli):
    from dlcli import __version__

    result = cli("--version")
    assert_ok(result)
    assert result.out.strip() == __version__
