"""Masked attention pooling: one learned query scores every position, the weighted sum is the summary.

Additive scoring: Bahdanau, Cho & Bengio, "Neural Machine Translation by Jointly Learning to Align
and Translate", ICLR 2015, used as pooling with a learned context vector by Yang et al.,
"Hierarchical Attention Networks for Document Classification", NAACL 2016.
Dot scoring over tanh(H): Zhou et al., "Attention-Based Bidirectional LSTM Networks for Relation
Classification", ACL 2016.

Letters: B batch, T positions, H input width, A attention width.
"""

from __future__ import annotations

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax of scores (B, T) over the True positions of mask (B, T).

    Padding gets exactly zero weight; a row without any True position gets all zeros, not NaN.
    The finite fill (rather than -inf) is what keeps an all-padding row finite.
    """
    filled = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(filled, dim=-1) * mask  # (B, T)


def attend(values: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pooled (B, H), weights (B, T)): the mask-normalised weighted sum of values (B, T, H)."""
    weights = masked_softmax(scores, mask)  # (B, T)
    return torch.bmm(weights.unsqueeze(1), values).squeeze(1), weights  # (B, H), (B, T)


class AdditiveAttentionPooling(nn.Module):
    """score_t = v . tanh(W h_t + b): a one-hidden-layer scorer, so v can pick any direction of h."""

    def __init__(self, input_size: int, attention_size: int | None = None):
        super().__init__()
        attention_size = attention_size or input_size
        self.project = nn.Linear(input_size, attention_size)
        self.context = nn.Linear(attention_size, 1, bias=False)  # Yang et al.'s context vector u_w

    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.context(torch.tanh(self.project(values))).squeeze(-1)  # (B, T)
        return attend(values, scores, mask)


class DotAttentionPooling(nn.Module):
    """score_t = w . f(h_t) with f = tanh (Zhou et al.'s M = tanh(H)) or the identity."""

    def __init__(self, input_size: int, squash: bool = True):
        super().__init__()
        self.squash = squash
        self.query = nn.Parameter(torch.empty(input_size))
        # uniform in +-1/sqrt(H), as nn.Linear starts: scores begin small, weights near uniform
        bound = input_size ** -0.5
        nn.init.uniform_(self.query, -bound, bound)

    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = torch.tanh(values) if self.squash else values  # (B, T, H)
        return attend(values, keys @ self.query, mask)
