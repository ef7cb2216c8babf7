"""`dlcli train` / `tag` / `evaluate` for sequence labelling, on tiny learnable synthetic data."""

from __future__ import annotations

import pytest
from helpers import (
    assert_fails,
    assert_ok,
    synthetic_ner,
    synthetic_pos,
    synthetic_segmented,
    tag_recipe,
    train,
    write_conll,
)

from dlcli import api


@pytest.fixture(scope="session")
def ner_model(tmp_path_factory):
    """A BiLSTM-CRF (char CNN, BIO files re-tagged to BIOES, pieces of at most 6 tokens)."""
    root = tmp_path_factory.mktemp("ner")
    write_conll(root / "train.txt", synthetic_ner(150, seed=1))
    write_conll(root / "dev.txt", synthetic_ner(40, seed=2))
    recipe = tag_recipe(root, {"format": "conll", "tag_scheme": "bio", "train_scheme": "bioes", "max_length": 6},
                        {"char_encoder": "cnn", "char_dim": 8, "char_hidden": 8})
    summary = api.train(recipe, out=root / "ner.pt")
    assert summary["metric"] == "f1" and summary["best"] >= 0.95, summary
    return root / "ner.pt"


def test_tag_records_spans_and_blank_lines(cli, ner_model):
    result = cli("tag", ner_model, stdin=b"alice went to new york\n\n   \ncarol smith met dave in rome today\n")
    assert_ok(result)
    records = result.records()
    assert [r["id"] for r in records] == [1, 2, 3, 4]
    first = records[0]
    assert first["tokens"] == ["alice", "went", "to", "new", "york"]
    assert first["tags"] == ["S-PER", "O", "O", "B-LOC", "E-LOC"]
    assert first["spans"] == [{"start": 0, "end": 1, "label": "PER", "text": "alice", "char_start": 0, "char_end": 5},
                              {"start": 3, "end": 5, "label": "LOC", "text": "new york", "char_start": 14,
                               "char_end": 22}]
    assert records[1] == {"id": 2, "tokens": [], "tags": [], "spans": []}
    assert records[2]["tokens"] == []
    # 7 tokens: tagged as two pieces (max_length 6) and joined back, nothing lost
    assert [s["text"] for s in records[3]["spans"]] == ["carol smith", "dave", "rome"]


def test_long_sentences_lose_no_token(cli, ner_model):
    words = ("the bob went to paris and later saw alice in san jose today with carol smith " * 3).split()
    result = cli("tag", ner_model, stdin=(" ".join(words) + "\n").encode())
    record = result.json()
    assert record["tokens"] == words and len(record["tags"]) == len(words)
    assert [s["text"] for s in record["spans"]].count("san jose") == 3


def test_conll_and_text_formats(cli, ner_model):
    conll = cli("tag", ner_model, "--format", "conll", stdin=b"bob saw paris\nthe\n")
    assert_ok(conll)
    assert conll.out == "bob\tS-PER\nsaw\tO\nparis\tS-LOC\n\nthe\tO\n\n"
    text = cli("tag", ner_model, "-", "--format", "text", stdin=b"bob saw paris\n")
    assert text.out == "bob/S-PER saw/O paris/S-LOC\n"
    bio = cli("tag", ner_model, "--tag-scheme", "bio", "-f", "text", stdin=b"carol smith saw paris\n")
    assert bio.out == "carol/B-PER smith/I-PER saw/O paris/B-LOC\n"
    assert_fails(cli("tag", ner_model, "--tag-scheme", "xyz", stdin=b"bob\n"), 2, "--tag-scheme")


def test_n_best_lists_whole_sentence_alternatives(cli, ner_model):
    result = cli("tag", ner_model, "--n-best", "3", stdin=b"bob saw paris\n\n")
    assert_ok(result)
    first, empty = result.records()
    alternatives = first["n_best"]
    assert len(alternatives) == 3 and alternatives[0]["tags"] == first["tags"]
    probabilities = [a["probability"] for a in alternatives]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0 + 1e-6
    assert len({tuple(a["tags"]) for a in alternatives}) == 3
    assert empty["n_best"] == []


def test_model_option_and_input_file(cli, ner_model, tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("dave met bob\n", encoding="utf-8")
    by_option = cli("tag", path, "--model", ner_model)
    by_position = cli("tag", ner_model, path)
    assert_ok(by_option)
    assert by_option.out == by_position.out
    assert [s["text"] for s in by_option.json()["spans"]] == ["dave", "bob"]


def test_evaluate_reports_conlleval_scores(cli, ner_model):
    result = cli("evaluate", ner_model, ner_model.parent / "dev.txt")
    assert_ok(result)
    report = result.json()
    assert report["f1"] >= 0.95 and report["accuracy"] >= 0.95
    assert set(report["per_type"]) == {"PER", "LOC"} and report["n"] == 40
    assert report["n_spans"] == sum(t["support"] for t in report["per_type"].values())


def test_segmenter_round_trip(cli, tmp_path):
    for name, seed, n in (("train.txt", 1, 200), ("dev.txt", 2, 40)):
        (tmp_path / name).write_text("".join(" ".join(s) + "\n" for s in synthetic_segmented(n, seed)),
                                     encoding="utf-8")
    recipe = tag_recipe(tmp_path, {"format": "segmented", "tag_scheme": "bmes", "bigrams": True})
    assert_ok(train(cli, recipe, tmp_path / "seg.pt"))
    result = cli("tag", tmp_path / "seg.pt", "--format", "text", stdin="我们 喜欢北京的天气\n".encode())
    assert_ok(result)
    assert result.out == "我们 喜欢 北京 的 天气\n"  # spaces in the input are not tokens
    report = cli("evaluate", tmp_path / "seg.pt", tmp_path / "dev.txt").json()
    assert report["f1"] >= 0.95 and set(report["per_type"]) == {""}


def test_pos_tagger_reports_accuracy(cli, tmp_path):
    for name, seed, n in (("train.txt", 1, 120), ("dev.txt", 2, 30)):
        (tmp_path / name).write_text("".join(s + "\n" for s in synthetic_pos(n, seed)), encoding="utf-8")
    recipe = tag_recipe(tmp_path, {"format": "word_tag", "tag_scheme": "none"},
                        {"type": "bilstm_softmax", "char_encoder": "lstm"})
    assert_ok(train(cli, recipe, tmp_path / "pos.pt"))
    assert_fails(cli("tag", tmp_path / "pos.pt", "--n-best", "2", stdin=b"we\n"), 1, "needs a model with a CRF")
    assert cli("tag", tmp_path / "pos.pt", "-f", "text", stdin=b"we like the weather\n").out == \
        "we/r like/v the/u weather/n\n"
    report = cli("evaluate", tmp_path / "pos.pt", tmp_path / "dev.txt").json()
    assert report["accuracy"] >= 0.95 and "f1" not in report


# ---------------------------------------------------------------- bad input


def test_unknown_tag_in_training_data(cli, tmp_path):
    write_conll(tmp_path / "train.txt", [[("bob", "B-PER")], [("rome", "U-LOC"), ("x", "O")]])
    write_conll(tmp_path / "dev.txt", [[("bob", "B-PER")]])
    recipe = tag_recipe(tmp_path, {"format": "conll"})
    assert_fails(train(cli, recipe, tmp_path / "m.pt"), 1, "train.txt:3: tag 'U-LOC' is not a BIO tag")


def test_broken_columns_in_training_data(cli, tmp_path):
    (tmp_path / "train.txt").write_text("bob B-PER\nsaw O extra\n", encoding="utf-8")
    write_conll(tmp_path / "dev.txt", [[("bob", "B-PER")]])
    recipe = tag_recipe(tmp_path, {"format": "conll"})
    assert_fails(train(cli, recipe, tmp_path / "m.pt"), 1, "train.txt:2: 3 columns")


def test_orphan_inside_tags_are_reported_not_fixed(cli, tmp_path):
    good = synthetic_ner(30, 1)
    write_conll(tmp_path / "train.txt", good + [[("bob", "I-PER"), ("x", "O")]])
    orphan_line = sum(len(s) + 1 for s in good) + 1
    write_conll(tmp_path / "dev.txt", synthetic_ner(5, 2))
    recipe = tag_recipe(tmp_path, {"format": "conll"}, epochs=1)
    result = cli("train", recipe, "--out", tmp_path / "m.pt")
    assert_ok(result)
    assert "1 sentence(s) have a span opening with a continuation tag" in " ".join(result.err.split())
    assert f"at line {orphan_line})" in " ".join(result.err.split())


def test_recipe_with_a_classification_format_is_a_usage_error(cli, tmp_path):
    recipe = tag_recipe(tmp_path, {"format": "tsv"})
    assert_fails(cli("recipes", "validate", recipe), 2, "data.format: 'tsv' is not one of conll, segmented, word_tag")


def test_models_refuse_the_other_command(cli, ner_model, trained):
    assert_fails(cli("classify", ner_model, stdin=b"bob\n"), 1, "needs a classify model", "dlcli tag")
    assert_fails(cli("tag", trained, stdin=b"bob\n"), 1, "needs a tag model", "dlcli classify")


def test_bad_format_option(cli, ner_model):
    assert_fails(cli("tag", ner_model, "--format", "xml", stdin=b"bob\n"), 2, "--format")


def test_pretrained_vectors_initialise_the_word_embedding(cli, tmp_path):
    write_conll(tmp_path / "train.txt", synthetic_ner(20, 1))
    write_conll(tmp_path / "dev.txt", synthetic_ner(5, 2))
    (tmp_path / "vectors.txt").write_text("2 16\n" + "\n".join(f"{w} " + " ".join(["0.25"] * 16)
                                                              for w in ("paris", "zzz")) + "\n", encoding="utf-8")
    recipe = tag_recipe(tmp_path, {"format": "conll", "vectors": "./vectors.txt"}, epochs=1)
    result = cli("train", recipe, "--out", tmp_path / "m.pt")
    assert_ok(result)
    assert "initialised 1 of" in result.err
    wrong = tag_recipe(tmp_path, {"format": "conll", "vectors": "./vectors.txt"}, {"embedding_dim": 8},
                       name="wrong.yaml", epochs=1)
    assert_fails(train(cli, wrong, tmp_path / "w.pt"), 1, "16 dimensions, the model's embedding 8",
                 "model.embedding_dim: 16")


def test_evaluate_reads_other_layouts(cli, ner_model, tmp_path):
    sentences = synthetic_ner(20, 5)
    path = tmp_path / "three.txt"
    path.write_text("".join("".join(f"{t} NN {g}\n" for t, g in s) + "\n" for s in sentences), encoding="utf-8")
    result = cli("evaluate", ner_model, path, "--tag-column", "2", "--tag-scheme", "bio")
    assert_ok(result)
    assert result.json()["n"] == 20 and result.json()["f1"] >= 0.9
    assert_fails(cli("evaluate", ner_model, path, "--tag-scheme", "bilou"), 2, "data.tag_scheme")


def test_resumed_tagger_training_matches_a_straight_run(cli, tmp_path):
    from helpers import assert_same_tensors

    from dlcli import checkpoint

    write_conll(tmp_path / "train.txt", synthetic_ner(40, 1))
    write_conll(tmp_path / "dev.txt", synthetic_ner(8, 2))
    recipe = tag_recipe(tmp_path, {"format": "conll", "bigrams": True},
                        {"char_encoder": "lstm", "char_dim": 4, "char_hidden": 4, "word_dropout": 0.2, "dropout": 0.3},
                        epochs=2)
    assert_ok(train(cli, recipe, tmp_path / "straight.pt"))
    assert_ok(train(cli, recipe, tmp_path / "resumed.pt", "--set", "train.epochs=1"))
    assert_ok(train(cli, recipe, tmp_path / "resumed.pt", "--resume"))
    assert_same_tensors(checkpoint.load(tmp_path / "resumed.pt")["state_dict"],
                        checkpoint.load(tmp_path / "straight.pt")["state_dict"])


def test_tagging_recipe_needs_a_word_vocabulary(cli, tmp_path):
    recipe = tag_recipe(tmp_path, {"format": "conll"})
    recipe.write_text(recipe.read_text(encoding="utf-8").replace("type: word", "type: bpe"), encoding="utf-8")
    assert_fails(cli("recipes", "validate", recipe), 2, "vocab.type: tagging reads its tokens from the data")
