"""fastText's training loop: lock-free (Hogwild, Recht et al. 2011) per-example SGD on 2+ threads.

Per example: the hidden vector is the mean of its input rows; the output rows move along the
loss gradient (softmax over all labels, hierarchical softmax along the label's Huffman path, or
one sigmoid per label); every input row then moves by the hidden gradient / bag size. This is
exactly SGD on the reference forward, FastText.forward_bags (tests/unit/test_fasttext_parity.py
compares examples on one thread against autograd SGD on it, for every loss), applied one example
at a time as fastText does, with threads racing on shared rows. An empty bag is skipped, as in
fastText: its gradient is zero, and it counts as zero loss in the mean. The forward is written out
here rather than shared with kernels/bag_means.py: it is fused with the update, and numba's cache
does not notice edits to a function called from another file. Numba compiles it on first use and
caches the machine code.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

SOFTMAX, HIERARCHICAL, ONE_VS_ALL = 0, 1, 2

# numba's OpenMP layer would share libgomp with torch and leave torch's thread count changed.
numba.config.THREADING_LAYER = "workqueue"


@njit(cache=True, fastmath=True)
def _sigmoid(x):
    if x < -30.0:
        return 0.0
    if x > 30.0:
        return 1.0
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, fastmath=True)
def _output_step(kind, W, h, g, scores, label, multi, row, paths, codes, depths, lr):
    """Update output rows for one example, accumulate the hidden gradient in g; returns the loss."""
    dim = h.shape[0]
    loss = 0.0
    if kind == SOFTMAX:
        top = -1e30
        for c in range(W.shape[0]):
            s = 0.0
            for d in range(dim):
                s += W[c, d] * h[d]
            scores[c] = s
            top = max(top, s)
        total = 0.0
        for c in range(W.shape[0]):
            scores[c] = math.exp(scores[c] - top)
            total += scores[c]
        for c in range(W.shape[0]):
            p = scores[c] / total
            alpha = lr * ((1.0 if c == label else 0.0) - p)
            for d in range(dim):
                g[d] += alpha * W[c, d]
                W[c, d] += alpha * h[d]
        loss = -math.log(max(scores[label] / total, 1e-30))
    else:
        steps = depths[label] if kind == HIERARCHICAL else W.shape[0]
        for k in range(steps):
            node = paths[label, k] if kind == HIERARCHICAL else k
            target = codes[label, k] if kind == HIERARCHICAL else multi[row, k]
            s = 0.0
            for d in range(dim):
                s += W[node, d] * h[d]
            p = _sigmoid(s)
            alpha = lr * (target - p)
            for d in range(dim):
                g[d] += alpha * W[node, d]
                W[node, d] += alpha * h[d]
            loss -= math.log(max(p if target > 0.5 else 1.0 - p, 1e-30))
    return loss


@njit(parallel=True, cache=True, fastmath=True)
def _epoch_chunk(E, W, flat, starts, lengths, kind, labels, multi, paths, codes, depths, lr, cuts):
    """Thread t takes examples cuts[t]:cuts[t + 1]."""
    threads, dim = cuts.shape[0] - 1, E.shape[1]
    losses = np.zeros(threads)
    for t in prange(threads):
        h = np.empty(dim, np.float32)
        g = np.empty(dim, np.float32)
        scores = np.empty(W.shape[0], np.float32)
        for row in range(cuts[t], cuts[t + 1]):
            size = lengths[row]
            if size == 0:
                continue
            start = starts[row]
            h[:] = 0.0
            for j in range(start, start + size):
                r = flat[j]
                for d in range(dim):
                    h[d] += E[r, d]
            inv = 1.0 / size
            for d in range(dim):
                h[d] *= inv
            g[:] = 0.0
            losses[t] += _output_step(kind, W, h, g, scores, labels[row], multi, row, paths, codes, depths, lr)
            for d in range(dim):
                g[d] *= inv
            for j in range(start, start + size):
                r = flat[j]
                for d in range(dim):
                    E[r, d] += g[d]
    return losses.sum()


def sgd_step(E: np.ndarray, W: np.ndarray, flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray, kind: int,
             labels: np.ndarray, multi: np.ndarray, paths: np.ndarray, codes: np.ndarray, depths: np.ndarray,
             lr: float, threads: int) -> float:
    """One pass over a batch (in place on E and W); returns the mean loss before each update.
    Example i's input rows are flat[starts[i] : starts[i] + lengths[i]]."""
    threads = max(1, min(threads, numba.config.NUMBA_NUM_THREADS, len(lengths)))
    numba.set_num_threads(threads)
    # Equal shares of tokens, not of examples: the threads finish together and wait less.
    tokens = np.cumsum(lengths)
    cuts = np.zeros(threads + 1, np.int64)
    if len(tokens):
        cuts[1:-1] = np.searchsorted(tokens, tokens[-1] * np.arange(1, threads) / threads, side="right")
    cuts[-1] = len(lengths)
    total = _epoch_chunk(E, W, flat, starts, lengths, kind, labels, multi, paths, codes, depths, np.float32(lr),
                         cuts)
    return float(total) / max(1, len(lengths))
