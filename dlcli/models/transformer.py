"""Transformer encoder classifier: token embeddings plus positions, self-attention layers, then a
learned [CLS] vector's output or the masked mean of the token outputs, and a linear layer.

Vaswani et al., "Attention Is All You Need", NeurIPS 2017 (the encoder); the prepended [CLS]
vector as the text's summary follows Devlin et al., "BERT", NAACL 2019.

Letters: B batch, T tokens, S = T (+1 with a [CLS] vector), D model width, C labels.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlcli.models.classifier import ClassifierDefaults
from dlcli.nn.pooling import masked_mean
from dlcli.nn.transformer import NORMS, EncoderLayer, sinusoidal_positions

POSITIONS = ("sinusoidal", "learned")
POOLINGS = ("cls", "mean")


class TransformerClassifier(ClassifierDefaults, nn.Module):
    def __init__(
        self, vocab_size: int, num_labels: int, pad_id: int, *,
        d_model: int = 128, num_layers: int = 2, num_heads: int = 4, ff_size: int = 256, dropout: float = 0.1,
        norm: str = "pre", pooling: str = "cls", positions: str = "sinusoidal", max_positions: int = 512,
    ):
        super().__init__()
        for name, value, choices in (("norm", norm, NORMS), ("pooling", pooling, POOLINGS),
                                     ("positions", positions, POSITIONS)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        self.scale = math.sqrt(d_model)
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        # N(0, 1/D) so that the sqrt(D) scaling gives unit-variance inputs, the size of the positions
        nn.init.normal_(self.embedding.weight, std=d_model ** -0.5)
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        # the [CLS] vector is a token embedding of its own: same initial scale, same sqrt(D) factor
        self.cls = nn.Parameter(torch.randn(d_model) * d_model ** -0.5) if pooling == "cls" else None
        self.max_tokens = max_positions - (1 if pooling == "cls" else 0)
        if self.max_tokens < 1:
            raise ValueError(f"max_positions ({max_positions}) leaves no room for a token")
        if positions == "learned":
            self.positions = nn.Embedding(max_positions, d_model)
            nn.init.normal_(self.positions.weight, std=0.02)  # small: order is learned on top of the words
        else:  # computed, not learned: kept out of the state_dict
            self.register_buffer("sinusoids", sinusoidal_positions(max_positions, d_model), persistent=False)
            self.positions = None
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(d_model, num_heads, ff_size, dropout, norm) for _ in range(num_layers))
        # a pre-norm stack leaves its output un-normalised; post-norm ends in a LayerNorm already
        self.final_norm = nn.LayerNorm(d_model) if norm == "pre" else nn.Identity()
        self.output = nn.Linear(d_model, num_labels)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # positions run out at max_positions: longer texts keep their beginning (data.max_length cuts earlier)
        ids, mask = ids[:, : self.max_tokens], mask[:, : self.max_tokens]  # (B, T)
        x = self.embedding(ids)  # (B, T, D)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.size(0), 1, -1), x], dim=1)  # (B, S, D)
            mask = torch.cat([mask.new_ones(mask.size(0), 1), mask], dim=1)  # (B, S)
        x = self.dropout(x * self.scale + self._positions(x.size(1)))  # (B, S, D)
        for layer in self.layers:
            x = layer(x, mask)  # (B, S, D)
        x = self.final_norm(x)
        pooled = x[:, 0] if self.cls is not None else masked_mean(x, mask)  # (B, D)
        return self.output(self.dropout(pooled))  # (B, C)

    def _positions(self, length: int) -> torch.Tensor:
        if self.positions is None:
            return self.sinusoids[:length]  # (S, D)
        return self.positions.weight[:length]  # (S, D)
