"""Word-word co-occurrence counts for GloVe (Pennington et al. 2014), within a memory budget.

As GloVe's cooccur.c: a pair of words at distance d (1 <= d <= window) in the same sentence adds
1/d to X[left, right] and, when symmetric, to X[right, left]; windows stop at sentence ends.
Unknown words (id -1) are dropped before windowing, as cooccur.c skips out-of-vocabulary tokens
without advancing its window: they take no position, so the words around them come closer.

Memory: a compiled pass writes one int64 per pair (row * V + col, shifted left, with d - 1 in the
low bits so that no weight array is needed) into a buffer sized from `memory_mb`. When it is
full, the buffer is sorted in place and reduced to unique (key, value) pairs; if the corpus is
not done, these are spilled to a shard file. At the end the shards are k-way merged straight into
the result (one pass to count the entries, one to fill them). The merge reads each shard through a
window of its next entries and slides a window on when it runs out: memory-mapping whole shards
instead made the merge touch every spilled page, and the process's resident memory grew to the
result plus all the shards (1.5 GB on a 10M-word corpus at a 256 MB budget). The windows together
take MERGE_SHARE of the budget: they sit beside the growing result, which is the peak, and a spent
window costs only a file read (`dlcli train` of recipes/embed/glove_wiki.yaml for one iteration,
12 shards: peak 1,238 MB with windows filling the budget, 1,021 MB with an eighth; 40.6 and
42.2 s). So the peak stays about the result plus an eighth of the budget, or the budget while
counting; the shard files are deleted.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit, typed

# Tokens per compiled call: few next to the buffer (a token's pairs take 8 * 2 * window bytes in
# it, the token ~50 bytes in the batch with its sentence's array header) but enough to make the
# call overhead negligible.
MIN_BATCH, MAX_BATCH = 1 << 10, 1 << 16
MERGE_SHARE = 8  # the merge windows take 1/MERGE_SHARE of the budget (see the module docstring)
_END = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Cooccurrences:
    """X as a sorted COO matrix: unique (row, col) pairs in (row, col) order; `shards` is how many
    times the buffer spilled to disk (0: counted in memory)."""

    rows: np.ndarray  # (N,) int32
    cols: np.ndarray  # (N,) int32
    values: np.ndarray  # (N,) float32
    shards: int = 0

    def __len__(self) -> int:
        return len(self.values)


@njit(cache=True)
def _fill(flat, offsets, sent, pos, window, vocab_size, shift, symmetric, buf, n):
    """Append packed pairs of sentences sent.. (from token pos of the first) to buf[n:] until the
    batch ends or the next token might not fit; returns (n, sent, pos) to resume from."""
    need = 2 * window if symmetric else window
    for s in range(sent, len(offsets) - 1):
        lo, hi = offsets[s], offsets[s + 1]
        for j in range(lo + pos, hi):
            if n + need > buf.shape[0]:
                return n, s, j - lo
            right = np.int64(flat[j])
            for k in range(max(lo, j - window), j):
                left = np.int64(flat[k])
                d = np.int64(j - k - 1)
                buf[n] = ((left * vocab_size + right) << shift) | d
                n += 1
                if symmetric:
                    buf[n] = ((right * vocab_size + left) << shift) | d
                    n += 1
        pos = 0
    return n, len(offsets) - 1, 0


@njit(cache=True)
def _reduce(buf, n, shift, vals):
    """buf[:n] sorted -> buf[:u] unique pair keys, vals[:u] their summed 1/d weights; returns u."""
    mask = (np.int64(1) << shift) - 1
    u = -1
    prev = np.int64(-1)
    acc = 0.0
    for i in range(n):
        packed = buf[i]  # read before buf[u] (u <= i) is overwritten
        key = packed >> shift
        if key != prev:
            if u >= 0:
                vals[u] = acc
            u += 1
            buf[u] = key
            prev = key
            acc = 0.0
        acc += 1.0 / ((packed & mask) + 1)
    if u >= 0:
        vals[u] = acc
    return u + 1


@njit(cache=True)
def _split(keys, vals, vocab_size, rows, cols, values):
    for i in range(len(keys)):
        rows[i] = keys[i] // vocab_size
        cols[i] = keys[i] % vocab_size
        values[i] = vals[i]


@njit(cache=True)
def _merge_round(keys, vals, final, vocab_size, rows, cols, values, write, state, carry):
    """One round of the k-way merge of sorted shard windows, summing equal keys: it stops when a
    window that is not its shard's last runs out (the caller slides it on) or when every shard is
    done. state = [last entry's index, its key] and carry = [its summed value] carry across rounds; it counts
    the entries (write=False) or also writes them to rows/cols/values. Returns (entries consumed per
    window, done). A linear scan of the heads: the shards are few."""
    k = len(keys)
    pos = np.zeros(k, np.int64)
    head = np.empty(k, np.int64)
    for s in range(k):
        head[s] = keys[s][0] if len(keys[s]) else _END
    u, prev, acc = state[0], state[1], carry[0]
    done = True
    while True:
        best = 0
        for s in range(1, k):
            if head[s] < head[best]:
                best = s
        key = head[best]
        if key == _END:
            break
        if key != prev:
            if write and u >= 0:
                values[u] = acc
            u += 1
            prev = key
            acc = 0.0
            if write:
                rows[u] = key // vocab_size
                cols[u] = key % vocab_size
        acc += vals[best][pos[best]]
        pos[best] += 1
        if pos[best] < len(keys[best]):
            head[best] = keys[best][pos[best]]
        elif final[best]:
            head[best] = _END
        else:  # this window is spent but its shard goes on: an equal key may follow there
            done = False
            break
    if done and write and u >= 0:
        values[u] = acc
    state[0], state[1], carry[0] = u, prev, acc
    return pos, done


def _batches(sentences: Iterable[np.ndarray], vocab_size: int, batch_tokens: int):
    """(flat int32 ids, sentence offsets int64) of about batch_tokens tokens, unknown ids dropped."""
    parts: list[np.ndarray] = []
    lengths: list[int] = []
    size = 0
    for sentence in sentences:
        ids = np.asarray(sentence, dtype=np.int32)
        ids = ids[ids >= 0]
        if len(ids) and ids.max() >= vocab_size:
            raise ValueError(f"word id {int(ids.max())} is not below vocab_size {vocab_size}")
        parts.append(ids)
        lengths.append(len(ids))
        size += len(ids)
        if size >= batch_tokens:
            yield np.concatenate(parts), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            parts, lengths, size = [], [], 0
    if size:
        yield np.concatenate(parts), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _result(keys: np.ndarray, vals: np.ndarray, vocab_size: int, shards: int) -> Cooccurrences:
    rows, cols = np.empty(len(keys), np.int32), np.empty(len(keys), np.int32)
    values = np.empty(len(keys), np.float32)
    _split(keys, vals, vocab_size, rows, cols, values)
    return Cooccurrences(rows, cols, values, shards)


def _merge_shards(shards: list[tuple[Path, Path, int]], vocab_size: int, window: int) -> Cooccurrences:
    """The shards (keys file, values file, entries) merged in two passes (count, then fill),
    reading at most `window` entries of each shard at a time."""
    empty = np.empty(0, np.int32)
    n = _merge_pass(shards, vocab_size, window, empty, empty, np.empty(0, np.float32), False)
    rows, cols, values = np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n, np.float32)
    _merge_pass(shards, vocab_size, window, rows, cols, values, True)
    return Cooccurrences(rows, cols, values, len(shards))


def _merge_pass(shards, vocab_size: int, window: int, rows, cols, values, write: bool) -> int:
    """One merge pass; a spent window is read anew from its file, the others go on where they were."""
    def read(s: int) -> None:
        key_path, val_path, size = shards[s]
        count = min(window, size - starts[s])
        keys[s], vals[s] = empty_keys, empty_vals  # the spent window goes before the next is read
        keys[s] = np.fromfile(key_path, np.int64, count, offset=8 * int(starts[s]))
        vals[s] = np.fromfile(val_path, np.float32, count, offset=4 * int(starts[s]))
        final[s] = starts[s] + count == size

    starts = np.zeros(len(shards), np.int64)
    final = np.zeros(len(shards), np.bool_)
    empty_keys, empty_vals = np.empty(0, np.int64), np.empty(0, np.float32)
    keys, vals = typed.List([empty_keys] * len(shards)), typed.List([empty_vals] * len(shards))
    for s in range(len(shards)):
        read(s)
    state, carry = np.array([-1, -1], np.int64), np.zeros(1)
    while True:
        consumed, done = _merge_round(keys, vals, final, vocab_size, rows, cols, values, write, state, carry)
        if done:
            return int(state[0]) + 1
        starts += consumed
        for s in range(len(shards)):
            if consumed[s] == len(keys[s]) and not final[s]:
                read(s)
            elif consumed[s]:
                keys[s], vals[s] = keys[s][consumed[s]:], vals[s][consumed[s]:]


def count_cooccurrences(sentences: Iterable[np.ndarray], vocab_size: int, window: int, memory_mb: float,
                        tmp_dir: str | Path, symmetric: bool = True) -> Cooccurrences:
    """Distance-weighted co-occurrence counts of word ids in [0, vocab_size) (-1: unknown), each
    sentence its own window span. The buffer takes memory_mb (12 bytes a pair: the packed key and
    its reduced value), and at least room for a few tokens' pairs."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    shift = max(1, (window - 1).bit_length())
    if (vocab_size * vocab_size) >> (62 - shift):
        raise ValueError(f"vocab_size {vocab_size} is too large to pack pairs with window {window}")
    capacity = max(int(memory_mb * 2**20) // 12, 8 * window)
    buf, vals = np.empty(capacity, np.int64), np.empty(capacity, np.float32)
    Path(tmp_dir).mkdir(parents=True, exist_ok=True)
    shard_dir = Path(tempfile.mkdtemp(prefix="cooccur-", dir=tmp_dir))
    shards: list[tuple[Path, Path]] = []
    try:
        n = 0
        for flat, offsets in _batches(sentences, vocab_size, min(max(capacity // 32, MIN_BATCH), MAX_BATCH)):
            sent, pos = 0, 0
            while sent < len(offsets) - 1:
                n, sent, pos = _fill(flat, offsets, sent, pos, window, vocab_size, shift, symmetric, buf, n)
                if sent < len(offsets) - 1:  # full: reduce and spill
                    shards.append(_spill(buf, vals, n, shift, shard_dir, len(shards)))
                    n = 0
        buf[:n].sort()
        u = _reduce(buf, n, shift, vals)
        if not shards:
            return _result(buf[:u], vals[:u], vocab_size, 0)
        if u:
            shards.append(_spill(buf, vals, n, shift, shard_dir, len(shards), reduced=u))
        del buf, vals
        return _merge_shards(shards, vocab_size, max(1, capacity // (MERGE_SHARE * len(shards))))
    finally:
        shutil.rmtree(shard_dir, ignore_errors=True)


def _spill(buf: np.ndarray, vals: np.ndarray, n: int, shift: int, shard_dir: Path, index: int,
           reduced: int | None = None) -> tuple[Path, Path, int]:
    """Sort and reduce buf[:n] (unless already reduced to `reduced` entries) and save it as raw
    int64 keys and float32 values: (keys file, values file, entries)."""
    if reduced is None:
        buf[:n].sort()
        reduced = _reduce(buf, n, shift, vals)
    keys, values = shard_dir / f"shard_{index:04d}.keys", shard_dir / f"shard_{index:04d}.values"
    buf[:reduced].tofile(keys)
    vals[:reduced].tofile(values)
    return keys, values, reduced
