"""Pretrained word vectors (word2vec text or binary, GloVe text): read, written, and copied into
an embedding table.

`load_vectors` keeps only the rows of words in the model's vocabulary, so a multi-GB vectors file
costs one pass over it and memory for the vocabulary alone; `read_vectors` keeps every entry.
Formats:
- word2vec text: a `COUNT DIM` header line, then `word v1 ... vDIM` per line;
- GloVe text: the same lines without a header;
- word2vec binary (`.bin`): the header line, then per word its UTF-8 bytes, a space and DIM
  little-endian float32 values (an optional newline between entries).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from dlcli.errors import DataError
from dlcli.files import atomic_write
from dlcli.text.readers import decoded_lines, open_binary

FORMATS = ("auto", "word2vec", "word2vec_binary", "glove")


def guess_format(path: Path) -> str:
    if path.name.endswith((".bin", ".bin.gz")):
        return "word2vec_binary"
    with open_binary(path) as fh:
        first = fh.readline().split()
    return "word2vec" if len(first) == 2 and all(x.isdigit() for x in first) else "glove"


def load_vectors(path: str | Path, index: dict[str, int], lowercase: bool, fmt: str = "auto",
                 encoding: str = "utf-8") -> tuple[torch.Tensor, torch.Tensor]:
    """(matrix (len(index), D), found (len(index),) bool): the vector of each vocabulary word that
    the file has; the first entry of a word wins (files list frequent forms first)."""
    return select_rows(_entries(Path(path), fmt, encoding), index, lowercase, path)


def select_rows(entries, index: dict[str, int], lowercase: bool, source) -> tuple[torch.Tensor, torch.Tensor]:
    """load_vectors over (word, values) entries from any source (a file, a dlcli checkpoint)."""
    rows: dict[int, list[float]] = {}
    dim = None
    for word, values in entries:
        dim = len(values)
        row = index.get(word.lower() if lowercase else word)
        if row is not None and row not in rows:
            rows[row] = values
    if dim is None:
        raise DataError(f"{source}: no vectors found")
    matrix = torch.zeros(len(index), dim)
    found = torch.zeros(len(index), dtype=torch.bool)
    if rows:
        keys = torch.tensor(list(rows))
        matrix[keys] = torch.tensor(list(rows.values()), dtype=torch.float32)
        found[keys] = True
    return matrix, found


def read_vectors(path: str | Path, fmt: str = "auto", encoding: str = "utf-8") -> tuple[list[str], np.ndarray]:
    """(words, matrix (N, D) float32): every entry of the file, in file order, repeats included."""
    words, rows = [], []
    for word, values in _entries(Path(path), fmt, encoding):
        words.append(word)
        rows.append(values)
    if not rows:
        raise DataError(f"{path}: no vectors found")
    return words, np.array(rows, dtype=np.float32)


def write_vectors(path: str | Path, words: list[str], matrix, fmt: str = "word2vec") -> None:
    """Write `words` and their rows of `matrix` ((N, D) array or tensor, stored as float32) in `fmt`
    (word2vec, word2vec_binary or glove; gzipped when `path` ends in .gz). Atomic: a crash leaves
    any previous file whole. Name binary files `*.bin` so that `guess_format` knows them.

    Text values use 9 significant digits, the most a float32 needs to read back bit for bit.
    """
    if fmt not in FORMATS[1:]:
        raise ValueError(f"unknown vectors format {fmt!r}: use one of {', '.join(FORMATS[1:])}")
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().to("cpu", torch.float32).numpy()
    matrix = np.ascontiguousarray(matrix, dtype="<f4")
    if matrix.ndim != 2 or matrix.shape[0] != len(words) or matrix.shape[1] == 0:
        raise ValueError(f"need an (N, D) matrix with N = {len(words)} words and D >= 1, got {matrix.shape}")
    for word in words:
        # word2vec's own reader ends a word at a space, tab or newline; the text readers at a space.
        if word.split() != [word]:
            raise ValueError(f"word {word!r}: a vectors file cannot hold an empty word or one with whitespace")
    path = Path(path)
    with atomic_write(path) as raw:
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=raw, mode="wb") as fh:
                _write_entries(fh, words, matrix, fmt)
        else:
            _write_entries(raw, words, matrix, fmt)


def _write_entries(fh, words: list[str], matrix: np.ndarray, fmt: str) -> None:
    if fmt != "glove":
        fh.write(f"{len(words)} {matrix.shape[1]}\n".encode())
    if fmt == "word2vec_binary":
        for word, row in zip(words, matrix):
            fh.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")
        return
    template = " ".join(["%.9g"] * matrix.shape[1])
    for word, row in zip(words, matrix.tolist()):
        fh.write(f"{word} {template % tuple(row)}\n".encode())


def _entries(path: Path, fmt: str, encoding: str) -> Iterator[tuple[str, list[float]]]:
    """(word, values) for every entry of a vectors file, all of one length."""
    if fmt not in FORMATS:
        raise DataError(f"unknown vectors format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    fmt = guess_format(path) if fmt == "auto" else fmt
    entries = _binary(path) if fmt == "word2vec_binary" else _text(path, fmt == "word2vec", encoding)
    dim = None
    for where, word, values in entries:
        if dim is None:
            dim = len(values)
        elif len(values) != dim:
            raise DataError(f"{where}: {len(values)} values where earlier vectors have {dim}")
        yield word, values


def _text(path: Path, header: bool, encoding: str):
    with open_binary(path) as fh:
        for number, line in decoded_lines(fh, str(path), encoding):
            if header and number == 1:
                continue
            parts = line.rstrip().split(" ")
            if len(parts) < 2:
                if not line.strip():
                    continue
                raise DataError(f"{path}:{number}: expected a word and its vector values")
            try:
                values = [float(x) for x in parts[1:]]
            except ValueError:
                raise DataError(f"{path}:{number}: vector values must be numbers") from None
            yield f"{path}:{number}", parts[0], values


def _binary(path: Path):
    with open_binary(path) as fh:
        header = fh.readline().split()
        try:
            count, dim = int(header[0]), int(header[1])
        except (IndexError, ValueError):
            raise DataError(f"{path}: a word2vec binary file starts with a `COUNT DIM` line") from None
        size = 4 * dim
        for n in range(count):
            word = bytearray()
            while (ch := fh.read(1)) != b" ":
                if not ch:
                    raise DataError(f"{path}: ends inside entry {n + 1} of {count}")
                if ch != b"\n" or word:
                    word += ch
            data = fh.read(size)
            if len(data) != size:
                raise DataError(f"{path}: ends inside the vector of entry {n + 1} of {count}")
            yield f"{path} (entry {n + 1})", word.decode("utf-8", errors="replace"), \
                np.frombuffer(data, dtype="<f4").tolist()


def init_embedding(table: torch.nn.Embedding, index: dict[str, int], lowercase: bool, path: str | Path,
                   fmt: str = "auto", encoding: str = "utf-8") -> int:
    """Copy the file's vectors into the rows of `table` whose words it has; returns how many."""
    return fill_rows(table, *load_vectors(path, index, lowercase, fmt, encoding), path)


def fill_rows(table: torch.nn.Embedding, matrix: torch.Tensor, found: torch.Tensor, source) -> int:
    """Copy the found rows of `matrix` (select_rows) into `table`; returns how many."""
    if matrix.size(1) != table.embedding_dim:
        raise DataError(f"{source}: vectors have {matrix.size(1)} dimensions, the model's embedding "
                        f"{table.embedding_dim}", f"set model.embedding_dim: {matrix.size(1)}")
    with torch.no_grad():
        rows = found.nonzero().squeeze(1)  # vocabulary rows; a table may have more (hashed n-grams)
        table.weight[rows] = matrix[rows].to(table.weight.dtype)
    return int(found.sum())
