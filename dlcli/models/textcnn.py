"""TextCNN: convolutions of several widths over word embeddings with max-over-time pooling.

Kim, "Convolutional Neural Networks for Sentence Classification", EMNLP 2014.
"""

from __future__ import annotations

import torch
from torch import nn


class TextCNN(nn.Module):
    def __init__(
        self, vocab_size: int, num_labels: int, pad_id: int, *,
        embedding_dim: int = 300, kernel_sizes: list[int] = (3, 4, 5), num_filters: int = 100,
        dropout: float = 0.5, max_norm: float | None = 3.0, init_scale: float = 0.25,
    ):
        super().__init__()
        self.kernel_sizes = list(kernel_sizes)
        self.max_norm = max_norm
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        nn.init.uniform_(self.embedding.weight, -init_scale, init_scale)  # Kim's CNN-rand init
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, num_filters, k) for k in self.kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(num_filters * len(self.kernel_sizes), num_labels)

    @property
    def min_length(self) -> int:
        return max(self.kernel_sizes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embedding(ids).transpose(1, 2)  # (B, E, T)
        lengths = mask.sum(1, keepdim=True)  # (B, 1)
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs):
            h = torch.relu(conv(x))  # (B, F, T-k+1)
            # Windows that start past the text's end see only padding; a text shorter than k
            # keeps its first window, so a prediction never depends on the batch's width.
            valid = torch.arange(h.size(2), device=h.device) < (lengths - k + 1).clamp(min=1)
            h = h.masked_fill(~valid.unsqueeze(1), 0.0)  # ReLU output >= 0, so 0 never wins wrongly
            pooled.append(h.max(2).values)  # (B, F)
        return self.output(self.dropout(torch.cat(pooled, 1)))  # (B, C)

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """Kim's l2 constraint: rescale each class's weight vector to norm <= max_norm."""
        if self.max_norm:
            w = self.output.weight
            w.mul_((self.max_norm / w.norm(dim=1, keepdim=True).clamp(min=1e-12)).clamp(max=1.0))
