"""Masked attention pooling: one learned query scores every position, the weighted sum is the summary.

Additive scoring: Bahdanau, Cho & Bengio, "Neural Machine Translation by Jointly Learning to Align
and Translate", ICLR 2015, used as pooling with a learned context vector by Yang et al.,
"Hierarchical Attention Networks for Document Classification", NAACL 2016.
Dot scoring over tanh(H): Zhou et al., "Attention-Based Bidirectional LSTM Networks for Relation
Classification", ACL 2016.

Query attention (a decoder state scoring an encoder's outputs): Luong, Pham & Manning, "Effective
Approaches to Attention-based Neural Machine Translation", EMNLP 2015 (dot, general, and their
"concat", which is Bahdanau et al.'s additive score).

Letters: B batch, T positions, H input width, A attention width; S memory positions, Q query width.
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


SCORES = ("additive", "dot", "general")


class QueryAttention(nn.Module):
    """Each query q (a decoder state) weighs memory m (the encoder's outputs), Luong et al.'s scores:
    additive v . tanh(W q + U m), dot q . m (needs Q = H), general q . (W m). What depends on the
    memory alone (U m, W m) is computed once per sentence by `keys`."""

    def __init__(self, query_size: int, memory_size: int, score: str = "additive"):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(SCORES)}, not {score!r}")
        if score == "dot" and query_size != memory_size:
            raise ValueError(f"dot attention needs the query width ({query_size}) to equal the memory's "
                             f"({memory_size})")
        self.score = score
        if score == "additive":
            self.memory_proj = nn.Linear(memory_size, query_size, bias=False)
            self.query_proj = nn.Linear(query_size, query_size)
            self.context = nn.Linear(query_size, 1, bias=False)
        elif score == "general":
            self.memory_proj = nn.Linear(memory_size, query_size, bias=False)

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """(B, S, Q) what the scores take from memory (B, S, H)."""
        return memory if self.score == "dot" else self.memory_proj(memory)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(context (B, T, H), weights (B, T, S)) for queries (B, T, Q) over the True positions of mask (B, S)."""
        if self.score == "additive":
            hidden = torch.tanh(self.query_proj(query).unsqueeze(2) + keys.unsqueeze(1))  # (B, T, S, Q)
            scores = self.context(hidden).squeeze(-1)  # (B, T, S)
        else:
            scores = query @ keys.transpose(1, 2)  # (B, T, S)
        weights = masked_softmax(scores, mask.unsqueeze(1))
        return weights @ memory, weights
