"""Words as the bytes a model that reads words' spellings takes (an elmo language model, see
dlcli/models/elmo.py): each word's first `limit` UTF-8 bytes, each byte b as b + 1 so that 0 pads.
The end token between sentences is the empty word (no bytes): the model spells it itself.
"""

from __future__ import annotations

import numpy as np
import torch


def word_bytes(word: str | None, limit: int) -> list[int]:
    """A word's first `limit` UTF-8 bytes (+ 1); None (the end token): none."""
    if not word:
        return []
    return [b + 1 for b in word.encode("utf-8", "surrogatepass")[:limit]]


def spell(words: list[str | None], limit: int) -> torch.Tensor:
    """(U, L) int64 bytes (+ 1) of each word, packed to the left, L the longest kept (at least 1)."""
    rows = [word_bytes(w, limit) for w in words]
    out = np.zeros((len(rows), max([1, *map(len, rows)])), dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return torch.from_numpy(out)


class SpellingTable:
    """The bytes of many words (a corpus's distinct tokens) kept flat, for spelling batches of them."""

    def __init__(self, words: list[str | None], limit: int):
        rows = [word_bytes(w, limit) for w in words]
        self.lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        self.starts = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=self.starts[1:])
        self.flat = np.fromiter((b for row in rows for b in row), dtype=np.int16, count=int(self.starts[-1]))

    def spell(self, ids: np.ndarray) -> torch.Tensor:
        """(U, L) int64 bytes (+ 1) of the words `ids`, as `spell` gives them."""
        lengths = self.lengths[ids]
        width = max(1, int(lengths.max()) if len(ids) else 1)
        mask = np.arange(width)[None, :] < lengths[:, None]
        out = np.zeros(mask.shape, dtype=np.int64)
        positions = (self.starts[ids][:, None] + np.arange(width)[None, :])[mask]
        out[mask] = self.flat[positions]
        return torch.from_numpy(out)
