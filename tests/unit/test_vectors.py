"""Pretrained vectors: word2vec text and binary, GloVe text, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlcli.errors import DataError
from dlcli.text.vectors import init_embedding, load_vectors

VECTORS = {"the": [0.5, -1.0, 2.0], "Paris": [1.0, 1.5, -0.25], "paris": [9.0, 9.0, 9.0]}
INDEX = {"<pad>": 0, "<unk>": 1, "the": 2, "paris": 3, "rome": 4}


def write_text(path, header: bool):
    lines = [f"{len(VECTORS)} 3"] if header else []
    lines += [f"{w} " + " ".join(str(v) for v in vec) for w, vec in VECTORS.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_binary(path):
    with open(path, "wb") as fh:
        fh.write(f"{len(VECTORS)} 3\n".encode())
        for word, vec in VECTORS.items():
            fh.write(word.encode() + b" " + np.asarray(vec, dtype="<f4").tobytes() + b"\n")
    return path


@pytest.mark.parametrize("kind", ["word2vec", "glove", "word2vec_binary"])
def test_formats_load_the_same_rows(tmp_path, kind):
    if kind == "word2vec_binary":
        path = write_binary(tmp_path / "v.bin")
    else:
        path = write_text(tmp_path / f"{kind}.txt", header=kind == "word2vec")
    matrix, found = load_vectors(path, INDEX, lowercase=True)  # format guessed from the file
    assert found.tolist() == [False, False, True, True, False]
    assert matrix[2].tolist() == VECTORS["the"]
    assert matrix[3].tolist() == VECTORS["Paris"]  # lowercased, first entry wins
    _, exact = load_vectors(path, INDEX, lowercase=False, fmt=kind)
    assert exact.tolist() == [False, False, True, True, False]


def test_init_embedding_copies_found_rows_only(tmp_path):
    table = torch.nn.Embedding(5, 3)
    before = table.weight.detach().clone()
    assert init_embedding(table, INDEX, False, write_text(tmp_path / "v.txt", header=True)) == 2
    assert table.weight[3].tolist() == VECTORS["paris"]
    assert torch.equal(table.weight[4], before[4])
    with pytest.raises(DataError, match="3 dimensions, the model's embedding 4"):
        init_embedding(torch.nn.Embedding(5, 4), INDEX, False, tmp_path / "v.txt")


def test_ragged_and_broken_files(tmp_path):
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("a 1 2 3\nb 1 2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"ragged.txt:2: 2 values where earlier vectors have 3"):
        load_vectors(ragged, INDEX, False)
    words = tmp_path / "words.txt"
    words.write_text("a 1 x 3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"words.txt:1: vector values must be numbers"):
        load_vectors(words, INDEX, False)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(write_binary(tmp_path / "v.bin").read_bytes()[:-9])
    with pytest.raises(DataError, match="ends inside"):
        load_vectors(cut, INDEX, False)
