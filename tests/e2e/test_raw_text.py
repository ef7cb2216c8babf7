"""Raw text in, character offsets out: `dlcli tag` and `dlcli classify` on untokenized lines."""

from __future__ import annotations

import random

import pytest
import yaml
from helpers import assert_fails, assert_ok, recipe_dict, write_tsv
from hypothesis import given, settings
from hypothesis import strategies as st

from dlcli import api, numpy_predict
from dlcli.errors import RecipeError
from dlcli.recipe import parse_section
from dlcli.tasks.classify import ClassifyPredict
from dlcli.tasks.tag import TagPredict

OBAMA = "Barack Obama met Vladimir Putin in Moscow and discussed Gazprom."


@pytest.fixture(scope="module")
def en_ner():
    return api.load_model("en-ner")


@pytest.fixture(scope="module")
def zh_ner():
    return api.load_model("zh-ner")


def test_tag_splits_the_period_off_raw_text(cli):
    result = cli("tag", stdin=(OBAMA + "\n").encode())
    assert_ok(result)
    record = result.json()
    assert record["tokens"][-2:] == ["Gazprom", "."]
    gazprom = record["spans"][-1]
    assert gazprom["text"] == "Gazprom" and (gazprom["char_start"], gazprom["char_end"]) == (56, 63)
    assert [s["text"] for s in record["spans"]] == ["Barack Obama", "Vladimir Putin", "Moscow", "Gazprom"]
    assert "token_offsets" not in record
    # already tokenized input, split on whitespace only: the old behaviour
    pretokenized = cli("tag", "--tokenize", "whitespace", stdin=(OBAMA + "\n").encode()).json()
    assert pretokenized["tokens"][-1] == "Gazprom."


def test_tag_tokens_option_gives_each_tokens_offsets(cli):
    line = "I  met\tthe U.S. envoy, didn't I?"
    record = cli("tag", "--tokens", stdin=(line + "\n").encode()).json()
    assert record["tokens"] == ["I", "met", "the", "U.S.", "envoy", ",", "did", "n't", "I", "?"]
    assert [line[s:e] for s, e in record["token_offsets"]] == record["tokens"]
    assert record["token_offsets"][:2] == [[0, 1], [3, 6]]


def test_tag_refuses_an_unknown_tokenize_mode(cli):
    assert_fails(cli("tag", "--tokenize", "spacy", stdin=b"a b\n"), 2, "--tokenize", "'spacy'")


def test_tag_jsonl_text_offsets_count_the_field_as_given(cli):
    stdin = b'{"id": "x", "text": "\\tMoscow,  Russia "}\n'
    record = cli("tag", "--input-format", "jsonl", stdin=stdin).json()
    assert [(s["text"], s["char_start"]) for s in record["spans"]] == [("Moscow", 1), ("Russia", 10)]


def test_predict_and_old_checkpoints_default_to_auto(cli):
    record = cli("predict", "en-ner", "--set", "tokenize=whitespace", stdin=(OBAMA + "\n").encode()).json()
    assert record["tokens"][-1] == "Gazprom."
    record = cli("predict", "en-ner", stdin=(OBAMA + "\n").encode()).json()  # a format-1 file: no predict.tokenize
    assert record["tokens"][-1] == "."


def test_the_checkpoints_predict_section_sets_the_default_mode():
    with pytest.raises(RecipeError, match="tokenize"):
        parse_section(TagPredict, {"tokenize": "spacy"}, "predict")
    assert parse_section(ClassifyPredict, {}, "predict").tokenize == "auto"
    loaded = api.load_model("en-ner")
    loaded.data["recipe"]["predict"]["tokenize"] = "whitespace"  # as a recipe's `predict:` would store it
    assert next(api.predict(loaded, [([1], [OBAMA])]))[0]["tokens"][-1] == "Gazprom."
    assert next(api.predict(loaded, [([1], [OBAMA])], tokenize="auto"))[0]["tokens"][-1] == "."


# Lines as people type them: mixed scripts, tabs, runs of spaces, emoji, clitics, numbers, URLs.
PIECES = st.sampled_from(["Obama", "Moscow", "don't", "John's", "U.S.", "Mr.", "3.14", "1,000", "a@b.co",
                          "http://x.y/z", "well-known", "北京", "上海市", "你好", "，", "。", "😀", "👍🏽", "é",
                          "İstanbul", ".", ",", "(", ")", "\"", "#x", "Σίσυφος", "Gazprom."])
SPACES = st.sampled_from([" ", "  ", "\t", " \t ", "\u3000", "\u00a0", ""])
LINES = st.lists(st.tuples(SPACES, PIECES), min_size=1, max_size=10).map(lambda xs: "".join(s + p for s, p in xs))


def assert_offsets(line: str, record: dict) -> None:
    assert len(record["token_offsets"]) == len(record["tokens"])
    assert [line[s:e] for s, e in record["token_offsets"]] == record["tokens"]
    for span in record["spans"]:
        assert line[span["char_start"]:span["char_end"]] == span["text"]
        assert span["char_start"] == record["token_offsets"][span["start"]][0]
        assert span["char_end"] == record["token_offsets"][span["end"] - 1][1]


@settings(max_examples=60, deadline=None)
@given(st.lists(LINES, min_size=1, max_size=4), st.sampled_from(["auto", "whitespace"]))
def test_offsets_point_into_the_line_word_level(en_ner, lines, mode):
    records = next(api.predict(en_ner, [(list(range(len(lines))), lines)], tokenize=mode, token_offsets=True))
    for line, record in zip(lines, records, strict=True):
        assert_offsets(line, record)
        if mode == "whitespace":
            assert record["tokens"] == line.split()


@settings(max_examples=40, deadline=None)
@given(st.lists(LINES, min_size=1, max_size=4))
def test_offsets_point_into_the_line_character_level(zh_ner, lines):
    records = next(api.predict(zh_ner, [(list(range(len(lines))), lines)], token_offsets=True))
    for line, record in zip(lines, records, strict=True):
        assert_offsets(line, record)
        assert record["tokens"] == [c for c in line if not c.isspace()]


# ---------------------------------------------------------------- classify

CLITIC_ROWS = [("neg", "this film is n't good"), ("neg", "it does n't work at all"), ("neg", "we did n't like it"),
               ("pos", "this film is good"), ("pos", "it does work at all"), ("pos", "we did like it")]


@pytest.fixture(scope="module")
def clitic_data(tmp_path_factory):
    """Sentiment carried by the clitic n't alone, in PTB-tokenized training text (as SST writes it)."""
    root = tmp_path_factory.mktemp("clitics")
    rng = random.Random(3)
    rows = [CLITIC_ROWS[rng.randrange(len(CLITIC_ROWS))] for _ in range(240)]
    write_tsv(root / "train.tsv", rows)
    write_tsv(root / "dev.tsv", CLITIC_ROWS * 2)
    return root


def _recipe(root, model: dict, name: str):
    path = root / name
    recipe = recipe_dict(model, train={"epochs": 6, "batch_size": 16, "optimizer": {"type": "adam", "lr": 0.05}})
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def clitic_fasttext(clitic_data):
    summary = api.train(_recipe(clitic_data, {"type": "fasttext", "embedding_dim": 16}, "ft.yaml"),
                        out=clitic_data / "ft.pt")
    assert summary["best"] == 1.0, summary
    return clitic_data / "ft.pt"


RAW = ["This film isn't good.", "It doesn't work at all!", "This film is good.", "We didn't like it..."]


def test_classify_tokenizes_raw_text_as_training_text_was(cli, clitic_fasttext):
    stdin = "".join(t + "\n" for t in RAW).encode()
    auto = cli("classify", clitic_fasttext, stdin=stdin)
    assert_ok(auto)
    assert [r["label"] for r in auto.records()] == ["neg", "neg", "pos", "neg"]
    # as written, "isn't" is a word the model never saw: the n't that carries the label is lost
    whitespace = cli("classify", clitic_fasttext, "--tokenize", "whitespace", stdin=stdin).records()
    assert [r["label"] for r in whitespace] != ["neg", "neg", "pos", "neg"]


def test_numpy_and_torch_backends_tokenize_alike(clitic_fasttext):
    numpy_backend = api.load_predictor(clitic_fasttext, "cpu", {"tokenize"})
    assert isinstance(numpy_backend, numpy_predict.FastTextClassifier)
    torch_model = api.load_model(clitic_fasttext)
    for mode in ("auto", "whitespace"):
        a = next(api.predict(numpy_backend, [(list(range(len(RAW))), RAW)], tokenize=mode))
        b = next(api.predict(torch_model, [(list(range(len(RAW))), RAW)], tokenize=mode))
        assert [r["label"] for r in a] == [r["label"] for r in b]
        assert [r["score"] for r in a] == pytest.approx([r["score"] for r in b], abs=1e-5)


def test_classify_explain_offsets_point_into_the_line(cli, clitic_data):
    model = {"type": "attn_lstm", "embedding_dim": 16, "hidden_size": 16}
    out = api.train(_recipe(clitic_data, model, "attn.yaml"), out=clitic_data / "attn.pt")["checkpoint"]
    lines = ["  This\tfilm  isn't GOOD.", "We didn't like it 😀 …", "İt does work"]
    result = cli("classify", out, "--explain", stdin="".join(t + "\n" for t in lines).encode())
    assert_ok(result)
    records = result.records()
    assert [a["token"] for a in records[0]["attention"]] == ["this", "film", "is", "n't", "good", "."]
    for line, record in zip(lines, records, strict=True):
        for entry in record["attention"]:
            assert line[entry["char_start"]:entry["char_end"]] == entry["text"]
            assert entry["token"] in entry["text"].lower()  # "İ" lowercases to two characters, two tokens
    assert records[0]["attention"][3]["text"] == "n't" and records[0]["attention"][3]["char_start"] == 15
    whitespace = cli("classify", out, "--explain", "--tokenize", "whitespace", stdin=(lines[0] + "\n").encode())
    assert [a["text"] for a in whitespace.json()["attention"]] == ["This", "film", "isn't", "GOOD", "."]
