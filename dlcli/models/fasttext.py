"""FastText classifier: the average of word embeddings fed to a linear layer.

Joulin et al., "Bag of Tricks for Efficient Text Classification", EACL 2017.
"""

from __future__ import annotations

import torch
from torch import nn

from dlcli.nn.pooling import masked_mean


class FastText(nn.Module):
    def __init__(
        self, vocab_size: int, num_labels: int, pad_id: int, *,
        embedding_dim: int = 100, dropout: float = 0.0,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        nn.init.uniform_(self.embedding.weight, -1.0 / embedding_dim, 1.0 / embedding_dim)
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(embedding_dim, num_labels)
        nn.init.zeros_(self.output.weight)  # as fastText starts its output matrix

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.dropout(masked_mean(self.embedding(ids), mask)))  # (B, C)
