"""A training corpus as word ids on disk: one tokenizing pass, memory that grows with the
vocabulary and not the corpus.

The pass gives every distinct token a provisional id in order of first sight and appends the ids
to a file; counts come from the ids, and once the vocabulary is chosen from them the file is
rewritten in final ids with the dropped words left out (word2vec trains as if they were not
there). Sentences are lines; their starts index the flat id array.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BLOCK = 1 << 20  # ids written per block


@dataclass
class Corpus:
    ids: np.ndarray  # int32, memory-mapped: the corpus's word ids, sentence after sentence
    starts: np.ndarray  # int64 (S + 1,): sentence s is ids[starts[s]:starts[s + 1]]

    @property
    def num_sentences(self) -> int:
        return len(self.starts) - 1

    @property
    def num_tokens(self) -> int:
        return int(self.starts[-1])


def read_raw(lines: Iterable[str], tokenize: Callable[[str], list[str]], workdir: Path) -> tuple[list[str], Corpus]:
    """(distinct tokens in order of first sight, the corpus in their provisional ids)."""
    index: dict[str, int] = {}
    lengths: list[int] = []
    path = workdir / "raw.ids"
    block: list[int] = []
    with open(path, "wb") as out:
        for line in lines:
            tokens = tokenize(line)
            if not tokens:
                continue
            setdefault = index.setdefault
            block.extend(setdefault(t, len(index)) for t in tokens)
            lengths.append(len(tokens))
            if len(block) >= BLOCK:
                out.write(np.asarray(block, dtype=np.int32).tobytes())
                block.clear()
        out.write(np.asarray(block, dtype=np.int32).tobytes())
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    return list(index), Corpus(_mapped(path, int(starts[-1])), starts)


def encode_lines(lines: Iterable[str], encode_batch: Callable[[list[str]], list[list[int]]], workdir: Path,
                 chunk: int = 4096) -> Corpus:
    """The corpus in the final ids `encode_batch` gives a chunk of lines (a subword tokenizer's,
    which encodes many lines at once); lines it gives no ids are left out."""
    path = workdir / "train.ids"
    lengths: list[int] = []

    def flush(out, texts: list[str]) -> None:
        encoded = [ids for ids in encode_batch(texts) if ids]
        lengths.extend(map(len, encoded))
        if encoded:
            out.write(np.concatenate([np.asarray(ids, dtype=np.int32) for ids in encoded]).tobytes())

    with open(path, "wb") as out:
        texts: list[str] = []
        for line in lines:
            texts.append(line)
            if len(texts) == chunk:
                flush(out, texts)
                texts = []
        flush(out, texts)
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    return Corpus(_mapped(path, int(starts[-1])), starts)


def remap(corpus: Corpus, new_ids: np.ndarray, workdir: Path) -> Corpus:
    """The corpus with each id `i` replaced by `new_ids[i]`; ids mapped to -1 are dropped, and so are
    sentences left empty."""
    path = workdir / "train.ids"
    kept_per_sentence = np.zeros(corpus.num_sentences, dtype=np.int64)
    with open(path, "wb") as out:
        for start in range(0, corpus.num_tokens, BLOCK):
            ids = new_ids[corpus.ids[start:start + BLOCK]]
            keep = ids >= 0
            out.write(ids[keep].astype(np.int32).tobytes())
            positions = np.arange(start, start + len(ids))[keep]
            owner = np.searchsorted(corpus.starts, positions, side="right") - 1  # the sentence of each kept id
            kept_per_sentence += np.bincount(owner, minlength=corpus.num_sentences)
    lengths = kept_per_sentence[kept_per_sentence > 0]
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    return Corpus(_mapped(path, int(starts[-1])), starts)


def _mapped(path: Path, n: int) -> np.ndarray:
    return np.memmap(path, dtype=np.int32, mode="r", shape=(n,)) if n else np.zeros(0, dtype=np.int32)
