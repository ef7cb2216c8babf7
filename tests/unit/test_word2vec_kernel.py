"""The word2vec Hogwild kernel: single steps against a NumPy reference of word2vec.c's update (with
the kernel's sigmoid tables and gensim's skipping of saturated decisions), for every architecture
and loss; saturated decisions; determinism; learning on a corpus of co-occurring groups;
subsampling; the noise distribution and its reading through runs."""

from __future__ import annotations

import numpy as np
import pytest

from dlcli.kernels import _word2vec
from dlcli.kernels import word2vec_sgd as k
from dlcli.nn.huffman import huffman_paths

COMBOS = [(k.SKIPGRAM, k.NEGATIVE), (k.SKIPGRAM, k.HIERARCHICAL), (k.CBOW, k.NEGATIVE), (k.CBOW, k.HIERARCHICAL)]
COUNTS = np.array([9, 6, 4, 2, 1])  # V = 5: an unbalanced Huffman tree
NOISE_WORD = 4  # the only word of the one-step tests' noise table, never in their sentences


def _matrices(loss: int, vocab: int = len(COUNTS), dim: int = 6, seed: int = 0, scale: float = 0.5):
    rng = np.random.default_rng(seed)
    W_in = rng.normal(0, scale, (vocab, dim)).astype(np.float32)
    W_out = rng.normal(0, scale, (vocab - 1 if loss == k.HIERARCHICAL else vocab, dim)).astype(np.float32)
    return W_in, W_out


def _train(W_in, W_out, tokens, starts, arch, loss, counts=COUNTS, keep=None, noise=None, **kw):
    keep = np.ones(len(counts), np.float32) if keep is None else keep
    noise = k.noise_runs(counts, 100_000) if noise is None else k.NoiseRuns.from_table(noise)
    kw = {"window": 1, "negative": 1, "lr_start": 0.1, "lr_end": 0.1, "threads": 1, "seed": 3} | kw
    return k.train_sentences(W_in, W_out, np.asarray(tokens, np.int32), np.asarray(starts, np.int64), keep, noise,
                             *k.hs_tree(counts), arch=arch, loss=loss, **kw)


def _table_sigmoid(score: float):
    """The kernel's table read, in float64: sigma at the midpoint of the score's bin, or None for a
    saturated score. A score within a thousandth of a bin of an edge could fall in another bin in
    the float32 kernel: the test data must avoid them, and this says so if it does not."""
    assert min(abs(score - k.MAX_EXP), abs(score + k.MAX_EXP)) > 1e-5, f"score {score} at saturation's edge"
    if not -k.MAX_EXP < score < k.MAX_EXP:
        return None
    position = (score + k.MAX_EXP) * k.TABLE_SIZE / (2 * k.MAX_EXP)
    assert abs(position - round(position)) > 1e-3, f"score {score} lies on a bin edge"
    x = (int(position) + 0.5) * 2 * k.MAX_EXP / k.TABLE_SIZE - k.MAX_EXP
    return 1 / (1 + np.exp(-x))


SATURATED_LOSS = np.log1p(np.exp(k.MAX_EXP - k.MAX_EXP / k.TABLE_SIZE))  # -log sigma(the first midpoint)


def _decisions(centre: int, loss: int) -> list:
    """(output row, label) of every decision predicting centre, in the kernel's order (the one-step
    tests' noise table holds NOISE_WORD only)."""
    if loss == k.HIERARCHICAL:
        points, codes, depths = k.hs_tree(COUNTS)
        return list(zip(points[centre, : depths[centre]], codes[centre, : depths[centre]]))
    return [(centre, 1.0), (NOISE_WORD, 0.0)]


def _reference(W_in, W_out, sentence, arch, loss, lr_start, lr_end, cbow_mean):
    """word2vec.c's updates over one sentence with window 1 and no subsampling (nothing random left),
    with the kernel's table sigmoid and gensim's rule that a saturated decision (|score| >= MAX_EXP)
    is skipped, costing 0 on its label's side and SATURATED_LOSS on the other: float64, one
    decision at a time, except that skip-gram's two contexts walk a Huffman path together (each
    node scored by both, then moved by both, as the kernel's _path_pair). Also returns how many
    decisions were skipped and how many made."""
    W_in, W_out = W_in.astype(np.float64), W_out.astype(np.float64)
    n, total, skipped, made = len(sentence), 0.0, 0, 0
    for pos, centre in enumerate(sentence):
        lr = lr_start + (lr_end - lr_start) * pos / n
        contexts = [sentence[c] for c in (pos - 1, pos + 1) if 0 <= c < n]
        if arch == k.CBOW:
            examples = [[contexts]]
        elif loss == k.HIERARCHICAL:  # the two contexts walk the centre's path together
            examples = [[[c] for c in contexts]]
        else:
            examples = [[[c]] for c in contexts]
        for walkers in examples:
            hs = [W_in[ctx].sum(0) / (len(ctx) if cbow_mean else 1) for ctx in walkers]
            grads = [np.zeros_like(h) for h in hs]
            for row, label in _decisions(centre, loss):
                steps = []
                for h, grad in zip(hs, grads):  # every walker scores the row as it stands ...
                    score = h @ W_out[row]
                    p = _table_sigmoid(score)
                    if p is None:
                        skipped += 1
                        total += 0.0 if (score > 0) == bool(label) else SATURATED_LOSS
                        continue
                    made += 1
                    total -= np.log(p if label else 1 - p)
                    g = lr * (label - p)
                    grad += g * W_out[row]
                    steps.append(g * h)
                W_out[row] += sum(steps)  # ... then all of them move it
            for ctx, grad in zip(walkers, grads):  # the whole hidden gradient to every context row, as word2vec.c
                for c in ctx:
                    W_in[c] += grad
    return W_in, W_out, total, skipped, made


# The last sentence has one word on both sides of its centre.
SENTENCES = [([1, 3], True), ([1, 3, 0], True), ([2, 0, 1], False), ([1, 3, 1], True)]


@pytest.mark.parametrize("arch,loss", COMBOS)
@pytest.mark.parametrize("sentence,cbow_mean", SENTENCES)
@pytest.mark.parametrize("scale", [0.5, 2.0])  # 2.0: large scores, some of them saturated
def test_one_sentence_matches_the_numpy_reference(arch, loss, sentence, cbow_mean, scale):
    W_in, W_out = _matrices(loss, scale=scale)
    want_in, want_out, want_loss, skipped, made = _reference(W_in, W_out, sentence, arch, loss, 0.2, 0.05, cbow_mean)
    assert made > 0 and (skipped == 0 or scale > 0.5)
    noise = np.full(16, NOISE_WORD, np.int32)
    got_loss, words, pairs = _train(W_in, W_out, sentence, [0, len(sentence)], arch, loss, noise=noise,
                                    lr_start=0.2, lr_end=0.05, cbow_mean=cbow_mean)
    np.testing.assert_allclose(W_in, want_in, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(W_out, want_out, rtol=1e-5, atol=1e-6)
    assert got_loss == pytest.approx(want_loss, rel=1e-5)
    assert words == len(sentence)
    assert pairs == (2 * (len(sentence) - 1) if arch == k.SKIPGRAM else len(sentence))


def test_the_large_reference_cases_mix_saturated_and_trained_decisions():
    """The scale-2.0 cases above put skips next to ordinary updates, in every architecture and loss."""
    for arch, loss in COMBOS:
        mixed = 0
        for sentence, cbow_mean in SENTENCES:
            W_in, W_out = _matrices(loss, scale=2.0)
            *_, skipped, made = _reference(W_in, W_out, sentence, arch, loss, 0.2, 0.05, cbow_mean)
            mixed += skipped > 0 and made > 0
        assert mixed > 0, (arch, loss)


@pytest.mark.parametrize("arch,loss", COMBOS)
@pytest.mark.parametrize("sign", [1, -1])
def test_saturated_decisions_are_skipped(arch, loss, sign):
    """Every score +-12: nothing moves, and each decision costs 0 on its label's side, else the
    saturated table value. sign 1 puts NEGATIVE's decisions all on their label's side, -1 all on
    the other (hierarchical softmax's shared root cannot suit both words: some fall either way)."""
    u = np.ones(6, np.float32)
    W_in = np.tile(u, (len(COUNTS), 1))  # every hidden vector is u, in both architectures
    sentence = [0, 1]
    if loss == k.HIERARCHICAL:
        W_out = np.zeros((len(COUNTS) - 1, 6), np.float32)
        for w in sentence[::-1]:  # word 0's codes win the shared nodes
            for row, label in _decisions(w, loss):
                W_out[row] = 2 * u * (sign if label else -sign)
    else:
        W_out = np.tile(2 * sign * u, (len(COUNTS), 1))
        W_out[NOISE_WORD] *= -1
    wrong = sum((W_out[row] @ u > 0) != bool(label) for w in sentence for row, label in _decisions(w, loss))
    assert wrong == {k.NEGATIVE: {1: 0, -1: 4}, k.HIERARCHICAL: {1: 1, -1: 2}}[loss][sign]  # of 4 or 3 decisions
    before_in, before_out = W_in.copy(), W_out.copy()
    got_loss, _, pairs = _train(W_in, W_out, sentence, [0, 2], arch, loss, noise=np.full(4, NOISE_WORD, np.int32),
                                lr_start=0.5, lr_end=0.5)
    assert (W_in == before_in).all() and (W_out == before_out).all()
    assert pairs == 2  # one example per centre word, in both architectures
    assert got_loss == pytest.approx(wrong * SATURATED_LOSS, rel=1e-6, abs=1e-9)


def test_the_sigmoid_tables_hold_sigma_at_the_bin_midpoints():
    x = (np.arange(k.TABLE_SIZE) + 0.5) * 2 * k.MAX_EXP / k.TABLE_SIZE - k.MAX_EXP
    assert k.SIGMOID_TABLE.dtype == k.LOG_SIGMOID_TABLE.dtype == np.float32
    np.testing.assert_allclose(k.SIGMOID_TABLE, 1 / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_allclose(k.LOG_SIGMOID_TABLE, -np.log1p(np.exp(-x)), rtol=1e-6)
    np.testing.assert_allclose(k.SIGMOID_TABLE + k.SIGMOID_TABLE[::-1], 1.0, rtol=1e-6)  # symmetric bins
    assert -k.LOG_SIGMOID_TABLE[0] == pytest.approx(SATURATED_LOSS, rel=1e-6)


def test_hs_tree_is_huffman_paths_in_the_kernel_form():
    points, codes, depths = k.hs_tree(COUNTS)
    paths, want_codes, want_depths = huffman_paths(COUNTS.tolist())
    assert (points.dtype, codes.dtype, depths.dtype) == (np.int32, np.float32, np.int32)
    assert (points == paths).all() and (codes == want_codes).all() and (depths == want_depths).all()
    assert depths[0] < depths[-1] and points.max() == len(COUNTS) - 2  # frequent words near the root


def _random_corpus(vocab: int, sentences: int, length: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab, sentences * length).astype(np.int32)
    return tokens, np.arange(0, sentences * length + 1, length), np.bincount(tokens, minlength=vocab)


@pytest.mark.parametrize("arch,loss", COMBOS)
def test_one_thread_is_deterministic_and_the_seed_matters(arch, loss):
    tokens, starts, counts = _random_corpus(30, 40, 12)
    keep = np.full(30, 0.7, np.float32)
    runs = {}
    for name, seed in [("a", 5), ("b", 5), ("c", 6)]:
        W_in, W_out = _matrices(loss, vocab=30)
        out = _train(W_in, W_out, tokens, starts, arch, loss, counts=counts, keep=keep, window=4, negative=3, seed=seed)
        runs[name] = (W_in, W_out, out)
    assert all((x == y).all() for x, y in zip(runs["a"][:2], runs["b"][:2])) and runs["a"][2] == runs["b"][2]
    assert not (runs["a"][0] == runs["c"][0]).all() and runs["a"][2] != runs["c"][2]


def _grouped_corpus(groups: int = 10, size: int = 5, sentences: int = 1500, length: int = 10, seed: int = 0):
    """Sentences drawn within one group of words each: only words of a group ever co-occur."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, sentences)[:, None]
    tokens = (group * size + rng.integers(0, size, (sentences, length))).ravel().astype(np.int32)
    return tokens, np.arange(0, sentences * length + 1, length), np.bincount(tokens, minlength=groups * size)


@pytest.mark.parametrize("arch,loss", COMBOS)
def test_words_of_a_group_end_up_closer_than_words_of_different_groups(arch, loss):
    tokens, starts, counts = _grouped_corpus()
    rng = np.random.default_rng(1)
    W_in = ((rng.random((50, 20)) - 0.5) / 20).astype(np.float32)
    W_out = np.zeros((49 if loss == k.HIERARCHICAL else 50, 20), np.float32)
    losses = []
    for epoch in range(4):
        lr = 0.05 * (1 - epoch / 4)
        total, _, pairs = _train(W_in, W_out, tokens, starts, arch, loss, counts=counts, window=3, negative=5,
                                 lr_start=lr, lr_end=lr - 0.0125, threads=2, seed=epoch)
        losses.append(total / pairs)
    unit = W_in / np.linalg.norm(W_in, axis=1, keepdims=True)
    cos = unit @ unit.T
    same = np.equal.outer(np.arange(50) // 5, np.arange(50) // 5) & ~np.eye(50, dtype=bool)
    other = ~np.equal.outer(np.arange(50) // 5, np.arange(50) // 5)
    assert cos[same].mean() > cos[other].mean() + 0.4, (cos[same].mean(), cos[other].mean())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("arch", [k.SKIPGRAM, k.CBOW])
def test_a_word_kept_with_probability_zero_never_trains(arch):
    tokens, starts, counts = _random_corpus(12, 30, 10)
    keep = np.ones(12, np.float32)
    keep[[0, 7]] = 0.0
    W_in, W_out = _matrices(k.NEGATIVE, vocab=12)
    before = W_in.copy()
    _, words, _ = _train(W_in, W_out, tokens, starts, arch, k.NEGATIVE, counts=counts, keep=keep, window=3,
                         threads=2)
    assert (W_in[[0, 7]] == before[[0, 7]]).all()
    assert not np.isclose(W_in[1:7], before[1:7]).all()
    assert words == len(tokens) - counts[0] - counts[7]


def test_keep_probability_follows_word2vec_c():
    counts = np.array([1000, 10, 1])
    threshold = 1e-2 * counts.sum()
    want = np.minimum((np.sqrt(counts / threshold) + 1) * threshold / counts, 1)
    np.testing.assert_allclose(k.keep_probability(counts, 1e-2), want, rtol=1e-6)
    assert want[0] < 0.5 and (k.keep_probability(counts, 0) == 1).all()


def test_noise_runs_follow_count_to_the_power_three_quarters():
    counts = np.array([1000, 0, 100, 10, 1, 5000])
    runs = k.noise_runs(counts, size=1_000_000)
    table = np.repeat(runs.words, np.diff(runs.ends, prepend=0))  # the slots the runs stand for
    want = counts**0.75 / (counts**0.75).sum()
    assert len(table) == 1_000_000 and runs.words.tolist() == [0, 2, 3, 4, 5]  # the zero count fills no slot
    np.testing.assert_allclose(np.bincount(table, minlength=len(counts)) / len(table), want, atol=2e-6)


def test_noise_runs_read_every_draw_as_their_table():
    table = np.random.default_rng(0).choice(7, 1000).astype(np.int32)  # unsorted: many short runs
    ends, words, guide, shift = k.NoiseRuns.from_table(table)
    tops = np.random.default_rng(1).integers(0, 2**32, 200_000, dtype=np.uint64)
    slots = (tops * np.uint64(len(table))) >> np.uint64(32)
    runs = np.searchsorted(ends, slots, side="right")
    assert (words[runs] == table[slots]).all()
    assert (guide[tops >> shift] <= runs).all()  # the kernel's forward scan from the guide finds the run


def test_a_noise_distribution_needs_a_positive_count():
    with pytest.raises(ValueError, match="positive count"):
        k.noise_runs(np.array([0, 0]))


def test_long_sentences_are_cut_into_pieces_for_the_threads():
    got = k._split_long(np.array([0, 25_000, 25_003, 25_003, 25_003 + k.MAX_SENTENCE]))
    assert got.tolist() == [0, 10_000, 20_000, 25_000, 25_003, 25_003 + k.MAX_SENTENCE]


@pytest.mark.parametrize("tokens,noise,loss,message", [
    ([1, 2], None, k.HIERARCHICAL, "W_out must be"),
    ([1, 5], None, k.NEGATIVE, "token ids"),
    ([1, 2], np.array([3, 9], np.int32), k.NEGATIVE, "noise table ids"),
])
def test_ids_outside_the_matrices_are_refused(tokens, noise, loss, message):
    W_in, W_out = _matrices(k.NEGATIVE)
    before = W_in.copy()
    with pytest.raises(ValueError, match=message):
        _train(W_in, W_out, tokens, [0, 2], k.SKIPGRAM, loss, noise=noise)
    assert (W_in == before).all()


def test_matrices_that_share_memory_are_refused():
    W_in, _ = _matrices(k.NEGATIVE)
    with pytest.raises(ValueError, match="share memory"):
        _train(W_in, W_in, [1, 2], [0, 2], k.SKIPGRAM, k.NEGATIVE)


@pytest.mark.parametrize("arch,loss", COMBOS)
def test_each_loss_trains_without_the_other_loss_tables(arch, loss):
    """As the model calls it: only the noise runs, or only the Huffman tree."""
    W_in, W_out = _matrices(loss)
    tables = {"noise": k.noise_runs(COUNTS, 1000)} if loss == k.NEGATIVE else dict(
        zip(("hs_points", "hs_codes", "hs_depths"), k.hs_tree(COUNTS)))
    before = W_in.copy()
    _, kept, pairs = k.train_sentences(W_in, W_out, np.array([0, 1, 2, 3, 1, 0], np.int32), np.array([0, 6]),
                                       np.ones(len(COUNTS), np.float32), arch=arch, loss=loss, threads=1, **tables)
    assert kept == 6 and pairs > 0 and not (W_in == before).all()


def test_the_compiled_loop_checks_the_buffer_sizes_it_is_given():
    """A second guard behind train_sentences' checks: a table shorter than the sizes passed with it
    is refused before any thread reads it."""
    W_in, W_out = _matrices(k.NEGATIVE)
    runs, (points, codes, depths) = k.noise_runs(COUNTS, 1000), k.hs_tree(COUNTS)
    args = [W_in, W_out, np.array([0, 1], np.int32), np.array([0, 2]), np.ones(4, np.float32), runs.ends, runs.words,
            runs.guide, points, codes, depths, np.array([0, 1]), k._thread_states(1, 1), k.SIGMOID_TABLE,
            k.LOG_SIGMOID_TABLE, 5, 5, W_in.shape[1], 2, 2, len(runs.ends), len(runs.guide), points.shape[1], 1,
            k.TABLE_SIZE, 2, int(runs.shift), k.SKIPGRAM, k.NEGATIVE, 1, 1, 1, 0.1, 0.1]
    before = W_in.copy()
    with pytest.raises(ValueError, match="keep_prob holds 16 bytes, expected 20"):
        _word2vec.train(*args)
    assert (W_in == before).all()
