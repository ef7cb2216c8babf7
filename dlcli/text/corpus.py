"""A training corpus as word ids on disk: one tokenizing pass, memory that grows with the
vocabulary and not the corpus.

The pass gives every distinct token a provisional id in order of first sight, counts it, and
appends the ids to a file; once the vocabulary is chosen from the counts the file is rewritten in
final ids with the dropped words left out (word2vec trains as if they were not there). Sentences
are lines; their starts index the flat id array. `ids` maps the file for random access (a language
model's windows); a pass in order reads it with `read` instead, because every mapped page it
touched would stay in the process's resident memory until the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np

BLOCK = 1 << 20  # ids written per block
TOKEN_BLOCK = 1 << 18  # tokens (strings, ~60 bytes each) held before their ids are written


@dataclass
class Corpus:
    ids: np.ndarray  # int32, memory-mapped: the corpus's word ids, sentence after sentence
    starts: np.ndarray  # int64 (S + 1,): sentence s is ids[starts[s]:starts[s + 1]]
    path: Path  # the file behind ids

    @property
    def num_sentences(self) -> int:
        return len(self.starts) - 1

    @property
    def num_tokens(self) -> int:
        return int(self.starts[-1])

    def read(self, first: int, last: int) -> np.ndarray:
        """ids[first:last], read from the file into a new array, not mapped."""
        if last <= first:
            return np.zeros(0, dtype=np.int32)
        return np.fromfile(self.path, dtype=np.int32, count=last - first, offset=4 * first)

    def sentences(self) -> Iterator[np.ndarray]:
        """Every sentence's ids, in order, read about BLOCK ids at a time."""
        starts, s = self.starts, 0
        while s < self.num_sentences:
            end = max(s + 1, int(np.searchsorted(starts, starts[s] + BLOCK, side="right")) - 1)
            block = self.read(int(starts[s]), int(starts[end]))
            for a, b in zip(starts[s:end] - starts[s], starts[s + 1:end + 1] - starts[s]):
                yield block[a:b]
            s = end


@dataclass(frozen=True)
class Stretches:
    """The sentences of one kernel call: a range of sentences from each part of the corpus."""

    ranges: tuple[range, ...]

    def __len__(self) -> int:
        return sum(map(len, self.ranges))


def side_by_side(starts: np.ndarray, batch_size: int, parts: int) -> list[Stretches]:
    """Batches that read `parts` stretches of the corpus (of about equal words) side by side: batch
    b holds the b-th run of batch_size / parts sentences of every stretch (an empty range once a
    stretch is done). A kernel that gives each of `parts` threads an equal share of a batch's
    words then has every thread stream its own part of the corpus, as word2vec.c's threads do; with
    one part the corpus is read in order."""
    sentences = len(starts) - 1
    parts = max(1, min(parts, sentences))
    middles = (starts[:-1] + starts[1:]) / 2  # a sentence belongs to the stretch holding its middle word
    bounds = np.searchsorted(middles, starts[-1] * np.arange(parts + 1) / parts, side="left")
    bounds[0], bounds[-1] = 0, sentences
    per = max(1, -(-batch_size // parts))
    runs = [[range(i, min(b, i + per)) for i in range(a, b, per)] for a, b in zip(bounds[:-1], bounds[1:])]
    return [Stretches(tuple(r[k] if k < len(r) else range(0) for r in runs)) for k in range(max(map(len, runs)))]


def read_raw(lines: Iterable[str], tokenize: Callable[[str], list[str]],
             workdir: Path) -> tuple[list[str], np.ndarray, Corpus]:
    """(distinct tokens in order of first sight, their counts, the corpus in their provisional ids)."""
    index: dict[str, int] = {}
    lengths: list[int] = []
    path = workdir / "raw.ids"
    block: list[str] = []
    counts = np.zeros(0, dtype=np.int64)

    def flush(out) -> None:
        # The block's tokens are looked up by one C loop (map), not one Python step per token;
        # only the tokens not seen before are visited again, to give them ids in order of first sight.
        nonlocal counts
        ids = np.fromiter(map(index.get, block, repeat(-1)), dtype=np.int32, count=len(block))
        unseen = np.flatnonzero(ids < 0)
        if len(unseen):
            fresh = dict.fromkeys(block[i] for i in unseen)
            index.update(zip(fresh, range(len(index), len(index) + len(fresh))))
            ids[unseen] = [index[block[i]] for i in unseen]
        out.write(ids.tobytes())
        grown = np.bincount(ids, minlength=len(index)).astype(np.int64)
        grown[:len(counts)] += counts
        counts = grown
        block.clear()

    with open(path, "wb") as out:
        for line in lines:
            tokens = tokenize(line)
            if not tokens:
                continue
            block.extend(tokens)
            lengths.append(len(tokens))
            if len(block) >= TOKEN_BLOCK:
                flush(out)
        flush(out)
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    return list(index), counts, _corpus(path, starts)


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
    return _corpus(path, starts)


def remap(corpus: Corpus, new_ids: np.ndarray, workdir: Path) -> Corpus:
    """The corpus with each id `i` replaced by `new_ids[i]`; ids mapped to -1 are dropped, and so are
    sentences left empty."""
    path = workdir / "train.ids"
    starts = corpus.starts
    kept_before = np.zeros(len(starts), dtype=np.int64)  # kept ids before each sentence start
    kept = 0
    with open(path, "wb") as out:
        for start in range(0, corpus.num_tokens, BLOCK):
            stop = min(corpus.num_tokens, start + BLOCK)
            ids = new_ids[corpus.read(start, stop)]
            keep = ids >= 0
            out.write(ids[keep].astype(np.int32).tobytes())
            # The starts inside (start, stop]: the ids kept before them are this block's running count.
            first, last = np.searchsorted(starts, start + 1, side="left"), np.searchsorted(starts, stop, side="right")
            running = np.cumsum(keep, dtype=np.int64)
            kept_before[first:last] = kept + running[starts[first:last] - start - 1]
            kept += int(running[-1])
    lengths = np.diff(kept_before)
    new_starts = np.zeros(int((lengths > 0).sum()) + 1, dtype=np.int64)
    np.cumsum(lengths[lengths > 0], out=new_starts[1:])
    return _corpus(path, new_starts)


def _corpus(path: Path, starts: np.ndarray) -> Corpus:
    n = int(starts[-1])
    ids = np.memmap(path, dtype=np.int32, mode="r", shape=(n,)) if n else np.zeros(0, dtype=np.int32)
    return Corpus(ids, starts, path)
