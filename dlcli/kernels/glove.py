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
and the cost is summed in float64. glove.c's NaN guards are left out (fastmath assumes finite).
Thread t updates entries order[cuts[t]:cuts[t + 1]], racing with the others on shared rows, as
glove.c's threads each read a contiguous block of the shuffled file. Numba compiles on first use
and caches the machine code.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

GRAD_CLIP = 100.0  # glove.c's -grad-clip default

# numba's OpenMP layer would share libgomp with torch and leave torch's thread count changed.
numba.config.THREADING_LAYER = "workqueue"


@njit(parallel=True, cache=True, fastmath=True)
def _epoch(W, Wt, b, bt, gW, gWt, gb, gbt, rows, cols, values, order, x_max, alpha, lr, cuts):
    threads, dim = cuts.shape[0] - 1, W.shape[1]
    costs = np.zeros(threads)
    clip = np.float32(GRAD_CLIP)
    for t in prange(threads):
        step_w = np.empty(dim, np.float32)
        step_wt = np.empty(dim, np.float32)
        cost = 0.0
        for e in range(cuts[t], cuts[t + 1]):
            entry = order[e]
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
                order: np.ndarray, x_max: float, alpha: float, lr: float, threads: int) -> float:
    """One pass over the entries in `order` (in place on the eight arrays); returns the mean of
    f(x) (w_i . w~_j + b_i + b~_j - log x)^2 / 2 before each update, the cost glove.c prints.
    W, Wt, gW, gWt: (V, D) float32; b, bt, gb, gbt: (V,) float32; rows, cols int32 and values
    float32 (> 0) of length N; order: int32 or int64 indices into them (int32 halves a large epoch's
    permutation)."""
    threads = max(1, min(threads, numba.config.NUMBA_NUM_THREADS, len(order)))
    numba.set_num_threads(threads)
    cuts = (np.arange(threads + 1, dtype=np.int64) * len(order)) // threads
    total = _epoch(W, Wt, b, bt, gW, gWt, gb, gbt, rows, cols, values, _indices(order),
                   np.float32(x_max), np.float32(alpha), np.float32(lr), cuts)
    return float(total) / max(1, len(order))


def _indices(order: np.ndarray) -> np.ndarray:
    order = np.asarray(order)
    return order if order.dtype in (np.int32, np.int64) else order.astype(np.int64)


def init_glove(vocab_size: int, dim: int, seed: int) -> tuple[np.ndarray, ...]:
    """(W, Wt, b, bt, gW, gWt, gb, gbt) as glove.c starts them: parameters uniform in
    (-0.5, 0.5) / dim, squared-gradient sums 1.0 (so the first step is lr * gradient)."""
    rng = np.random.default_rng(seed)

    def uniform(*shape: int) -> np.ndarray:
        return ((rng.random(shape, dtype=np.float32) - np.float32(0.5)) / np.float32(dim)).astype(np.float32)

    params = uniform(vocab_size, dim), uniform(vocab_size, dim), uniform(vocab_size), uniform(vocab_size)
    return params + tuple(np.ones_like(p) for p in params)


def shuffled_order(n: int, seed: int, dtype=np.int64) -> np.ndarray:
    """A random permutation of range(n), shuffled in place (no int64 copy first for an int32 one);
    glove.c shuffles its file once, with `shuffle`."""
    order = np.arange(n, dtype=dtype)
    np.random.default_rng(seed).shuffle(order)
    return order


def glove_vectors(W: np.ndarray, Wt: np.ndarray, model: str = "sum") -> np.ndarray:
    """The word vectors to keep: "sum" is W + Wt (glove.c's -model 2, its default), "input" is W
    alone (-model 1)."""
    if model == "sum":
        return W + Wt
    if model == "input":
        return W.copy()
    raise ValueError(f"model must be 'sum' or 'input', got {model!r}")
