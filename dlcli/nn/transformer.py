"""Transformer pieces written out: masked multi-head self-attention, the encoder layer (post-norm
as in the paper, or pre-norm), sinusoidal position codes, and the decoder's layer (causal
self-attention and attention over the encoder, fed a step at a time when generating).

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


class MultiHeadAttention(nn.Module):
    """Queries from one sequence, keys and values from another (the decoder's cross-attention) or
    the same one (its self-attention). Keys and values are computed apart (`keys_values`), so a
    decoder computes the encoder's once per sentence and extends its own by one step at a time."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.dropout = dropout
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(k, v), each (B, N, S, K), of x (B, S, D)."""
        B, S, D = x.shape
        kv = self.key_value(x).view(B, S, 2, self.num_heads, D // self.num_heads)
        k, v = kv.permute(2, 0, 3, 1, 4)
        return k, v

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None,
                causal: bool = False, need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(out (B, T, D), weights (B, T, S) averaged over heads, or None): x (B, T, D) attends to
        k, v over the keys where key_mask (B, S) is True (None: all); `causal`: query t sees keys
        up to t only (the keys are the queries' own sequence)."""
        B, T, D = x.shape
        q = self.query(x).view(B, T, self.num_heads, D // self.num_heads).transpose(1, 2)  # (B, N, T, K)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        dropout = self.dropout if self.training else 0.0
        if need_weights:  # written out, to see the weights (decoding with attention pictures)
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, N, T, S)
            if mask is not None:
                scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            if causal:
                ahead = torch.ones(T, k.shape[2], dtype=torch.bool, device=x.device).triu(1)
                scores = scores.masked_fill(ahead, torch.finfo(scores.dtype).min)
            weights = torch.softmax(scores, dim=-1)
            heads = F.dropout(weights, dropout) @ v
            averaged = weights.mean(1)
        else:
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout,
                                                   is_causal=causal and mask is None)
            averaged = None
        return self.proj(heads.transpose(1, 2).reshape(B, T, D)), averaged


class DecoderLayer(nn.Module):
    """Causal self-attention, attention over the encoder's output, a feed-forward net; each in a
    residual branch, normalised after (post, the paper's) or before (pre). Fed a step at a time,
    it extends its own keys and values (`past`) instead of recomputing earlier steps."""

    def __init__(self, d_model: int, num_heads: int, ff_size: int, dropout: float = 0.1, norm: str = "pre"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, not {norm!r}")
        self.pre_norm = norm == "pre"
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout)
        self.cross_attention = MultiHeadAttention(d_model, num_heads, dropout)
        self.feed_forward = nn.Sequential(
            nn.Linear(d_model, ff_size), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff_size, d_model))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3))
        self.dropout = nn.Dropout(dropout)

    def _branch(self, i: int, x: torch.Tensor, sublayer) -> tuple[torch.Tensor, object]:
        if self.pre_norm:
            out, extra = sublayer(self.norms[i](x))
            return x + self.dropout(out), extra
        out, extra = sublayer(x)
        return self.norms[i](x + self.dropout(out)), extra

    def forward(self, x: torch.Tensor, memory: tuple[torch.Tensor, torch.Tensor], memory_mask: torch.Tensor,
                past: tuple[torch.Tensor, torch.Tensor] | None = None, need_weights: bool = False):
        """(x (B, T, D), (k, v) of its self-attention so far, cross-attention weights (B, T, S) or
        None). `memory`: the encoder output's keys and values for this layer (`cross_attention.
        keys_values`); `past`: the keys and values of the steps before x (None: x is the whole
        target, attended causally)."""
        cache = {}

        def self_attend(h):
            k, v = self.self_attention.keys_values(h)
            if past is not None:
                k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
            cache["kv"] = (k, v)
            return self.self_attention(h, k, v, causal=past is None)

        x, _ = self._branch(0, x, self_attend)
        x, weights = self._branch(1, x, lambda h: self.cross_attention(h, *memory, memory_mask,
                                                                      need_weights=need_weights))
        x, _ = self._branch(2, x, lambda h: (self.feed_forward(h), None))
        return x, cache["kv"], weights
