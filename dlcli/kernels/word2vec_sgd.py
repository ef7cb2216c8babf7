"""word2vec's training loop (Mikolov et al. 2013, "Distributed Representations of Words and
Phrases"): skip-gram or CBOW, with negative sampling or hierarchical softmax, lock-free (Hogwild,
Recht et al. 2011) SGD on numba threads, as word2vec.c trains.

Per sentence, each thread first drops word w with probability 1 - keep_prob[w] (subsampling of
frequent words), then walks the kept words; around each centre word it draws b in [0, window) and
uses the window window - b, so near words count more. Skip-gram follows word2vec.c's direction:
each context word's input row predicts the centre word (its output row, or its Huffman path).
Under hierarchical softmax all of a centre's contexts predict the same path, so they walk it two
at a time (_path_pair): at each inner node both score the node's row as it stands, then both
gradients move it. word2vec.c walks it once per context, so the second context of a pair sees the
first's update of a node one step later than it would there; reading each row once for two
decisions makes skip-gram HS about a third faster (a third of an epoch of the wiki bench's corpus:
6.0 s against 3.7-4.2 s) at gensim's quality (6 seeds: dev analogies 0.206 against 0.206;
docs/benchmarks.md).
CBOW sums (or, with cbow_mean, averages) the context input rows into one hidden vector that
predicts the centre word, and adds the whole hidden gradient to every context row, as word2vec.c
does in both modes. Negative sampling scores the target with label 1 and `negative` draws from the
noise table with label 0 (a draw equal to the target is skipped, not redrawn); hierarchical
softmax makes one decision per inner node on the target's path, label = the branch code (branch 1
-> sigma(+s)), as dlcli.nn.hsoftmax scores it.

The sigmoid and the loss come from tables, as word2vec.c and gensim read them, not from exp and
log per decision: SIGMOID_TABLE and LOG_SIGMOID_TABLE hold sigma and log sigma at the midpoints of
TABLE_SIZE equal bins over [-MAX_EXP, MAX_EXP] (word2vec.c and gensim sample the bins' left edges,
which reads sigma low by up to a bin's rise; the midpoints halve and centre that error); a score s
in that range reads bin
int((s + MAX_EXP) * TABLE_SIZE / (2 * MAX_EXP)), in float32. A decision whose score is saturated,
|s| >= MAX_EXP, is skipped (no update to either side), as gensim does for both losses; word2vec.c
skips it under hierarchical softmax only and applies the saturated gradient (label - 1 or
label - 0) under negative sampling. We follow gensim, the peer we are measured against. The loss is
the summed negative log-likelihood of every decision, before its update, read from the log-sigmoid
table (the bins are symmetric, so -log(1 - sigma(s)) is bin TABLE_SIZE - 1 - b's); a skipped
decision still counts: 0 on its label's side, else the table's saturated value
-LOG_SIGMOID_TABLE[0] (about MAX_EXP).

The learning rate falls linearly from lr_start to lr_end over each thread's share of the call's
tokens (counted before subsampling, as word2vec.c counts words). Every thread draws from its own
64-bit LCG (word2vec.c's multiplier) seeded from (seed, thread), so one thread is deterministic.
Sentences longer than MAX_SENTENCE tokens are cut, as gensim does, so shares stay balanced.
Everything lives in this file: numba's cache does not notice edits to a function in another file.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from dlcli.nn.huffman import huffman_paths

SKIPGRAM, CBOW = 0, 1
NEGATIVE, HIERARCHICAL = 0, 1
MAX_SENTENCE = 10_000
MAX_EXP = 6.0  # scores at or beyond +-MAX_EXP are saturated: their decision is skipped
TABLE_SIZE = 1000


def _sigmoid_tables() -> tuple[np.ndarray, np.ndarray]:
    """(sigma, log sigma) at the midpoints of TABLE_SIZE equal bins over [-MAX_EXP, MAX_EXP],
    float32, read-only. The midpoints are symmetric about 0: bin TABLE_SIZE - 1 - b is bin b's
    negation."""
    x = (np.arange(TABLE_SIZE) + 0.5) * (2 * MAX_EXP / TABLE_SIZE) - MAX_EXP
    sigmoid, log_sigmoid = 1.0 / (1.0 + np.exp(-x)), -np.logaddexp(0.0, -x)
    tables = sigmoid.astype(np.float32), log_sigmoid.astype(np.float32)
    for t in tables:
        t.flags.writeable = False
    return tables


SIGMOID_TABLE, LOG_SIGMOID_TABLE = _sigmoid_tables()

# numba's OpenMP layer would share libgomp with torch and leave torch's thread count changed.
numba.config.THREADING_LAYER = "workqueue"

_MULT, _INC = np.uint64(25214903917), np.uint64(11)
_S16, _S32, _S33, _LOW24 = np.uint64(16), np.uint64(32), np.uint64(33), np.uint64(0xFFFFFF)


class NoiseRuns(NamedTuple):
    """word2vec.c's unigram table of `size` slots, kept as runs of equal words and read through a
    guide. The kernel turns 32 random bits x into slot u = x * size >> 32 and bucket x >> shift,
    then scans from run guide[bucket] to the first run r with ends[r] > u: the draw is words[r],
    the table's slot u. A draw touches a few hot cache lines instead of one cold line of a 40 MB
    table, and the table itself is never built."""

    ends: np.ndarray  # int64 (R,): the slot after run r; ends[-1] is the table's size
    words: np.ndarray  # int32 (R,): the word filling run r
    guide: np.ndarray  # int32 (G,): the first run that bucket g's slots can fall in; G a power of two
    shift: np.uint64  # 32 - log2 G

    @classmethod
    def from_runs(cls, ends: np.ndarray, words: np.ndarray) -> NoiseRuns:
        """The runs with their guide: G is at least twice the runs, up to 2**20."""
        size = int(ends[-1]) if len(ends) else 0
        if size <= 0:
            raise ValueError("the noise table has no slots")
        if size >= 2**32:
            raise ValueError("the noise table must have fewer than 2**32 slots")
        buckets = 1 << int(min(20, max(4, np.ceil(np.log2(2 * len(ends))))))
        lows = np.arange(buckets, dtype=np.int64) * size // buckets  # the first slot of each bucket
        guide = np.searchsorted(ends, lows, side="right").astype(np.int32)
        return cls(np.ascontiguousarray(ends, dtype=np.int64), np.ascontiguousarray(words, dtype=np.int32), guide,
                   np.uint64(32 - buckets.bit_length() + 1))

    @classmethod
    def from_table(cls, table: np.ndarray) -> NoiseRuns:
        """The runs of an explicit table, whose uniform slot is a draw."""
        table = np.asarray(table)
        if len(table) == 0:
            raise ValueError("the noise table has no slots")
        firsts = np.concatenate([[0], np.flatnonzero(table[1:] != table[:-1]) + 1])
        return cls.from_runs(np.append(firsts[1:], len(table)), table[firsts])


def noise_runs(counts: np.ndarray, size: int = 10_000_000, power: float = 0.75) -> NoiseRuns:
    """word2vec.c's unigram table of `size` slots, as runs: word w fills a share count[w]**power / Z
    of the slots (cut at the rounded cumulative edges; a word with count 0 gets none)."""
    weights = np.asarray(counts, dtype=np.float64) ** power
    weights[np.asarray(counts) <= 0] = 0.0
    if weights.sum() <= 0:
        raise ValueError("the noise distribution needs at least one positive count")
    edges = np.rint(np.cumsum(weights) / weights.sum() * size).astype(np.int64)
    filled = np.diff(edges, prepend=0) > 0
    return NoiseRuns.from_runs(edges[filled], np.flatnonzero(filled))


def keep_probability(counts: np.ndarray, sample: float = 1e-3) -> np.ndarray:
    """(V,) float32 probability of keeping each occurrence of a word, word2vec.c's (and gensim's)
    formula: (sqrt(c / t) + 1) * t / c with t = sample * total count, capped at 1; sample=0 keeps
    everything."""
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones(len(counts), dtype=np.float32)
    threshold = sample * counts.sum()
    with np.errstate(divide="ignore"):
        keep = (np.sqrt(counts / threshold) + 1.0) * threshold / counts
    return np.minimum(keep, 1.0).astype(np.float32)


def hs_tree(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Huffman tree of `huffman_paths` in the kernel's form: points (V, L) int32 inner-node
    ids (rows of the (V-1, D) output matrix) from the root down, codes (V, L) float32 branch taken
    (the decision's label), depths (V,) int32; rows are zero-padded past their depth."""
    paths, codes, depths = huffman_paths([int(c) for c in counts])
    return paths.astype(np.int32), codes.astype(np.float32), depths.astype(np.int32)


@njit(cache=True, fastmath=True, inline="always")
def _next(state):
    return state * _MULT + _INC


@njit(cache=True, fastmath=True, inline="always")
def _decision(s, label, lr, sig_table, log_table):
    """One logistic decision with score s: (trained, gradient scale, loss before the update). A
    saturated score (|s| >= MAX_EXP) is skipped, as gensim does: no gradient, and a loss of 0 on its
    label's side, else the table's saturated value."""
    last = log_table.shape[0] - 1
    top_exp = np.float32(MAX_EXP)
    positive = label > np.float32(0.5)
    if s <= -top_exp or s >= top_exp:
        return False, np.float32(0.0), 0.0 if (s > np.float32(0.0)) == positive else -log_table[0]
    # The clamp keeps a rounding at the top edge (or a NaN score) inside the table.
    b = min(max(np.int64((s + top_exp) * np.float32(TABLE_SIZE / (2 * MAX_EXP))), 0), last)
    return True, lr * (label - sig_table[b]), -log_table[b if positive else last - b]


@njit(cache=True, fastmath=True, inline="always")
def _predict(W_out, H, hrow, neu1e, target, loss, negative, ends, words, guide, shift, points, codes, depths,
             sig_table, log_table, lr, state):
    """Every logistic decision that predicts `target` from the hidden vector H[hrow]: each
    accumulates its hidden gradient in neu1e and moves its output row. Returns (loss before the
    updates, rng state). One loop for both losses keeps a single copy of the vector code."""
    dim = H.shape[1]
    total = 0.0
    size = np.uint64(ends[-1])
    steps = depths[target] if loss == HIERARCHICAL else negative + 1
    for k in range(steps):
        if loss == HIERARCHICAL:
            row, label = points[target, k], codes[target, k]
        elif k == 0:
            row, label = target, np.float32(1.0)
        else:
            state = _next(state)
            top = state >> _S32
            slot = np.int64((top * size) >> _S32)  # the draw is table[slot]
            run = guide[top >> shift]
            while ends[run] <= slot:
                run += 1
            row, label = words[run], np.float32(0.0)
            if row == target:
                continue
        s = np.float32(0.0)
        for d in range(dim):
            s += H[hrow, d] * W_out[row, d]
        trained, g, step = _decision(s, label, lr, sig_table, log_table)
        total += step
        if not trained:
            continue
        for d in range(dim):
            neu1e[d] += g * W_out[row, d]
            W_out[row, d] += g * H[hrow, d]
    return total, state


@njit(cache=True, fastmath=True, inline="always")
def _path_pair(W_out, W_in, ca, cb, ea, eb, target, points, codes, depths, sig_table, log_table, lr):
    """Skip-gram under hierarchical softmax: the context rows W_in[ca] and W_in[cb] predict the
    same target's path together. At each inner node both scores read the node's row as it stands,
    then both gradients move it; each context's hidden gradient accumulates in ea, eb. Returns the
    loss before the updates."""
    dim = W_in.shape[1]
    total = 0.0
    for k in range(depths[target]):
        row, label = points[target, k], codes[target, k]
        sa = np.float32(0.0)
        sb = np.float32(0.0)
        for d in range(dim):
            w = W_out[row, d]
            sa += W_in[ca, d] * w
            sb += W_in[cb, d] * w
        _, ga, la = _decision(sa, label, lr, sig_table, log_table)  # a skipped decision's gradient is 0
        _, gb, lb = _decision(sb, label, lr, sig_table, log_table)
        total += la + lb
        for d in range(dim):
            w = W_out[row, d]
            ea[d] += ga * w
            eb[d] += gb * w
            W_out[row, d] = w + ga * W_in[ca, d] + gb * W_in[cb, d]
    return total


@njit(cache=True, fastmath=True)
def _subsample(tokens, lo, hi, keep_prob, sen, state):
    """Copies the kept words of tokens[lo:hi] into sen; returns (count, rng state)."""
    n = 0
    for i in range(lo, hi):
        w = tokens[i]
        kp = keep_prob[w]
        if kp < np.float32(1.0):
            state = _next(state)
            if np.float32((state >> _S16) & _LOW24) * np.float32(1.0 / 16777216.0) >= kp:
                continue
        sen[n] = w
        n += 1
    return n, state


@njit(cache=True, fastmath=True)
def _sentence(W_in, W_out, sen, n, arch, loss, negative, ends, words, guide, shift, points, codes, depths, window,
              cbow_mean, lr0, lr_step, sig_table, log_table, neu1, neu1e, state):
    """Trains every centre word of the kept sentence sen[:n]; returns (loss, pairs, rng state);
    lr0 + pos * lr_step is the learning rate at position pos. neu1 is a (1, D) scratch row for
    CBOW's hidden vector (and the second hidden gradient of a skip-gram HS pair); skip-gram reads the
    context's row of W_in in place, as word2vec.c does (indices, not a view: a view's reference
    count is an atomic that the threads would share)."""
    dim = W_in.shape[1]
    total, pairs = 0.0, 0
    for pos in range(n):
        lr = np.float32(lr0 + pos * lr_step)
        state = _next(state)
        reach = window - np.int64((state >> _S33) % np.uint64(window))
        lo, hi = max(0, pos - reach), min(n, pos + reach + 1)
        centre = sen[pos]
        if arch == SKIPGRAM:
            c = lo
            while c < hi:
                if c == pos:
                    c += 1
                    continue
                other = c + 1 + (c + 1 == pos)  # the next context
                if loss == HIERARCHICAL and other < hi:
                    ca, cb = sen[c], sen[other]
                    for d in range(dim):
                        neu1e[d] = 0.0
                        neu1[0, d] = 0.0
                    total += _path_pair(W_out, W_in, ca, cb, neu1e, neu1[0], centre, points, codes, depths,
                                        sig_table, log_table, lr)
                    for d in range(dim):
                        W_in[ca, d] += neu1e[d]
                        W_in[cb, d] += neu1[0, d]
                    pairs += 2
                    c = other + 1
                    continue
                ctx = sen[c]
                for d in range(dim):
                    neu1e[d] = 0.0
                step, state = _predict(W_out, W_in, ctx, neu1e, centre, loss, negative, ends, words, guide, shift,
                                       points, codes, depths, sig_table, log_table, lr, state)
                total += step
                pairs += 1
                for d in range(dim):
                    W_in[ctx, d] += neu1e[d]
                c += 1
            continue
        if hi - lo < 2:
            continue
        for d in range(dim):
            neu1[0, d] = 0.0
            neu1e[d] = 0.0
        for c in range(lo, hi):
            if c != pos:
                ctx = sen[c]
                for d in range(dim):
                    neu1[0, d] += W_in[ctx, d]
        if cbow_mean:
            inv = np.float32(1.0 / (hi - lo - 1))
            for d in range(dim):
                neu1[0, d] *= inv
        step, state = _predict(W_out, neu1, 0, neu1e, centre, loss, negative, ends, words, guide, shift, points,
                               codes, depths, sig_table, log_table, lr, state)
        total += step
        pairs += 1
        for c in range(lo, hi):
            if c != pos:
                ctx = sen[c]
                for d in range(dim):
                    W_in[ctx, d] += neu1e[d]
    return total, pairs, state


@njit(parallel=True, cache=True, fastmath=True)
def _train(W_in, W_out, tokens, starts, keep_prob, ends, words, guide, shift, points, codes, depths, arch, loss,
           window, negative, cbow_mean, lr_start, lr_end, cuts, states, longest, sig_table, log_table):
    """Thread t takes sentences cuts[t]:cuts[t + 1], decaying its learning rate over their tokens."""
    threads, dim = cuts.shape[0] - 1, W_in.shape[1]
    losses = np.zeros(threads)
    kept = np.zeros(threads, np.int64)
    pairs = np.zeros(threads, np.int64)
    for t in prange(threads):
        sen = np.empty(longest, np.int32)
        neu1 = np.empty((1, dim), np.float32)
        neu1e = np.empty(dim, np.float32)
        state = states[t]
        first, share = starts[cuts[t]], max(1, starts[cuts[t + 1]] - starts[cuts[t]])
        for s in range(cuts[t], cuts[t + 1]):
            lo, hi = starts[s], starts[s + 1]
            n, state = _subsample(tokens, lo, hi, keep_prob, sen, state)
            if n == 0:
                continue
            # Position pos of the kept words stands in for raw token lo + pos * (hi - lo) / n.
            lr0 = lr_start + (lr_end - lr_start) * (lo - first) / share
            lr_step = (lr_end - lr_start) * (hi - lo) / (n * share)
            step, count, state = _sentence(W_in, W_out, sen, n, arch, loss, negative, ends, words, guide, shift, points,
                                           codes, depths, window, cbow_mean, lr0, lr_step, sig_table, log_table, neu1,
                                           neu1e, state)
            losses[t] += step
            pairs[t] += count
            kept[t] += n
    return losses.sum(), kept.sum(), pairs.sum()


def _split_long(starts: np.ndarray) -> np.ndarray:
    """Sentence boundaries with every sentence cut into pieces of at most MAX_SENTENCE tokens."""
    lengths = np.diff(starts)
    if len(lengths) == 0 or lengths.max() <= MAX_SENTENCE:
        return starts
    pieces = [np.arange(a, b, MAX_SENTENCE, dtype=np.int64) for a, b in zip(starts[:-1], starts[1:]) if b > a]
    return np.concatenate(pieces + [starts[-1:]])


def _thread_states(seed: int, threads: int) -> np.ndarray:
    """One well-mixed (splitmix64) LCG start per thread, from (seed, thread)."""
    mask = (1 << 64) - 1
    out = np.empty(threads, np.uint64)
    for t in range(threads):
        z = (seed * 0x9E3779B97F4A7C15 + (t + 1) * 0xD1B54A32D192ED03) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out[t] = z ^ (z >> 31)
    return out


def _check(W_in, W_out, tokens, starts, keep_prob, runs, tree, loss, window) -> None:
    """Out-of-range ids would write outside the matrices from compiled code: refuse them here."""
    for name, m in (("W_in", W_in), ("W_out", W_out)):
        if m.dtype != np.float32 or m.ndim != 2 or not m.flags.c_contiguous or not m.flags.writeable:
            raise ValueError(f"{name} must be a writeable C-contiguous 2-D float32 array")
    if np.may_share_memory(W_in, W_out):
        raise ValueError("W_in and W_out must not share memory")
    vocab = W_in.shape[0]
    rows = vocab - 1 if loss == HIERARCHICAL else vocab
    if W_out.shape != (rows, W_in.shape[1]):
        raise ValueError(f"W_out must be {(rows, W_in.shape[1])} for this loss, got {W_out.shape}")
    if window < 1:
        raise ValueError("window must be at least 1")
    if len(keep_prob) != vocab:
        raise ValueError(f"keep_prob must have one entry per word ({vocab}), got {len(keep_prob)}")
    if len(tokens) and (tokens.min() < 0 or tokens.max() >= vocab):
        raise ValueError(f"token ids must lie in [0, {vocab})")
    if len(starts) == 0 or starts[0] < 0 or starts[-1] > len(tokens) or (np.diff(starts) < 0).any():
        raise ValueError("starts must be non-decreasing offsets into tokens")
    if loss == NEGATIVE and (runs.words.min() < 0 or runs.words.max() >= vocab):
        raise ValueError(f"noise table ids must lie in [0, {vocab})")
    points, codes, depths = tree
    if loss == HIERARCHICAL and (points.shape[0] != vocab or depths.shape != (vocab,) or codes.shape != points.shape
                                 or points.min() < 0 or points.max() >= vocab - 1 or depths.max() > points.shape[1]):
        raise ValueError(f"the Huffman tree must be hs_tree's of {vocab} words")


def train_sentences(W_in: np.ndarray, W_out: np.ndarray, tokens: np.ndarray, starts: np.ndarray,
                    keep_prob: np.ndarray, noise: NoiseRuns | None = None, hs_points: np.ndarray | None = None,
                    hs_codes: np.ndarray | None = None, hs_depths: np.ndarray | None = None, arch: int = SKIPGRAM,
                    loss: int = NEGATIVE, window: int = 5, negative: int = 5, cbow_mean: bool = True,
                    lr_start: float = 0.025, lr_end: float = 0.0001, threads: int = 2,
                    seed: int = 1) -> tuple[float, int, int]:
    """One pass over the sentences tokens[starts[i]:starts[i + 1]], in place on W_in (V, D) and
    W_out ((V, D) for NEGATIVE, (V-1, D) inner nodes for HIERARCHICAL); returns (summed loss,
    words trained after subsampling, prediction examples: context-centre pairs for skip-gram,
    centre words with context for CBOW). NEGATIVE needs `noise` (see noise_runs), HIERARCHICAL
    the tree of hs_tree; the other may be None."""
    if loss == NEGATIVE and noise is None:
        raise ValueError("negative sampling needs a noise distribution (see noise_runs)")
    if loss == HIERARCHICAL and (hs_points is None or hs_codes is None or hs_depths is None):
        raise ValueError("hierarchical softmax needs hs_points, hs_codes and hs_depths (see hs_tree)")
    runs = NoiseRuns.from_table(np.zeros(1, np.int32)) if noise is None else noise  # unread without NEGATIVE
    if hs_points is None:
        hs_points, hs_codes, hs_depths = np.zeros((1, 1)), np.zeros((1, 1)), np.zeros(1)  # unread placeholders
    tree = (np.ascontiguousarray(hs_points, dtype=np.int32), np.ascontiguousarray(hs_codes, dtype=np.float32),
            np.ascontiguousarray(hs_depths, dtype=np.int32))
    tokens = np.ascontiguousarray(tokens, dtype=np.int32)
    keep_prob = np.ascontiguousarray(keep_prob, dtype=np.float32)
    starts = np.asarray(starts, dtype=np.int64)
    _check(W_in, W_out, tokens, starts, keep_prob, runs, tree, loss, window)
    starts = _split_long(starts)
    sentences = len(starts) - 1
    threads = max(1, min(threads, numba.config.NUMBA_NUM_THREADS, sentences))
    numba.set_num_threads(threads)
    # Equal shares of tokens, not of sentences: the threads finish together and wait less.
    cuts = np.full(threads + 1, sentences, np.int64)
    cuts[0] = 0
    if threads > 1:
        ends = starts[1:] - starts[0]
        cuts[1:-1] = np.searchsorted(ends, ends[-1] * np.arange(1, threads) / threads, side="left") + 1
    longest = max(1, int(np.diff(starts).max())) if sentences > 0 else 1
    out = _train(W_in, W_out, tokens, starts, keep_prob, *runs, *tree, int(arch), int(loss), int(window),
                 int(negative), bool(cbow_mean), float(lr_start), float(lr_end), cuts,
                 _thread_states(int(seed), threads), longest, SIGMOID_TABLE, LOG_SIGMOID_TABLE)
    return float(out[0]), int(out[1]), int(out[2])
