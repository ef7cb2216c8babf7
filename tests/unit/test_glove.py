"""GloVe: co-occurrence counting against a plain-Python count (in memory and spilled to shards),
one AdaGrad step against a NumPy transcription of glove.c's update, and learning on word groups."""

from __future__ import annotations

import tracemalloc
from collections import defaultdict

import numpy as np
import pytest

from dlcli.kernels.glove import EntryOrder, glove_epoch, glove_vectors, init_glove
from dlcli.text.cooccurrence import _merge_shards, count_cooccurrences


def _reference(sentences, window: int, symmetric: bool) -> dict[tuple[int, int], float]:
    counts: dict[tuple[int, int], float] = defaultdict(float)
    for sentence in sentences:
        ids = [int(w) for w in sentence if w >= 0]
        for j, right in enumerate(ids):
            for k in range(max(0, j - window), j):
                counts[ids[k], right] += 1.0 / (j - k)
                if symmetric:
                    counts[right, ids[k]] += 1.0 / (j - k)
    return counts


def _as_dict(cooc) -> dict[tuple[int, int], float]:
    return {(int(r), int(c)): float(v) for r, c, v in zip(cooc.rows, cooc.cols, cooc.values)}


def _assert_equal(cooc, expected: dict) -> None:
    keys = sorted(expected)
    assert list(zip(cooc.rows.tolist(), cooc.cols.tolist())) == keys  # unique and (row, col)-sorted
    np.testing.assert_allclose(cooc.values, [expected[k] for k in keys], rtol=1e-6)
    assert cooc.rows.dtype == cooc.cols.dtype == np.int32 and cooc.values.dtype == np.float32


def _random_corpus(seed: int, sentences: int, vocab: int, max_len: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    corpus = [rng.integers(-1, vocab, size=rng.integers(0, max_len + 1)).astype(np.int32) for _ in range(sentences)]
    return corpus + [np.array([], np.int32), np.array([-1, -1], np.int32)]


def test_hand_example_weights_sentences_and_unknown_words(tmp_path):
    # The -1 takes no window position (cooccur.c skips it), so 2 and 0 are at distance 1, not 2.
    sentences = [np.array([0, 1, 2], np.int32), np.array([2, -1, 0], np.int32)]
    left = count_cooccurrences(sentences, 3, 2, 1.0, tmp_path, symmetric=False)
    assert _as_dict(left) == {(0, 1): 1.0, (0, 2): 0.5, (1, 2): 1.0, (2, 0): 1.0}
    both = count_cooccurrences(sentences, 3, 2, 1.0, tmp_path, symmetric=True)
    assert _as_dict(both) == {(0, 1): 1.0, (1, 0): 1.0, (0, 2): 1.5, (2, 0): 1.5, (1, 2): 1.0, (2, 1): 1.0}


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("window", [1, 4, 40])  # 40: longer than any sentence
def test_counts_match_python_reference(tmp_path, symmetric, window):
    corpus = _random_corpus(0, 120, 25, 30)
    cooc = count_cooccurrences(corpus, 25, window, 4.0, tmp_path, symmetric)
    assert cooc.shards == 0
    _assert_equal(cooc, _reference(corpus, window, symmetric))


def test_tiny_budget_spills_shards_and_stays_near_it(tmp_path):
    # 2,000 words: a shard holds more distinct pairs than its merge window, so the windows slide.
    corpus = _random_corpus(1, 2000, 2000, 20)
    budget_mb = 0.25
    count_cooccurrences(corpus[:50], 2000, 5, 0.001, tmp_path)  # compile first: numba allocates too
    tracemalloc.start()
    try:
        cooc = count_cooccurrences(corpus, 2000, 5, budget_mb, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    result = cooc.rows.nbytes + cooc.cols.nbytes + cooc.values.nbytes
    raw_pairs = sum(len(s) for s in corpus) * 5 * 2
    assert raw_pairs * 12 > 8 * budget_mb * 2**20  # all the pairs at once would need 8x the budget
    assert cooc.shards >= 3
    assert peak < 1.15 * budget_mb * 2**20 + result, (peak, result)
    assert list(tmp_path.iterdir()) == []  # shards deleted
    _assert_equal(cooc, _reference(corpus, 5, True))


@pytest.mark.parametrize("window", [1, 2, 3, 100])
def test_merge_sums_keys_that_span_window_ends(tmp_path, window):
    # Key 7 ends one window and starts the next in shard 0, and is in shard 1 too: one entry.
    shards = [[(2, 1.0), (7, 0.5), (7, 0.25), (9, 1.0)], [(7, 2.0), (8, 1.0)], []]
    files = []
    for i, entries in enumerate(shards):
        keys, values = tmp_path / f"{i}.keys", tmp_path / f"{i}.values"
        np.array([k for k, _ in entries], np.int64).tofile(keys)
        np.array([v for _, v in entries], np.float32).tofile(values)
        files.append((keys, values, len(entries)))
    merged = _merge_shards(files, 5, window)
    assert _as_dict(merged) == {(0, 2): 1.0, (1, 2): 2.75, (1, 3): 1.0, (1, 4): 1.0}


def test_rejects_ids_outside_the_vocabulary(tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        count_cooccurrences([np.array([0, 5], np.int32)], 5, 2, 1.0, tmp_path)


def _numpy_step(params, i, j, x, x_max, alpha, lr):
    """glove.c's update of one entry, in float64."""
    W, Wt, b, bt, gW, gWt, gb, gbt = (p.astype(np.float64) for p in params)
    diff = W[i] @ Wt[j] + b[i] + bt[j] - np.log(x)
    fdiff = min(1.0, (x / x_max) ** alpha) * diff
    g_w, g_wt = np.clip(fdiff * Wt[j], -100, 100) * lr, np.clip(fdiff * W[i], -100, 100) * lr
    W[i] -= g_w / np.sqrt(gW[i])
    Wt[j] -= g_wt / np.sqrt(gWt[j])
    gW[i] += g_w**2
    gWt[j] += g_wt**2
    b[i] -= fdiff / np.sqrt(gb[i])
    bt[j] -= fdiff / np.sqrt(gbt[j])
    gb[i] += fdiff**2
    gbt[j] += fdiff**2
    return (W, Wt, b, bt, gW, gWt, gb, gbt), 0.5 * fdiff * diff


@pytest.mark.parametrize("x, scale", [(3.0, 1.0), (40.0, 1.0), (3.0, 2000.0)])  # weighted, f = 1, clipped
def test_one_update_matches_numpy_adagrad(x, scale):
    params = list(init_glove(6, 8, seed=0))
    params[0] *= scale
    params[1] *= scale
    params[4][2] = 1.7  # gradient history that is not the initial 1.0
    params[6][2] = 2.5
    expected, cost = _numpy_step(params, 2, 4, x, 10.0, 0.75, 0.05)
    got = glove_epoch(*params, np.array([2], np.int32), np.array([4], np.int32), np.array([x], np.float32),
                      EntryOrder.shuffled(1, seed=0), 10.0, 0.75, 0.05, threads=1)
    assert got == pytest.approx(cost, rel=1e-4)
    for name, mine, theirs in zip(("W", "Wt", "b", "bt", "gW", "gWt", "gb", "gbt"), params, expected):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-6, err_msg=name)
    if scale > 1:  # the case exercises the clip: some gradient components hit +-100
        assert np.isclose(params[4][2] - 1.7, (0.05 * 100) ** 2).any()


def _grouped_corpus(seed: int) -> list[np.ndarray]:
    """4 groups of 10 words; a sentence draws 80% of its words from one group, the rest from all 40
    (GloVe fits only the pairs that occur: it needs rare pairs across groups to tell them apart)."""
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(400):
        words = 10 * rng.integers(4) + rng.integers(10, size=12)
        noise = rng.random(12) < 0.2
        words[noise] = rng.integers(40, size=noise.sum())
        sentences.append(words.astype(np.int32))
    return sentences


def _train(cooc, epochs: int, threads: int) -> tuple[list[float], np.ndarray]:
    params = init_glove(40, 16, seed=0)
    costs = []
    for epoch in range(epochs):
        order = EntryOrder.shuffled(len(cooc), seed=epoch)
        costs.append(glove_epoch(*params, cooc.rows, cooc.cols, cooc.values, order, 10.0, 0.75, 0.05, threads))
    return costs, glove_vectors(params[0], params[1], "sum")


def test_learns_word_groups(tmp_path):
    cooc = count_cooccurrences(_grouped_corpus(0), 40, 5, 4.0, tmp_path)
    same_group = cooc.rows // 10 == cooc.cols // 10
    assert cooc.values[same_group].mean() > 5 * cooc.values[~same_group].mean()
    costs, vectors = _train(cooc, 25, threads=2)
    assert costs[-1] < 0.2 * costs[0], costs
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit.T
    same = np.equal.outer(np.arange(40) // 10, np.arange(40) // 10)
    np.fill_diagonal(same, False)
    across = ~np.equal.outer(np.arange(40) // 10, np.arange(40) // 10)
    assert cosine[same].mean() > cosine[across].mean() + 0.5, (cosine[same].mean(), cosine[across].mean())


def test_one_thread_is_deterministic(tmp_path):
    cooc = count_cooccurrences(_grouped_corpus(1), 40, 3, 4.0, tmp_path)
    first, second = _train(cooc, 3, threads=1), _train(cooc, 3, threads=1)
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])


def test_init_and_vector_choice():
    W, Wt, b, bt, gW, gWt, gb, gbt = init_glove(50, 20, seed=3)
    for p in (W, Wt, b, bt):
        assert p.dtype == np.float32 and np.abs(p).max() < 0.5 / 20 and p.std() > 0.1 / 20
    assert all((g == 1.0).all() and g.shape == p.shape for g, p in zip((gW, gWt, gb, gbt), (W, Wt, b, bt)))
    np.testing.assert_array_equal(glove_vectors(W, Wt, "sum"), W + Wt)
    np.testing.assert_array_equal(glove_vectors(W, Wt, "input"), W)
    with pytest.raises(ValueError, match="model"):
        glove_vectors(W, Wt, "concat")


@pytest.mark.parametrize("n", [1, 2, 3, 17, 1000, 4097])
def test_entry_order_is_a_seeded_permutation_that_slices(n):
    order = EntryOrder.shuffled(n, seed=7)
    entries = order.entries()
    assert sorted(entries.tolist()) == list(range(n))
    np.testing.assert_array_equal(EntryOrder.shuffled(n, seed=7).entries(), entries)
    cut = n // 3
    np.testing.assert_array_equal(np.concatenate([order[:cut].entries(), order[cut:].entries()]), entries)
    assert len(order[cut:]) == n - cut and len(order[cut:][1:]) == max(0, n - cut - 1)
    if n >= 1000:  # shuffled: far from the identity, and another seed gives another order
        assert (entries == np.arange(n)).mean() < 0.01
        assert abs(np.corrcoef(np.arange(n), entries)[0, 1]) < 0.1
        assert (EntryOrder.shuffled(n, seed=8).entries() != entries).mean() > 0.9


def test_epoch_refuses_an_order_over_other_entries():
    params = init_glove(4, 3, seed=0)
    with pytest.raises(ValueError, match="2 entries"):
        glove_epoch(*params, np.zeros(3, np.int32), np.ones(3, np.int32), np.ones(3, np.float32),
                    EntryOrder.shuffled(2, seed=0), 10.0, 0.75, 0.05, threads=1)
