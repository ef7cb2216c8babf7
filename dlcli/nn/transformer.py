"""Transformer encoder pieces written out: masked multi-head self-attention, the encoder layer
(post-norm as in the paper, or pre-norm), and sinusoidal position codes.

Vaswani et al., "Attention Is All You Need", NeurIPS 2017; pre-norm: Xiong et al., "On Layer
Normalization in the Transformer Architecture", ICML 2020.

Letters: B batch, T positions, D model width, N heads, K = D / N width per head, F feed-forward width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("pre", "post")


def scaled_dot_product(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor,
                       dropout: float = 0.0) -> torch.Tensor:
    """softmax(q k^T / sqrt(K)) v over the keys where key_mask (B, T) is True; q, k, v (B, N, T, K).

    Masked keys get the most negative finite score rather than -inf: their weight is still exactly
    zero next to any real key, and a query whose keys are all padding (an empty text) gets a finite
    output instead of NaN, which a later multiply-by-zero mask would not remove (0 * NaN = NaN).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, N, T, T)
    scores = scores.masked_fill(~key_mask[:, None, None, :], torch.finfo(scores.dtype).min)
    weights = F.dropout(torch.softmax(scores, dim=-1), dropout)  # (B, N, T, T)
    return weights @ v  # (B, N, T, K)


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)  # the three projections as one matrix product
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.num_heads, D // self.num_heads)  # (B, T, 3, N, K)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # 3 x (B, N, T, K)
        heads = scaled_dot_product(q, k, v, mask, self.dropout if self.training else 0.0)  # (B, N, T, K)
        return self.proj(heads.transpose(1, 2).reshape(B, T, D))  # (B, T, D)


class EncoderLayer(nn.Module):
    """Self-attention then a position-wise feed-forward net, each in a residual branch.

    post: x = norm(x + sublayer(x)), the original; pre: x = x + sublayer(norm(x)), which keeps an
    un-normalised path from input to output and trains without learning-rate warm-up, but needs a
    final LayerNorm after the last layer.
    """

    def __init__(self, d_model: int, num_heads: int, ff_size: int, dropout: float = 0.1, norm: str = "pre"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, not {norm!r}")
        self.pre_norm = norm == "pre"
        self.attention = MultiHeadSelfAttention(d_model, num_heads, dropout)
        self.feed_forward = nn.Sequential(
            nn.Linear(d_model, ff_size), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff_size, d_model))
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.dropout(self.attention(self.norm1(x), mask))  # (B, T, D)
            return x + self.dropout(self.feed_forward(self.norm2(x)))
        x = self.norm1(x + self.dropout(self.attention(x, mask)))  # (B, T, D)
        return self.norm2(x + self.dropout(self.feed_forward(x)))


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """(length, D): sin in even columns, cos in odd ones, wavelengths 2 pi to 10000 x 2 pi."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)  # (length, 1)
    rates = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * rates)
    table[:, 1::2] = torch.cos(position * rates[: d_model // 2])  # an odd D has one cosine fewer
    return table
