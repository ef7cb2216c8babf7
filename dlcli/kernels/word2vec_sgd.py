"""word2vec's training loop (Mikolov et al. 2013, "Distributed Representations of Words and
Phrases"): skip-gram or CBOW, with negative sampling or hierarchical softmax, lock-free (Hogwild,
Recht et al. 2011) SGD on POSIX threads, as word2vec.c trains. The loop is C (_word2vec.c, built
on install): numba would add about 130 MB to every training run, more than half of gensim's peak;
this module builds its tables and checks every argument before handing them over.

Per sentence, each thread first drops word w with probability 1 - keep_prob[w] (subsampling of
frequent words), then walks the kept words; around each centre word it draws b in [0, window) and
uses the window window - b, so near words count more. Skip-gram follows word2vec.c's direction:
each context word's input row predicts the centre word (its output row, or its Huffman path).
Under hierarchical softmax all of a centre's contexts predict the same path, so they walk it two
at a time (path_pair in _word2vec.c): at each inner node both score the node's row as it stands, then both
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
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from dlcli.kernels import _word2vec
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
    threads = max(1, min(threads, os.cpu_count() or 1, sentences))
    # Equal shares of tokens, not of sentences: the threads finish together and wait less.
    cuts = np.full(threads + 1, sentences, np.int64)
    cuts[0] = 0
    if threads > 1:
        ends = starts[1:] - starts[0]
        cuts[1:-1] = np.searchsorted(ends, ends[-1] * np.arange(1, threads) / threads, side="left") + 1
    longest = max(1, int(np.diff(starts).max())) if sentences > 0 else 1
    points, codes, depths = tree
    return _word2vec.train(W_in, W_out, tokens, starts, keep_prob, runs.ends, runs.words, runs.guide, points, codes,
                           depths, cuts, _thread_states(int(seed), threads), SIGMOID_TABLE, LOG_SIGMOID_TABLE,
                           W_in.shape[0], W_out.shape[0], W_in.shape[1], len(tokens), len(starts), len(runs.ends),
                           len(runs.guide), points.shape[1], threads, TABLE_SIZE, longest, int(runs.shift), int(arch),
                           int(loss), int(window), int(negative), int(bool(cbow_mean)), float(lr_start),
                           float(lr_end))
