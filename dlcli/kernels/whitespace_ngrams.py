"""fastText's features for text split at whitespace, compiled: a training corpus counted and
encoded with no Python object per token (the Python path spends ~0.5 us a token on str objects
and dict lookups, a second of a 10 s run on 3M tokens).

It gives exactly what NgramVocab's Python path gives for the same case (whitespace pattern, no
character n-grams): tokens split where `str.split` splits (its Unicode whitespace, matched on the
UTF-8 bytes), unknown tokens keyed by CRC-32 like zlib's, n-grams chained in 64-bit wrap-around.
Tests hold the two paths together.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_EMPTY = -1


def utf8(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """All texts' UTF-8 bytes in one array, and text i's byte range bounds[i]:bounds[i + 1]."""
    encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
    bounds = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, encoded), np.int64, count=len(encoded)), out=bounds[1:])
    return np.frombuffer(b"".join(encoded), np.uint8), bounds


def _first_bytes() -> np.ndarray:
    """Per byte value: 1 for an ASCII whitespace byte, 2 for a byte that starts a multi-byte
    whitespace character (U+0085, U+00A0, U+1680, U+2000-U+3000's few), 0 otherwise."""
    kind = np.zeros(256, np.uint8)
    kind[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = 1
    kind[[0xC2, 0xE1, 0xE2, 0xE3]] = 2
    return kind


_FIRST_BYTE = _first_bytes()


@njit(cache=True, inline="always")
def _space_width(buf, i):
    """Bytes of the whitespace character (str.isspace) starting at buf[i], or 0."""
    kind = _FIRST_BYTE[buf[i]]
    if kind < 2:
        return np.int64(kind)
    b, n = np.int64(buf[i]), buf.shape[0]
    if b == 0xC2:  # U+0085, U+00A0
        c = np.int64(buf[i + 1]) if i + 1 < n else 0
        return 2 if c == 0x85 or c == 0xA0 else 0
    if i + 2 >= n:
        return 0
    c, d = np.int64(buf[i + 1]), np.int64(buf[i + 2])
    if b == 0xE1:  # U+1680
        return 3 if c == 0x9A and d == 0x80 else 0
    if b == 0xE3:  # U+3000
        return 3 if c == 0x80 and d == 0x80 else 0
    if c == 0x80:  # U+2000-200A, U+2028, U+2029, U+202F
        return 3 if d <= 0x8A or d == 0xA8 or d == 0xA9 or d == 0xAF else 0
    return 3 if c == 0x81 and d == 0x9F else 0  # U+205F


@njit(cache=True)
def _scan(buf, bounds, starts, ends, owner, fill):
    """Count (fill False) or record (fill True) the tokens of every text; returns the count."""
    count = 0
    for t in range(bounds.shape[0] - 1):
        start, i, stop = -1, bounds[t], bounds[t + 1]
        while i < stop:
            width = _space_width(buf, i)
            if width == 0:
                if start < 0:
                    start = i
                i += 1
                continue
            if start >= 0:
                if fill:
                    starts[count], ends[count], owner[count] = start, i, t
                count += 1
                start = -1
            i += width
        if start >= 0:
            if fill:
                starts[count], ends[count], owner[count] = start, stop, t
            count += 1
    return count


def token_spans(buf: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each token's byte range [starts, ends) and the text it belongs to."""
    none = np.zeros(0, np.int64)
    n = _scan(buf, bounds, none, none, none, False)
    starts, ends, owner = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    _scan(buf, bounds, starts, ends, owner, True)
    return starts, ends, owner


@njit(cache=True)
def _fnv(buf, start, end):
    h = _FNV_OFFSET
    for i in range(start, end):
        h = (h ^ np.uint64(buf[i])) * _FNV_PRIME
    return h


@njit(cache=True)
def _same(a, a0, a1, b, b0, b1):
    if a1 - a0 != b1 - b0:
        return False
    for k in range(a1 - a0):
        if a[a0 + k] != b[b0 + k]:
            return False
    return True


@njit(cache=True)
def _find(slots, keys, key_starts, key_ends, buf, start, end, h):
    """The slot holding token buf[start:end] (slots hold token numbers k, whose bytes are
    keys[key_starts[k]:key_ends[k]]), or the empty slot where it would go."""
    mask = slots.shape[0] - 1
    s = np.int64(h & np.uint64(mask))
    while True:
        k = slots[s]
        if k == _EMPTY or _same(keys, key_starts[k], key_ends[k], buf, start, end):
            return s
        s = (s + 1) & mask


@njit(cache=True)
def _table(keys, key_starts, key_ends, size):
    """An open-addressing table of the first `size` distinct tokens, at most half full."""
    capacity = 16
    while capacity < 2 * size:
        capacity *= 2
    slots = np.full(capacity, _EMPTY, np.int64)
    for k in range(size):
        a, b = key_starts[k], key_ends[k]
        slots[_find(slots, keys, key_starts, key_ends, keys, a, b, _fnv(keys, a, b))] = k
    return slots


@njit(cache=True)
def _grown(values, size):
    out = np.empty(2 * values.shape[0], np.int64)
    out[:size] = values[:size]
    return out


@njit(cache=True)
def count_tokens(buf, starts, ends):
    """The distinct tokens in order of first appearance: their byte ranges and counts."""
    first_start, first_end, counts = np.empty(1024, np.int64), np.empty(1024, np.int64), np.empty(1024, np.int64)
    slots = _table(buf, first_start, first_end, 0)
    seen = 0
    for j in range(starts.shape[0]):
        a, b = starts[j], ends[j]
        s = _find(slots, buf, first_start, first_end, buf, a, b, _fnv(buf, a, b))
        if slots[s] != _EMPTY:
            counts[slots[s]] += 1
            continue
        if seen == counts.shape[0]:
            first_start, first_end, counts = (_grown(first_start, seen), _grown(first_end, seen),
                                              _grown(counts, seen))
        first_start[seen], first_end[seen], counts[seen] = a, b, 1
        slots[s] = seen
        seen += 1
        if 2 * seen > slots.shape[0]:
            slots = _table(buf, first_start, first_end, seen)
    return first_start[:seen], first_end[:seen], counts[:seen]


def vocabulary_table(tokens: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The vocabulary as (bytes, starts, ends, slots) for `encode`: token k is id k."""
    keys, bounds = utf8(tokens)
    return keys, bounds[:-1], bounds[1:], _table(keys, bounds[:-1], bounds[1:], len(tokens))


@njit(cache=True)
def _crc32_table():
    table = np.empty(256, np.uint32)
    for n in range(256):
        c = np.uint32(n)
        for _ in range(8):
            c = (c >> np.uint32(1)) ^ np.uint32(0xEDB88320) if c & np.uint32(1) else c >> np.uint32(1)
        table[n] = c
    return table


@njit(cache=True)
def _crc32(buf, start, end, table):
    """zlib.crc32 of buf[start:end]."""
    c = np.uint32(0xFFFFFFFF)
    for i in range(start, end):
        c = table[(c ^ np.uint32(buf[i])) & np.uint32(0xFF)] ^ (c >> np.uint32(8))
    return c ^ np.uint32(0xFFFFFFFF)


@njit(cache=True)
def encode(buf, starts, ends, owner, num_texts, keys, key_starts, key_ends, slots, num_words, buckets,
           word_ngrams, multiplier):
    """Every text's bag, concatenated: its vocabulary words, then its hashed word n-grams of
    each order 2..word_ngrams, each group in text order (NgramVocab.encode_batch's layout).
    Returns the flat ids and each text's bag size."""
    n = starts.shape[0]
    crc = _crc32_table()
    key = np.empty(n, np.uint64)  # a word's id, or past the word ids for a token outside the vocabulary
    for j in range(n):
        a, b = starts[j], ends[j]
        k = slots[_find(slots, keys, key_starts, key_ends, buf, a, b, _fnv(buf, a, b))]
        key[j] = np.uint64(k) if k > 0 else np.uint64(num_words) + np.uint64(_crc32(buf, a, b, crc))
    first = np.zeros(num_texts + 1, np.int64)  # each text's first token
    for j in range(n):
        first[owner[j] + 1] = j + 1
    for t in range(num_texts):
        first[t + 1] = max(first[t + 1], first[t])
    sizes = np.zeros(num_texts, np.int64)
    for t in range(num_texts):
        m = first[t + 1] - first[t]
        for j in range(first[t], first[t + 1]):
            sizes[t] += key[j] < np.uint64(num_words)
        for order in range(2, word_ngrams + 1):
            sizes[t] += max(0, m - order + 1)
    flat = np.empty(sizes.sum(), np.int64)
    out = 0
    for t in range(num_texts):
        lo, hi = first[t], first[t + 1]
        for j in range(lo, hi):
            if key[j] < np.uint64(num_words):
                flat[out] = np.int64(key[j])
                out += 1
        for order in range(2, word_ngrams + 1):
            for j in range(lo, hi - order + 1):
                h = key[j]
                for q in range(1, order):
                    h = h * multiplier + key[j + q]
                flat[out] = np.int64(h % np.uint64(buckets)) + num_words
                out += 1
    return flat, sizes
