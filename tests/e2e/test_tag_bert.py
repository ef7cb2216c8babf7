"""A bert tagger through the CLI: a tiny random BERT saved as an mlm checkpoint (as `dlcli convert
bert` makes them) is named in data.init; the tagger takes its WordPiece vocabulary, architecture
and weights, learns a small CoNLL file with a CRF, and `dlcli tag` / `dlcli evaluate` stay
word-level (a line longer than the model's positions is tagged whole, with a note);
data.init_weights false starts from random weights; Chinese is tagged character by character."""

from __future__ import annotations

import pytest
import torch
import yaml
from helpers import LEXICON, assert_fails, assert_ok, synthetic_ner, synthetic_segmented, train, write_conll

from dlcli import checkpoint
from dlcli.models.bert import BERT

pytest.importorskip("tokenizers")

ENCODER = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "max_position_embeddings": 24}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """A tiny random BERT, task mlm, with a WordPiece vocabulary of the synthetic words and characters."""
    from dlcli.text.vocabularies import TYPES

    texts = [" ".join(w for w, _ in s) for s in synthetic_ner(60, seed=9)] + [" ".join(LEXICON)] * 3
    vocab = TYPES["bert_wordpiece"].build(texts, vocab_size=90, min_freq=1)
    torch.manual_seed(0)
    model = BERT(vocab.size, **ENCODER)
    path = tmp_path_factory.mktemp("encoder") / "encoder.pt"
    kwargs = {**ENCODER, "type_vocab_size": 2, "dropout": 0.1, "attention_dropout": 0.1, "activation": "gelu",
              "layer_norm_eps": 1e-12, "pretraining_heads": True}
    recipe = {"task": "mlm", "data": {"max_length": 24}, "vocab": {"type": "bert_wordpiece", "vocab_size": 90}}
    checkpoint.save(path, {"task": "mlm", "recipe": recipe,
                           "model": {"type": "bert", "kwargs": kwargs}, "vocab": vocab.to_dict(),
                           "state_dict": model.state_dict(), "metrics": {}})
    return path


def write_recipe(root, encoder, data: dict | None = None, model: dict | None = None, **train_section):
    recipe = {"task": "tag", "seed": 3, "device": "cpu",
              "data": {"train": "./train.txt", "dev": "./dev.txt", "format": "conll", "tag_scheme": "bio",
                       "init": str(encoder), **(data or {})},
              "model": model or {"type": "bert", "crf": True, "dropout": 0.0},
              "train": {"epochs": 6, "batch_size": 8, "optimizer": {"type": "adamw", "lr": 3.0e-3},
                        "layer_lr_decay": 0.9, "lr_schedule": {"type": "warmup_linear", "warmup_ratio": 0.1},
                        **train_section}}
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tagger(encoder, tmp_path_factory):
    from dlcli import api

    root = tmp_path_factory.mktemp("bert_ner")
    write_conll(root / "train.txt", synthetic_ner(80, seed=1))
    write_conll(root / "dev.txt", synthetic_ner(25, seed=2))
    summary = api.train(write_recipe(root, encoder), out=root / "ner.pt")
    assert summary["best"] >= 0.9, summary
    return root / "ner.pt"


def test_the_tagger_takes_the_encoder_and_tags_words(cli, encoder, tagger):
    saved, start = checkpoint.load(tagger), checkpoint.load(encoder)
    assert saved["vocab"] == start["vocab"]
    assert saved["recipe"]["vocab"] == start["recipe"]["vocab"]  # what `dlcli info` shows: the tokenizer used
    kwargs = saved["model"]["kwargs"]
    assert kwargs["crf"] is True and (kwargs["cls_id"], kwargs["sep_id"]) == (2, 3)  # a trained vocabulary's
    assert (kwargs["hidden_size"], kwargs["num_layers"], kwargs["max_position_embeddings"]) == (32, 2, 24)
    result = cli("tag", tagger, stdin=b"alice went to new york\n\ncarol smith met dave in rome today\n")
    assert_ok(result)
    first, empty, third = result.records()
    assert first["tokens"] == ["alice", "went", "to", "new", "york"]
    assert first["tags"] == ["B-PER", "O", "O", "B-LOC", "I-LOC"]
    assert empty["tokens"] == empty["tags"] == []
    assert [s["text"] for s in third["spans"]] == ["carol smith", "dave", "rome"]
    assert not any("truncated" in r for r in result.records())

    conll = cli("tag", tagger, "--format", "conll", stdin=b"bob saw paris\n")
    assert conll.out == "bob\tB-PER\nsaw\tO\nparis\tB-LOC\n\n"
    scores = cli("evaluate", tagger, str(tagger.parent / "dev.txt"), "--format", "conll")
    assert_ok(scores)
    assert scores.json()["f1"] >= 0.9


def test_a_line_longer_than_the_positions_is_tagged_whole(cli, tagger):
    words = ("bob went to paris and later saw alice in san jose today " * 4).split()  # 48 words, 22 positions
    record = cli("tag", tagger, stdin=(" ".join(words) + "\n").encode()).json()
    assert record["tokens"] == words and len(record["tags"]) == len(words)
    assert record["truncated"]["window"] == 22 and record["truncated"]["windows"] >= 3
    names = [tag for word, tag in zip(words, record["tags"]) if word in ("bob", "alice", "paris")]
    assert names == ["B-PER", "B-LOC", "B-PER"] * 4  # in every window (one may cut `san jose`)


def test_random_weights_and_refusals(cli, encoder, tagger, tmp_path):
    write_conll(tmp_path / "train.txt", synthetic_ner(20, seed=4))
    write_conll(tmp_path / "dev.txt", synthetic_ner(5, seed=5))
    frozen = write_recipe(tmp_path, encoder, max_steps=1, optimizer={"type": "sgd", "lr": 0.0})
    start = checkpoint.load(encoder)["state_dict"]

    def encoder_weights_kept(out) -> bool:
        saved = checkpoint.load(out)["state_dict"]
        mine = {k.removeprefix("bert."): v for k, v in saved.items() if k.startswith("bert.")}
        assert mine and not any(k.startswith(("pooler", "mlm_", "nsp")) for k in mine)
        return all(torch.equal(v, start[k]) for k, v in mine.items())

    assert_ok(train(cli, frozen, tmp_path / "kept.pt"))
    assert encoder_weights_kept(tmp_path / "kept.pt")
    assert_ok(train(cli, frozen, tmp_path / "random.pt", "--set", "data.init_weights=false"))
    assert not encoder_weights_kept(tmp_path / "random.pt")

    bilstm = write_recipe(tmp_path, encoder, model={"type": "bilstm_crf"})
    assert_fails(train(cli, bilstm, tmp_path / "b.pt"), 2, "data.init", "model type bert")
    features = write_recipe(tmp_path, encoder, data={"bigrams": True})
    assert_fails(train(cli, features, tmp_path / "f.pt"), 2, "data.bigrams")
    on_tagger = write_recipe(tmp_path, tagger)
    assert_fails(train(cli, on_tagger, tmp_path / "t.pt"), 1, "data.init", "tag model")


def test_chinese_characters_are_the_words(cli, encoder, tmp_path):
    (tmp_path / "train.txt").write_text("\n".join(" ".join(s) for s in synthetic_segmented(60, 1)) + "\n",
                                        encoding="utf-8")
    (tmp_path / "dev.txt").write_text("\n".join(" ".join(s) for s in synthetic_segmented(15, 2)) + "\n",
                                      encoding="utf-8")
    recipe = write_recipe(tmp_path, encoder, data={"format": "segmented", "tag_scheme": "bmes"}, epochs=4)
    result = train(cli, recipe, tmp_path / "seg.pt")
    assert_ok(result)
    assert result.json()["best"] >= 0.6
    tagged = cli("tag", tmp_path / "seg.pt", stdin="我们喜欢北京的天气\n".encode())
    record = tagged.json()
    assert record["tokens"] == list("我们喜欢北京的天气") and len(record["tags"]) == 9
    assert all(t in ("B", "M", "E", "S") for t in record["tags"])
