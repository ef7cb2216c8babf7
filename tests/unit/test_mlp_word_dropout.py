"""The MLP's word dropout (the deep averaging network's): whole tokens leave the pooled bag while
training, never all of a text's, and never at inference."""

from __future__ import annotations

import pytest
import torch

from dlcli.models.mlp import MLPClassifier
from dlcli.text.batching import pad

ROWS = [[3, 4, 5, 6, 7, 8, 9, 10], [11], [12, 13]]


def pooled_inputs(model: MLPClassifier, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """What the pooling reads as the bag of each row: its mask argument."""
    seen = []
    model.pool.register_forward_pre_hook(lambda _m, args: seen.append(args[1].clone()))
    model(ids, mask)
    return seen[-1]


def test_training_drops_tokens_but_never_a_whole_text():
    torch.manual_seed(0)
    model = MLPClassifier(20, 2, 0, embedding_dim=4, hidden_sizes=[4], batch_norm=False, word_dropout=0.5).train()
    ids, mask = pad(ROWS, 0)
    kept = torch.stack([pooled_inputs(model, ids, mask) for _ in range(50)])  # (50, B, T)
    assert not (kept & ~mask).any()  # padding is never read
    assert kept.sum(-1).min() >= 1  # every text keeps a word, the one-word text its only one
    assert 0.35 < kept[:, 0].float().mean() / mask[0].float().mean() < 0.65  # about half of a long text's words
    assert len({tuple(k[0].tolist()) for k in kept}) > 10  # a fresh draw every step


def test_inference_reads_every_word():
    torch.manual_seed(0)
    model = MLPClassifier(20, 2, 0, embedding_dim=4, hidden_sizes=[4], batch_norm=False, word_dropout=0.5).eval()
    ids, mask = pad(ROWS, 0)
    assert torch.equal(pooled_inputs(model, ids, mask), mask)
    assert torch.equal(model(ids, mask), model(ids, mask))


def test_word_dropout_outside_its_range_is_refused():
    with pytest.raises(ValueError, match="word_dropout"):
        MLPClassifier(20, 2, 0, word_dropout=1.0)
