"""`data.vectors` through `dlcli train`: every classifier starts from the file's vectors, and TextCNN's
static / non_static / multichannel variants keep or train them as Kim (2014) describes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from helpers import FILLER, TOPICS, assert_fails, assert_ok, tiny_kwargs, train
from torch import nn

from dlcli import api, registry, training

DIM = 8  # TINY_KNOBS' embedding_dim and d_model
WORD_MODELS = sorted(set(registry.MODELS["classify"]) - {"charcnn"})  # charcnn: see the test at the end
# The file covers some of the vocabulary; the rest keep each model's own random start.
IN_FILE = [words[0] for words in TOPICS.values()] + FILLER[:4] + ["RED"]  # "RED": lowercase vocab -> "red"


def write_word2vec(path: Path, words: list[str], dim: int = DIM, seed: int = 0) -> dict[str, list[float]]:
    """A word2vec text file (`COUNT DIM` header); returns each word's vector as written."""
    rng = random.Random(seed)
    vectors = {w: [round(rng.uniform(-1, 1), 4) for _ in range(dim)] for w in words}
    lines = [f"{len(vectors)} {dim}"] + [" ".join([w, *map(str, v)]) for w, v in vectors.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return vectors


@pytest.fixture
def start_weights(monkeypatch) -> dict[str, torch.Tensor]:
    """Filled with the model's state as training starts, after every initialisation."""
    seen: dict[str, torch.Tensor] = {}

    class Spy(training.Trainer):
        def fit(self, *args, **kwargs):
            seen.update({k: v.detach().clone() for k, v in self.model.state_dict().items()})
            return super().fit(*args, **kwargs)

    monkeypatch.setattr(training, "Trainer", Spy)
    return seen


def rows_of(table: torch.Tensor, index: dict[str, int], vectors: dict[str, list[float]]) -> tuple:
    """(the rows of `table`, the file's vectors) for the vocabulary words in the file, lowercased;
    the file's first form of a word wins."""
    first = {}
    for word, vector in vectors.items():
        if word.lower() in index:
            first.setdefault(word.lower(), vector)
    return table[[index[w] for w in first]], torch.tensor(list(first.values()))


@pytest.mark.parametrize("name", sorted(registry.MODELS["classify"]))
def test_every_classifier_exposes_its_input_embedding_table(name):
    builder = registry.MODELS["classify"][name]
    model = builder(30, 3, 0, **tiny_kwargs(builder))
    assert isinstance(model.embedding, nn.Embedding) and model.embedding.num_embeddings == 30


@pytest.mark.parametrize("name", WORD_MODELS)
def test_data_vectors_initialise_every_word_model(cli, dataset, start_weights, name):
    vectors = write_word2vec(dataset.root / "vectors.txt", IN_FILE)
    model = {"type": name, **tiny_kwargs(registry.MODELS["classify"][name])}
    recipe = dataset.recipe(model=model, data={"vectors": "./vectors.txt"}, train={"max_steps": 2})
    out = dataset.root / "m.pt"
    result = train(cli, recipe, out)
    assert_ok(result)
    assert result.json()["steps"] == 2
    index = api.load_model(out).task.vocab.index
    # a gpt's or bert's embedding is its encoder's token embedding
    table = start_weights[{"gpt": "gpt.token.weight", "bert": "bert.token.weight"}.get(name, "embedding.weight")]
    got, want = rows_of(table, index, vectors)
    assert len(got) == len(IN_FILE) - 1  # "RED" and "red" share a row; the first entry wins
    assert torch.equal(got, want)
    assert table[index["dog"]].abs().sum() > 0  # not in the file: a random start


@pytest.mark.parametrize("mode", ["static", "non_static", "multichannel"])
def test_textcnn_pretrained_modes_keep_or_train_the_vectors(cli, dataset, start_weights, mode):
    vectors = write_word2vec(dataset.root / "vectors.txt", IN_FILE)
    model = {"type": "textcnn", "embedding_dim": DIM, "kernel_sizes": [2, 3], "num_filters": 4,
             "embedding_mode": mode}
    recipe = dataset.recipe(model=model, data={"vectors": "./vectors.txt"},
                            train={"max_steps": 4, "optimizer": {"type": "adam", "lr": 0.1}})
    out = dataset.root / "m.pt"
    assert_ok(train(cli, recipe, out))
    loaded = api.load_model(out)
    index, end = loaded.task.vocab.index, loaded.model.state_dict()
    start = start_weights["embedding.weight"]
    assert torch.equal(*rows_of(start, index, vectors))  # every mode starts from the file
    trained_channel_moved = not torch.equal(end["embedding.weight"], start)
    assert trained_channel_moved == (mode != "static")
    if mode == "multichannel":
        assert torch.equal(start_weights["static_embedding.weight"], start)  # the same start, random rows too
        assert torch.equal(end["static_embedding.weight"], start)  # and it never moves


@pytest.mark.parametrize("mode", ["static", "multichannel"])
def test_a_pretrained_mode_without_data_vectors_is_a_recipe_error(cli, dataset, mode):
    model = {"type": "textcnn", "embedding_dim": DIM, "kernel_sizes": [2], "num_filters": 4, "embedding_mode": mode}
    result = train(cli, dataset.recipe(model=model), dataset.root / "m.pt")
    assert_fails(result, 2, "model.embedding_mode", "data.vectors")
    assert not (dataset.root / "m.pt").exists()


def test_charcnn_takes_character_vectors(cli, dataset, start_weights):
    """charcnn is left out above: its vocabulary is characters, so a file of word vectors matches
    only one-letter words. The same path initialises it from character vectors."""
    vectors = write_word2vec(dataset.root / "chars.txt", ["a", "e", "t", "qq"])  # "qq" is no character
    model = {"type": "charcnn", **tiny_kwargs(registry.MODELS["classify"]["charcnn"])}
    recipe = dataset.recipe(model=model, vocab={"type": "char", "lowercase": True},
                            data={"vectors": "./chars.txt"}, train={"max_steps": 1})
    out = dataset.root / "m.pt"
    assert_ok(train(cli, recipe, out))
    index = api.load_model(out).task.vocab.index
    got, want = rows_of(start_weights["embedding.weight"], index, vectors)
    assert len(got) == 3 and torch.equal(got, want)
