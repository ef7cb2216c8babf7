"""GloVe's training loop (Pennington et al. 2014): lock-free (Hogwild) AdaGrad on 2+ threads.

Each co-occurrence entry (i, j, x) costs f(x) (w_i . w~_j + b_i + b~_j - log x)^2 / 2 with
f(x) = min(1, (x / x_max)^alpha). The update is glove.c's (stanfordnlp/GloVe at 52f7dbc), step
for step: with e = f(x) * (w_i . w~_j + b_i + b~_j - log x),
- vectors: g = lr * clip(e * w~_j, +-100) for w_i (and e * w_i for w~_j, both from the values
  before the step); w_i -= g / sqrt(G_i); then G_i += g^2. So G holds squared *scaled*
  gradients, starting at 1.0: the first step has size lr * gradient.
- biases: b_i -= e / sqrt(Gb_i); then Gb_i += e^2: no lr and no clipping, as glove.c does (its
  PR #209 adding them is unmerged; maintainers found the vectors got worse with it).
glove.c keeps everything in double; here the parameters are float32, the dot product is float32
and the cost is summed in float64 (float64 squared-gradient sums did not help on wiki_en_corpus:
a last-iteration cost of 0.03228 against 0.03227, dev analogy 0.123 against 0.128 in float32, seed 1).
glove.c's NaN guards are left out (fastmath assumes finite).

glove.c shuffles its file once and reads it in that order every iteration. Here each epoch visits
the entries in a fresh pseudo-random order that takes no memory: position p reads entry
`_permute(p)`, a keyed permutation of range(n) (a 4-round Feistel network, Luby and
Rackoff 1988, over the next even number of bits, cycle-walked back into range), where an index
array would take 4 bytes an entry (138 MB for wiki_en_corpus's 34.5M) and shuffling it a second
per epoch. Thread t takes positions cuts[t]:cuts[t + 1], racing with the others on shared rows, as
glove.c's threads each read a contiguous block of the shuffled file. Numba compiles on first use
and caches the machine code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numba
import numpy as np
from numba import njit, prange

GRAD_CLIP = 100.0  # glove.c's -grad-clip default

# numba's OpenMP layer would share libgomp with torch and leave torch's thread count changed.
numba.config.THREADING_LAYER = "workqueue"


_ROUNDS = 4
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)  # splitmix64's mixing constants
_S31, _S64 = np.uint64(31), np.uint64(64)


@njit(cache=True, inline="always")
def _permute(p, n, keys, half):
    """The entry at position p in [0, n): the Feistel block is applied until the value lands
    below n (cycle-walking; the block's domain is under 4n, so under 4 tries on average)."""
    h = np.uint64(half)
    mask = (np.uint64(1) << h) - np.uint64(1)
    x = np.uint64(p)
    while True:
        left, right = x >> h, x & mask
        for r in range(_ROUNDS):
            z = (right ^ keys[r]) * _M1
            z = (z ^ (z >> _S31)) * _M2
            left, right = right, left ^ (z >> (_S64 - h))
        x = (left << h) | right
        if x < np.uint64(n):
            return np.int64(x)


@njit(cache=True)
def _permutation(lo, hi, n, keys, half):
    out = np.empty(hi - lo, np.int64)
    for p in range(lo, hi):
        out[p - lo] = _permute(p, n, keys, half)
    return out


@dataclass(frozen=True)
class EntryOrder:
    """Positions lo:hi of a seeded pseudo-random permutation of range(n) (see the module
    docstring); slicing gives a sub-range, `entries()` the entry ids of these positions."""

    n: int
    keys: np.ndarray  # (_ROUNDS,) uint64 round keys
    half: int  # bits in each half of the Feistel block
    lo: int  # first position
    hi: int  # one past the last

    @classmethod
    def shuffled(cls, n: int, seed: int) -> EntryOrder:
        bits = max(2, (max(1, n) - 1).bit_length())
        keys = np.random.default_rng(seed).integers(0, 2**63, size=_ROUNDS, dtype=np.uint64)
        return cls(n, keys, (bits + 1) // 2, 0, n)

    def __len__(self) -> int:
        return self.hi - self.lo

    def __getitem__(self, positions: slice) -> EntryOrder:
        start, stop, step = positions.indices(len(self))
        if step != 1:
            raise ValueError("an EntryOrder slices only in steps of 1")
        return replace(self, lo=self.lo + start, hi=self.lo + max(start, stop))

    def entries(self) -> np.ndarray:
        return _permutation(self.lo, self.hi, self.n, self.keys, self.half)


@njit(parallel=True, cache=True, fastmath=True)
def _epoch(W, Wt, b, bt, gW, gWt, gb, gbt, rows, cols, values, n, keys, half, x_max, alpha, lr, cuts):
    threads, dim = cuts.shape[0] - 1, W.shape[1]
    costs = np.zeros(threads)
    clip = np.float32(GRAD_CLIP)
    for t in prange(threads):
        step_w = np.empty(dim, np.float32)
        step_wt = np.empty(dim, np.float32)
        cost = 0.0
        for e in range(cuts[t], cuts[t + 1]):
            entry = _permute(e, n, keys, half)
            i, j, x = rows[entry], cols[entry], values[entry]
            diff = np.float32(0.0)
            for d in range(dim):
                diff += W[i, d] * Wt[j, d]
            diff += b[i] + bt[j] - np.float32(math.log(x))
            fdiff = diff if x > x_max else np.float32((x / x_max) ** alpha) * diff
            cost += 0.5 * fdiff * diff
            for d in range(dim):
                g_w = min(max(fdiff * Wt[j, d], -clip), clip) * lr
                g_wt = min(max(fdiff * W[i, d], -clip), clip) * lr
                step_w[d] = g_w / math.sqrt(gW[i, d])
                step_wt[d] = g_wt / math.sqrt(gWt[j, d])
                gW[i, d] += g_w * g_w
                gWt[j, d] += g_wt * g_wt
            for d in range(dim):
                W[i, d] -= step_w[d]
                Wt[j, d] -= step_wt[d]
            b[i] -= fdiff / math.sqrt(gb[i])
            bt[j] -= fdiff / math.sqrt(gbt[j])
            gb[i] += fdiff * fdiff
            gbt[j] += fdiff * fdiff
        costs[t] = cost
    return costs.sum()


def glove_epoch(W: np.ndarray, Wt: np.ndarray, b: np.ndarray, bt: np.ndarray, gW: np.ndarray, gWt: np.ndarray,
                gb: np.ndarray, gbt: np.ndarray, rows: np.ndarray, cols: np.ndarray, values: np.ndarray,
                order: EntryOrder, x_max: float, alpha: float, lr: float, threads: int) -> float:
    """One pass over the entries that `order` (an EntryOrder over len(values) entries, or a slice
    of one) names, in place on the eight arrays; returns the mean of
    f(x) (w_i . w~_j + b_i + b~_j - log x)^2 / 2 before each update, the cost glove.c prints.
    W, Wt, gW, gWt: (V, D) float32; b, bt, gb, gbt: (V,) float32; rows, cols int32 and values
    float32 (> 0) of length n."""
    if order.n != len(values):
        raise ValueError(f"the order is over {order.n} entries, not the {len(values)} given")
    threads = max(1, min(threads, numba.config.NUMBA_NUM_THREADS, len(order)))
    numba.set_num_threads(threads)
    cuts = order.lo + (np.arange(threads + 1, dtype=np.int64) * len(order)) // threads
    total = _epoch(W, Wt, b, bt, gW, gWt, gb, gbt, rows, cols, values, order.n, order.keys, order.half,
                   np.float32(x_max), np.float32(alpha), np.float32(lr), cuts)
    return float(total) / max(1, len(order))


def init_glove(vocab_size: int, dim: int, seed: int) -> tuple[np.ndarray, ...]:
    """(W, Wt, b, bt, gW, gWt, gb, gbt) as glove.c starts them: parameters uniform in
    (-0.5, 0.5) / dim, squared-gradient sums 1.0 (so the first step is lr * gradient)."""
    rng = np.random.default_rng(seed)

    def uniform(*shape: int) -> np.ndarray:
        return ((rng.random(shape, dtype=np.float32) - np.float32(0.5)) / np.float32(dim)).astype(np.float32)

    params = uniform(vocab_size, dim), uniform(vocab_size, dim), uniform(vocab_size), uniform(vocab_size)
    return params + tuple(np.ones_like(p) for p in params)


def glove_vectors(W: np.ndarray, Wt: np.ndarray, model: str = "sum") -> np.ndarray:
    """The word vectors to keep: "sum" is W + Wt (glove.c's -model 2, its default), "input" is W
    alone (-model 1)."""
    if model == "sum":
        return W + Wt
    if model == "input":
        return W.copy()
    raise ValueError(f"model must be 'sum' or 'input', got {model!r}")
