"""Attention-based BiLSTM: one learned query weighs the BiLSTM states, their weighted sum classifies.

Zhou et al., "Attention-Based Bidirectional LSTM Networks for Relation Classification", ACL 2016:
H = forward + backward states, M = tanh(H), alpha = softmax(w^T M), r = H alpha, h* = tanh(r).

Letters: B batch, T tokens, E embedding width, H hidden size per direction, D = H (merge "sum") or
2H (merge "concat"), C labels.
"""

from __future__ import annotations

import torch
from torch import nn

from dlcli.models.classifier import ClassifierDefaults
from dlcli.models.rnn import encode_packed
from dlcli.nn.attention import DotAttentionPooling

MERGES = ("sum", "concat")


class AttentionBiLSTM(ClassifierDefaults, nn.Module):
    word_attention = True

    def __init__(
        self, vocab_size: int, num_labels: int, pad_id: int, *,
        embedding_dim: int = 128, hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.5,
        merge: str = "sum",
    ):
        super().__init__()
        if merge not in MERGES:
            raise ValueError(f"merge must be one of {', '.join(MERGES)}, not {merge!r}")
        self.merge = merge
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers=num_layers, batch_first=True,
                            bidirectional=True, dropout=dropout if num_layers > 1 else 0.0)
        width = hidden_size if merge == "sum" else 2 * hidden_size
        self.pool = DotAttentionPooling(width, squash=True)  # the tanh is Zhou et al.'s M = tanh(H)
        # the paper drops out the embeddings, the LSTM outputs and h*; one rate serves all three
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(width, num_labels)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        r, _ = self._attend(ids, mask)  # (B, D)
        return self.output(self.dropout(torch.tanh(r)))  # (B, C)

    def attention(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T) attention weights: zero at padding, each row sums to 1 (an empty text: all zeros)."""
        return self._attend(ids, mask)[1]

    def _attend(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.dropout(self.embedding(ids))  # (B, T, E)
        states, _ = encode_packed(self.lstm, x, mask)  # (B, T, 2H)
        if self.merge == "sum":
            forward, backward = states.chunk(2, dim=-1)  # 2 x (B, T, H)
            states = forward + backward  # (B, T, H)
        return self.pool(self.dropout(states), mask)  # (B, D), (B, T)
