"""Pretrained vectors: word2vec text and binary, GloVe text, and their errors; writing them."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from dlcli.errors import DataError
from dlcli.text import vectors
from dlcli.text.vectors import guess_format, init_embedding, load_vectors, read_vectors, write_vectors

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


# Writing, and reading every entry back

WORDS = ["the", "Paris", "北京", "🙂", "naïve", "the"]  # a repeated word is kept by read_vectors
WRITTEN_AS = {"word2vec": "v.txt", "glove": "v.txt", "word2vec_binary": "v.bin"}


def awkward_floats(rows: int, dim: int) -> np.ndarray:
    """float32 values that a short decimal form would not give back: random digits, tiny, huge."""
    rng = np.random.default_rng(0)
    matrix = (rng.standard_normal((rows, dim)) * 10.0 ** rng.integers(-40, 38, (rows, dim))).astype(np.float32)
    matrix[0, :3] = [np.float32(1) / 3, np.nextafter(np.float32(1), np.float32(2)), -0.0]
    return matrix


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("fmt", ["word2vec", "glove", "word2vec_binary"])
def test_write_then_read_gives_back_every_float32_exactly(tmp_path, fmt, suffix):
    path = tmp_path / (WRITTEN_AS[fmt] + suffix)
    matrix = awkward_floats(len(WORDS), 5)
    write_vectors(path, WORDS, torch.from_numpy(matrix) if fmt == "glove" else matrix, fmt)
    assert guess_format(path) == fmt
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    words, again = read_vectors(path)
    assert words == WORDS
    assert again.dtype == np.float32 and again.tobytes() == matrix.tobytes()  # bit for bit, -0.0 included
    index = {w: i for i, w in enumerate(dict.fromkeys(WORDS))} | {"missing": 5}
    loaded, found = load_vectors(path, index, lowercase=False)
    assert found.tolist() == [True] * 5 + [False]
    assert torch.equal(loaded[:5], torch.from_numpy(matrix[:5]))  # the first "the" wins


def test_binary_layout_is_the_word2vec_tools(tmp_path):
    write_vectors(tmp_path / "v.bin", ["北京", "a"], np.array([[1.0, -2.0], [0.5, 3.0]]), "word2vec_binary")
    expected = (b"2 2\n" + "北京".encode() + b" " + np.array([1.0, -2.0], "<f4").tobytes() + b"\n"
                + b"a " + np.array([0.5, 3.0], "<f4").tobytes() + b"\n")
    assert (tmp_path / "v.bin").read_bytes() == expected


def test_text_layouts(tmp_path):
    write_vectors(tmp_path / "w.txt", ["a", "b"], [[0.1, 2.0], [-3.5, 1e-8]], "word2vec")
    assert (tmp_path / "w.txt").read_text(encoding="utf-8") == "2 2\na 0.100000001 2\nb -3.5 9.99999994e-09\n"
    write_vectors(tmp_path / "g.txt", ["a"], [[0.25, 2.0]], "glove")
    assert (tmp_path / "g.txt").read_text(encoding="utf-8") == "a 0.25 2\n"


@pytest.mark.parametrize("word", ["new york", "tab\there", "line\n", "", "\u3000wide"])
@pytest.mark.parametrize("fmt", ["word2vec", "glove", "word2vec_binary"])
def test_words_with_whitespace_are_refused_and_the_old_file_kept(tmp_path, fmt, word):
    path = tmp_path / WRITTEN_AS[fmt]
    write_vectors(path, ["ok"], [[1.0]], fmt)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=f"word {re.escape(repr(word))}: .*whitespace"):
        write_vectors(path, ["fine", word], np.ones((2, 1)), fmt)
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "v.txt"
    write_vectors(path, ["a"], [[1.0, 2.0]])
    before = path.read_bytes()

    def fail_halfway(fh, *args):
        fh.write(b"2 2\n")
        raise OSError("disk full")

    monkeypatch.setattr(vectors, "_write_entries", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        write_vectors(path, ["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["v.txt"]


def test_write_vectors_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown vectors format 'fasttext'"):
        write_vectors(tmp_path / "v", ["a"], [[1.0]], "fasttext")
    with pytest.raises(ValueError, match=r"N = 2 words and D >= 1, got \(1, 3\)"):
        write_vectors(tmp_path / "v", ["a", "b"], np.ones((1, 3)))
    assert list(tmp_path.iterdir()) == []


def test_read_vectors_errors(tmp_path):
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty.txt: no vectors found"):
        read_vectors(tmp_path / "empty.txt")
    with pytest.raises(DataError, match="unknown vectors format"):
        read_vectors(tmp_path / "empty.txt", fmt="bin")
