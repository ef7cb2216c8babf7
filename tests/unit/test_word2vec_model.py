"""The word2vec model: its vectors (the input rows, or input plus output rows with `output: sum`),
its start (word2vec.c's, drawn from the run's seed), its tables' save and load, and its knobs."""

from __future__ import annotations

import numpy as np
import pytest

from dlcli.models.word2vec import StaticVectors, Word2Vec

COUNTS = np.array([0, 0, 50, 30, 20, 10])
BATCH = {"ids": np.array([2, 3, 4, 5, 2, 3, 4, 5], np.int32), "starts": np.array([0, 8])}


def _trained(output: str = "input", seed: int = 0) -> Word2Vec:
    np.random.seed(seed)
    model = Word2Vec(6, embedding_dim=4, window=2, sample=0, output=output)
    model.fit_counts(COUNTS)
    model.hogwild_step(BATCH, 0.1, threads=1, seed=1)
    return model


def test_sum_adds_the_output_rows_and_input_keeps_them_out():
    same, summed = _trained("input"), _trained("sum")
    np.testing.assert_array_equal(same.embedding, summed.embedding)  # the knob changes no training
    assert np.abs(summed.output).sum() > 0
    np.testing.assert_array_equal(same.vectors(), same.embedding)
    np.testing.assert_array_equal(summed.vectors(), summed.embedding + summed.output)


def test_the_start_is_word2vec_c_s_and_follows_the_seed():
    np.random.seed(3)
    model = Word2Vec(500, embedding_dim=10)
    assert not model.embedding.any()  # nothing drawn until training begins
    model.fit_counts(np.arange(500))
    assert np.abs(model.embedding).max() < 0.05 and np.abs(model.embedding).max() > 0.045  # (-0.5, 0.5) / dim
    assert not model.output.any() and model.word_counts.tolist() == list(range(500))
    np.random.seed(3)
    again = Word2Vec(500, embedding_dim=10)
    again.fit_counts(np.arange(500))
    np.testing.assert_array_equal(model.embedding, again.embedding)
    np.random.seed(4)
    again.fit_counts(np.arange(500))
    assert not np.array_equal(model.embedding, again.embedding)


def test_state_dict_round_trip_and_mismatches_are_refused():
    model = _trained()
    state = {name: array.copy() for name, array in model.state_dict().items()}
    assert set(state) == {"embedding.weight", "output", "word_counts"}  # the names of the torch module it was
    fresh = Word2Vec(6, embedding_dim=4, window=2, sample=0)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.vectors(), model.vectors())
    assert [p.shape for p in fresh.parameters()] == [(6, 4), (6, 4)]  # the counts are no parameter
    with pytest.raises(ValueError, match="missing"):
        fresh.load_state_dict({"embedding.weight": state["embedding.weight"]})
    with pytest.raises(ValueError, match="shape"):
        Word2Vec(7, embedding_dim=4).load_state_dict(state)
    read_only = {name: array.copy() for name, array in state.items()}
    for array in read_only.values():
        array.flags.writeable = False
    fresh.load_state_dict(read_only)
    fresh.hogwild_step(BATCH, 0.1, threads=1, seed=2)  # adopted arrays the kernel can write


def test_static_vectors_hold_one_table():
    vectors = StaticVectors(3, embedding_dim=2)
    vectors.load_state_dict({"embedding.weight": np.arange(6, dtype=np.float32).reshape(3, 2)})
    assert vectors.vectors().tolist() == [[0, 1], [2, 3], [4, 5]]


def test_sum_needs_negative_sampling():
    with pytest.raises(ValueError, match="only negative sampling"):
        Word2Vec(6, loss="hierarchical", output="sum")
    with pytest.raises(ValueError, match="output must be one of"):
        Word2Vec(6, output="both")
