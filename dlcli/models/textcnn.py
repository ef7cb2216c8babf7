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
        edge_padding: bool = True,
    ):
        super().__init__()
        self.kernel_sizes = list(kernel_sizes)
        self.max_norm = max_norm
        # Kim pads k-1 zeros on both sides ("wide" convolution): every word is seen at every
        # offset of every window, which matters for short texts (MPQA phrases, TREC questions).
        self.edge_padding = edge_padding
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        nn.init.uniform_(self.embedding.weight, -init_scale, init_scale)  # Kim's CNN-rand init
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, num_filters, k) for k in self.kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(num_filters * len(self.kernel_sizes), num_labels)

    @property
    def min_length(self) -> int:
        return 1 if self.edge_padding else max(self.kernel_sizes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embedding(ids)  # (B, T, E)
        # All convolutions as ONE matrix product: column block (k, j) holds the weights that
        # kernel k applies at offset j; each output is then a sum of shifted slices. One large
        # GEMM runs much faster on CPU than several thin convolutions.
        weight = torch.cat([c.weight.permute(1, 2, 0).reshape(x.size(2), -1) for c in self.convs], 1)
        y = x @ weight  # (B, T, sum(k) * F)
        # Zero rows stand for padding (zero embeddings), added after the product: no FLOPs spent.
        lead = max(self.kernel_sizes) - 1 if self.edge_padding else 0
        tail = lead if self.edge_padding else max(0, self.min_length - x.size(1))
        y = nn.functional.pad(y, (0, 0, lead, tail))  # (B, T', sum(k) * F)
        lengths = mask.sum(1, keepdim=True)  # (B, 1)
        pooled, offset = [], 0
        for k, conv in zip(self.kernel_sizes, self.convs):
            F, steps = conv.out_channels, y.size(1) - k + 1
            h = y[:, 0:steps, offset:offset + F]
            for j in range(1, k):
                h = h + y[:, j:j + steps, offset + j * F:offset + (j + 1) * F]  # (B, T'-k+1, F)
            offset += k * F
            h = h.masked_fill(~self._windows(steps, k, lead, lengths).unsqueeze(2), float("-inf"))
            # max-pool, then bias and ReLU: both commute with the max, and cost less after it
            pooled.append(torch.relu(h.max(1).values + conv.bias))  # (B, F)
        return self.output(self.dropout(torch.cat(pooled, 1)))  # (B, C)

    def _windows(self, steps: int, k: int, lead: int, lengths: torch.Tensor) -> torch.Tensor:
        """(B, steps) True where a width-k window holds some of the text and no batch padding.

        Masking makes a prediction independent of the batch's width. Without edge padding a text
        shorter than k keeps its first window.
        """
        start = torch.arange(steps, device=lengths.device) - lead  # window start in text positions
        if self.edge_padding:
            return (start >= 1 - k) & (start < lengths)
        return start < (lengths - k + 1).clamp(min=1)

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """Kim's l2 constraint: rescale each class's weight vector to norm <= max_norm."""
        if self.max_norm:
            w = self.output.weight
            w.mul_((self.max_norm / w.norm(dim=1, keepdim=True).clamp(min=1e-12)).clamp(max=1.0))
