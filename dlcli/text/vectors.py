"""Pretrained word vectors (word2vec text or binary, GloVe text) for initialising an embedding table.

Only the rows of words in the model's vocabulary are kept, so a multi-GB vectors file costs one
pass over it and memory for the vocabulary alone. Formats:
- word2vec text: a `COUNT DIM` header line, then `word v1 ... vDIM` per line;
- GloVe text: the same lines without a header;
- word2vec binary (`.bin`): the header line, then per word its UTF-8 bytes, a space and DIM
  little-endian float32 values (an optional newline between entries).
"""

from __future__ import annotations

from pathlib import Path

import torch

from dlcli.errors import DataError
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
    path = Path(path)
    if fmt not in FORMATS:
        raise DataError(f"unknown vectors format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    fmt = guess_format(path) if fmt == "auto" else fmt
    entries = _binary(path) if fmt == "word2vec_binary" else _text(path, fmt == "word2vec", encoding)
    rows: dict[int, list[float]] = {}
    dim = None
    for where, word, values in entries:
        if dim is None:
            dim = len(values)
        elif len(values) != dim:
            raise DataError(f"{where}: {len(values)} values where earlier vectors have {dim}")
        row = index.get(word.lower() if lowercase else word)
        if row is not None and row not in rows:
            rows[row] = values
    if dim is None:
        raise DataError(f"{path}: no vectors found")
    matrix = torch.zeros(len(index), dim)
    found = torch.zeros(len(index), dtype=torch.bool)
    if rows:
        keys = torch.tensor(list(rows))
        matrix[keys] = torch.tensor(list(rows.values()), dtype=torch.float32)
        found[keys] = True
    return matrix, found


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
    import numpy as np

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
    matrix, found = load_vectors(path, index, lowercase, fmt, encoding)
    if matrix.size(1) != table.embedding_dim:
        raise DataError(f"{path}: vectors have {matrix.size(1)} dimensions, the model's embedding "
                        f"{table.embedding_dim}", f"set model.embedding_dim: {matrix.size(1)}")
    with torch.no_grad():
        rows = found.nonzero().squeeze(1)  # vocabulary rows; a table may have more (hashed n-grams)
        table.weight[rows] = matrix[rows].to(table.weight.dtype)
    return int(found.sum())
