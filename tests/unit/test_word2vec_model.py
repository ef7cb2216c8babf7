"""The word2vec model's vectors: the input rows, or input plus output rows (`output: sum`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlcli.models.word2vec import Word2Vec


def test_sum_adds_the_output_rows_and_input_keeps_them_out():
    counts = torch.tensor([0, 0, 50, 30, 20, 10])
    batch = {"ids": np.array([2, 3, 4, 5, 2, 3, 4, 5], np.int32), "starts": np.array([0, 8])}
    models = {}
    for output in ("input", "sum"):
        torch.manual_seed(0)
        model = Word2Vec(6, embedding_dim=4, window=2, sample=0, output=output)
        model.fit_counts(counts)
        torch.manual_seed(1)
        model.hogwild_step(batch, 0.1, threads=1)
        models[output] = model
    same, summed = models["input"], models["sum"]
    assert torch.equal(same.embedding.weight, summed.embedding.weight)  # the knob changes no training
    assert summed.output.abs().sum() > 0
    assert torch.equal(same.vectors(), same.embedding.weight)
    assert torch.equal(summed.vectors(), summed.embedding.weight + summed.output)
    assert torch.equal(summed(torch.tensor([3])), summed.vectors()[[3]])


def test_sum_needs_negative_sampling():
    with pytest.raises(ValueError, match="only negative sampling"):
        Word2Vec(6, loss="hierarchical", output="sum")
    with pytest.raises(ValueError, match="output must be one of"):
        Word2Vec(6, output="both")
