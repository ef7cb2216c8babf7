"""Bag of embeddings -> fully connected layers with BatchNorm and dropout.

BatchNorm: Ioffe & Szegedy, "Batch Normalization", ICML 2015. Its running mean and variance,
kept as moving averages during training, replace the batch statistics at inference.
`word_dropout` drops whole tokens from the pooled bag while training (Iyyer et al. 2015, the
deep averaging network), so no single word decides a text.
`embedding_init` a > 0 draws the embedding from U(-a, a) (fastText's is 1/embedding_dim) instead of
nn.Embedding's N(0, 1): small rows that the few updates each gets can move, as hashed n-gram rows need.
`pooling` "mean+max" concatenates the masked mean and max of the bag (2 x embedding_dim features).
"""

from __future__ import annotations

import torch
from torch import nn

from dlcli.models.classifier import ClassifierDefaults
from dlcli.nn.pooling import GLOBAL_POOLINGS, GlobalMeanMaxPooling1d


class MLPClassifier(ClassifierDefaults, nn.Module):
    def __init__(
        self, vocab_size: int, num_labels: int, pad_id: int, *,
        embedding_dim: int = 128, hidden_sizes: list[int] = (256,), dropout: float = 0.5,
        pooling: str = "mean", batch_norm: bool = True, bn_momentum: float = 0.1, word_dropout: float = 0.0,
        embedding_init: float | None = None,
    ):
        super().__init__()
        if not 0.0 <= word_dropout < 1.0:
            raise ValueError("word_dropout must be in [0, 1)")
        self.word_dropout = word_dropout
        poolings = {**GLOBAL_POOLINGS, "mean+max": GlobalMeanMaxPooling1d}  # 2x the width: MLP only
        if pooling not in poolings:
            raise ValueError(f"pooling must be one of {', '.join(poolings)}")
        self.pool = poolings[pooling]()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        if embedding_init is not None:
            if embedding_init <= 0:
                raise ValueError("embedding_init must be > 0 (or unset for N(0, 1))")
            with torch.no_grad():
                self.embedding.weight.uniform_(-embedding_init, embedding_init)
                self.embedding.weight[pad_id].zero_()
        layers: list[nn.Module] = []
        width = embedding_dim * (2 if pooling == "mean+max" else 1)
        for size in hidden_sizes:
            layers.append(nn.Linear(width, size, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size, momentum=bn_momentum))
            layers += [nn.ReLU(), nn.Dropout(dropout)]
            width = size
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Linear(width, num_labels)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.training and self.word_dropout > 0:
            kept = mask & (torch.rand(mask.shape, device=mask.device) >= self.word_dropout)
            mask = torch.where(kept.any(1, keepdim=True), kept, mask)  # a text never loses all its words
        pooled = self.pool(self.embedding(ids), mask)  # (B, E)
        return self.output(self.hidden(pooled))  # (B, C)
