"""ELMo through the CLI: a tiny elmo language model trains and scores both ways, embeds words in
context (`dlcli embed`), and gives frozen features to a classifier and a tagger that then predict
from their own checkpoints with the elmo file gone."""

from __future__ import annotations

import gzip
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import assert_fails, assert_ok, make_dataset, synthetic_ner, tag_recipe, train, write_conll

from dlcli import api

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "park", "home"]
ELMO = {"type": "elmo", "max_chars": 10, "char_dim": 4, "filters": [[1, 4], [2, 6]], "highway_layers": 1,
        "hidden_size": 12, "projection_size": 6, "num_layers": 2, "dropout": 0.0, "softmax_samples": 6}


def corpus(n: int, seed: int) -> list[str]:
    """Lines that walk WORDS in order from a random start: each word fixes its neighbours."""
    rng = random.Random(seed)
    return [" ".join(WORDS[(s + i) % len(WORDS)] for i in range(rng.randint(3, 8)))
            for s in (rng.randrange(len(WORDS)) for _ in range(n))]


@pytest.fixture(scope="module")
def elmo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("elmo")
    with gzip.open(root / "train.txt.gz", "wt", encoding="utf-8") as fh:
        fh.write("".join(f"{line}\n" for line in corpus(240, 1)))
    (root / "dev.txt").write_text("".join(f"{line}\n" for line in corpus(30, 2)), encoding="utf-8")
    recipe = {"task": "lm", "seed": 5, "device": "cpu", "data": {"train": "./train.txt.gz", "dev": "./dev.txt",
                                                                   "bptt": 5},
              "vocab": {"type": "word", "max_size": 12}, "model": ELMO,
              "train": {"epochs": 2, "batch_size": 8, "optimizer": {"type": "adam", "lr": 0.02}}}
    (root / "elmo.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    api.train(root / "elmo.yaml", out=root / "elmo.pt")
    return root / "elmo.pt"


def test_elmo_trains_scores_both_ways_and_embeds_in_context(cli, elmo):
    metrics = api.load_model(elmo).data["metrics"]
    assert metrics["perplexity"] < 6  # 12 words, 3 of them <unk>: uniform would be 12
    assert metrics["perplexity"] == pytest.approx(np.sqrt(metrics["forward_perplexity"]
                                                          * metrics["backward_perplexity"]))
    scored = cli("evaluate", elmo, elmo.parent / "dev.txt")
    assert_ok(scored)
    assert scored.json()["perplexity"] == pytest.approx(metrics["perplexity"])

    lines = b"the cat sat on\nthe dog ran\n\n"
    tokens = cli("embed", elmo, "--tokens", "--quiet", stdin=lines)
    assert_ok(tokens)
    first, second, blank = tokens.records()
    assert first["tokens"] == ["the", "cat", "sat", "on"] and blank["tokens"] == [] == blank["vectors"]
    assert np.array(first["vectors"]).shape == (4, 12)  # [forward; backward] of the projection, 6 each
    the_1, the_2 = np.array(first["vectors"][0]), np.array(second["vectors"][0])
    assert np.allclose(the_1[:6], the_2[:6], atol=1e-5)  # "the" first: the forward layers saw the same
    assert not np.allclose(the_1[6:], the_2[6:], atol=1e-3)  # the backward ones read different sentences
    pooled = cli("embed", elmo, "--pool", "mean", "--quiet", stdin=lines)
    assert_ok(pooled)
    assert np.allclose(pooled.records()[0]["vector"], np.mean(first["vectors"], 0), atol=2e-6)
    layer0 = cli("embed", elmo, "--tokens", "--layer", "0", "--quiet", stdin=lines).records()
    assert np.allclose(layer0[0]["vectors"][0], layer0[1]["vectors"][0])  # the token layer: no context
    cut = cli("embed", elmo, "--max-length", "3", "--quiet", stdin=lines).records()[0]
    assert cut["truncated"] == {"length": 4, "kept": 3}

    assert_fails(cli("embed", elmo, "--layer", "3", stdin=lines), 2, "--layer: 3 is not a layer")
    assert_fails(cli("embed", elmo, "--neighbors", "3", stdin=lines), 2, "bidirectional language model")
    assert_fails(cli("generate", elmo, "--prompt", "the cat"), 1, "model type elmo (task lm) does not generate",
                 "dlcli embed")


def test_a_classifier_with_elmo_features_predicts_without_the_elmo_file(cli, elmo, tmp_path):
    data = make_dataset(tmp_path / "data")
    features = tmp_path / "features.pt"
    shutil.copy(elmo, features)
    recipe = data.recipe(model={"type": "bilstm", "embedding_dim": 8, "hidden_size": 8, "dropout": 0.1,
                                "pooling": "max", "elmo_dropout": 0.1},
                         data={"elmo": str(features)}, train={"epochs": 10, "optimizer": {"type": "adam", "lr": 0.02}})
    out = tmp_path / "elmo_bilstm.pt"
    assert_ok(train(cli, recipe, out))
    texts = "".join(f"{text}\n" for _, text in data.dev_rows()).encode()
    before = cli("classify", out, "--quiet", stdin=texts)
    assert_frozen(out, features, "elmo.bilm.")
    features.unlink()
    after = cli("classify", out, "--quiet", stdin=texts)
    assert_ok(after)
    assert after.out == before.out
    right = sum(r["label"] == label for r, (label, _) in zip(after.records(), data.dev_rows()))
    assert right / len(data.dev_rows()) >= 0.85  # chance: 1 in 3

    # a word outside the classifier's vocabulary reaches the biLM as spelled, not as <unk>: two
    # unseen words give two different scores, and the checkpoint holds no spellings of them
    first, second = cli("classify", out, "--quiet", "--top-k", "3",
                        stdin=b"the cat sat on qzx\nthe cat sat on wvy\n").records()
    assert first["top_k"] != second["top_k"]
    assert not any("unseen" in name for name in torch.load(out, weights_only=True)["state_dict"])


def test_a_tagger_with_elmo_features_predicts_without_the_elmo_file(cli, elmo, tmp_path):
    write_conll(tmp_path / "train.txt", synthetic_ner(120, 1))
    write_conll(tmp_path / "dev.txt", synthetic_ner(30, 2))
    features = tmp_path / "features.pt"
    shutil.copy(elmo, features)
    recipe = tag_recipe(tmp_path, {"elmo": str(features)}, {"elmo_dropout": 0.0}, epochs=5)
    out = tmp_path / "elmo_tagger.pt"
    assert_ok(train(cli, recipe, out))
    assert api.load_model(out).data["metrics"]["f1"] >= 0.9
    lines = b"alice went to new york\nzoe met bob in rome\n"
    before = cli("tag", out, "--quiet", stdin=lines)
    assert_frozen(out, features, "elmo.bilm.")
    features.unlink()
    after = cli("tag", out, "--quiet", stdin=lines)
    assert_ok(after)
    assert after.out == before.out
    assert after.records()[0]["spans"][-1]["text"] == "new york"


def assert_frozen(model: Path, elmo: Path, prefix: str) -> None:
    """The trained model holds the elmo's biLM exactly as it was, and its mix weights moved."""
    state = api.load_model(model).model.state_dict()
    bilm = api.load_model(elmo).model.bilm.state_dict()
    assert bilm and all(torch.equal(state[prefix + name], tensor) for name, tensor in bilm.items())
    assert not torch.equal(state["elmo.gamma"], torch.ones(()))


def test_elmo_features_are_refused_where_they_do_not_apply(cli, elmo, tmp_path):
    data = make_dataset(tmp_path / "data")
    textcnn = data.recipe("textcnn.yaml", model={"type": "textcnn", "embedding_dim": 8, "kernel_sizes": [2],
                                                 "num_filters": 4}, data={"elmo": str(elmo)})
    assert_fails(train(cli, textcnn, tmp_path / "t.pt"), 2, "data.elmo: this model takes no ELMo features")
    knob = data.recipe("knob.yaml", model={"type": "bilstm", "elmo": {"hidden_size": 4}})
    assert_fails(train(cli, knob, tmp_path / "k.pt"), 2, "model.elmo", "data.elmo")
    not_elmo = data.recipe("tiny.yaml")
    assert_ok(train(cli, not_elmo, tmp_path / "fasttext.pt"))
    wrong = data.recipe("wrong.yaml", model={"type": "bilstm"}, data={"elmo": str(tmp_path / "fasttext.pt")})
    assert_fails(train(cli, wrong, tmp_path / "w.pt"), 1, "data.elmo", "a classify fasttext model")
