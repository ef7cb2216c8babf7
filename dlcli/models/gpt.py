"""GPT: a decoder-only Transformer language model.

Radford et al. 2018 ("Improving Language Understanding by Generative Pre-Training") with GPT-2's
layout (Radford et al. 2019): learned positions, pre-norm blocks (LayerNorm before attention and
before the feed-forward net, one more after the last block), GELU, the output layer tied to the
token embedding, weights N(0, 0.02) and the residual projections N(0, 0.02 / sqrt(2 x layers)).
With `activation: gelu_tanh` and `layer_norm_eps: 1e-5` (the defaults) it is GPT-2 itself, which
`dlcli convert gpt2` relies on (dlcli/convert/gpt2.py maps the names).

Attention is torch's `scaled_dot_product_attention`, so a GPU gets its fused kernels. Generation
(`begin`) keeps every layer's keys and values in a cache allocated once, so each new token costs
one position's work; prompts of different lengths are padded on the left and masked.

Letters: B batch, T new positions, L positions attended (cached + new), D width, N heads, K = D / N.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dlcli.models.language_model import LanguageModelDefaults
from dlcli.nn.init import normal_002

ACTIVATIONS = {"gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "gelu": F.gelu, "relu": F.relu}


class KVCache:
    """Every layer's keys and values for B rows, room for `capacity` positions, filled left to right.

    `real` (B, capacity) says which cached positions hold tokens rather than left padding, and
    `seen` (B,) how many tokens each row has read: its next token's position.
    """

    def __init__(self, layers: int, batch: int, heads: int, capacity: int, head_dim: int, device, dtype):
        shape = (layers, batch, heads, capacity, head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.real = torch.zeros(batch, capacity, dtype=torch.bool, device=device)
        self.seen = torch.zeros(batch, dtype=torch.long, device=device)
        self.length = 0  # positions filled
        self.padded = False  # whether any filled position is padding

    @property
    def capacity(self) -> int:
        return self.keys.shape[3]


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None, layer: int) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, N, T, K)
        causal = mask is None and T > 1
        if cache is not None:
            start = cache.length
            cache.keys[layer, :, :, start:start + T] = k
            cache.values[layer, :, :, start:start + T] = v
            k, v = cache.keys[layer, :, :, :start + T], cache.values[layer, :, :, :start + T]
            causal = causal and start == 0  # a prompt read at once; later single tokens see all before them
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, ffn_dim: int, dropout: float, activation: str, eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=eps)
        self.attn = SelfAttention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width, eps=eps)
        self.fc = nn.Linear(width, ffn_dim)
        self.proj = nn.Linear(ffn_dim, width)
        self.act = ACTIVATIONS[activation]
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask, cache, layer):
        x = x + self.drop(self.attn(self.norm1(x), mask, cache, layer))
        return x + self.drop(self.proj(self.act(self.fc(self.norm2(x)))))


class GPT(LanguageModelDefaults, nn.Module):
    def __init__(self, vocab_size: int, *, context_length: int = 256, embedding_dim: int = 256, num_layers: int = 4,
                 num_heads: int = 4, ffn_dim: int | None = None, dropout: float = 0.1, activation: str = "gelu_tanh",
                 layer_norm_eps: float = 1e-5):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: {activation!r} is not one of {', '.join(ACTIVATIONS)}")
        if min(context_length, embedding_dim, num_layers, num_heads) < 1:
            raise ValueError("context_length, embedding_dim, num_layers and num_heads must be at least 1")
        if embedding_dim % num_heads:
            raise ValueError(f"embedding_dim ({embedding_dim}) must be divisible by num_heads ({num_heads})")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout: must be in [0, 1), got {dropout}")
        self.context_length = context_length
        self.num_layers, self.num_heads, self.width = num_layers, num_heads, embedding_dim
        self.token = nn.Embedding(vocab_size, embedding_dim)
        self.position = nn.Embedding(context_length, embedding_dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(embedding_dim, num_heads, ffn_dim or 4 * embedding_dim, dropout, activation,
                                          layer_norm_eps) for _ in range(num_layers))
        self.norm = nn.LayerNorm(embedding_dim, eps=layer_norm_eps)
        self.apply(normal_002)
        for block in self.blocks:  # each residual branch adds to the stream: keep the sum's variance flat
            for proj in (block.attn.proj, block.proj):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * num_layers))

    def hidden(self, ids: torch.Tensor, cache: KVCache | None = None, real: torch.Tensor | None = None) -> torch.Tensor:
        """The last LayerNorm's output (B, T, D) for ids (B, T). Without a cache the ids are whole
        texts, right-padded if at all (causal attention keeps padding out of real positions). With
        one they follow what it holds; `real` (B, T) marks which of them are left padding (False)."""
        B, T = ids.shape
        mask = None
        if cache is None:
            positions = torch.arange(T, device=ids.device).expand(B, T)
        else:
            if cache.length + T > cache.capacity:
                raise ValueError(f"the cache holds {cache.capacity} positions, {cache.length + T} asked for")
            real = torch.ones_like(ids, dtype=torch.bool) if real is None else real
            # padding at 0; rows past the context (finished, still fed with the batch) at its last position
            positions = (cache.seen[:, None] + real.long().cumsum(1) - 1).clamp(0, self.context_length - 1)
            cache.real[:, cache.length:cache.length + T] = real
            cache.padded = cache.padded or not bool(real.all())
            if cache.padded:  # padding keys hidden; a padding query sees itself only, so no row is all -inf
                L = cache.length + T
                keys = torch.arange(L, device=ids.device)
                queries = torch.arange(cache.length, L, device=ids.device)[:, None]
                mask = (keys <= queries) & (cache.real[:, None, :L] | (keys == queries))
                mask = mask[:, None]  # (B, 1, T, L)
        x = self.drop(self.token(ids) + self.position(positions))
        for layer, block in enumerate(self.blocks):
            x = block(x, mask, cache, layer)
        if cache is not None:
            cache.length += T
            cache.seen += real.long().sum(1)
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden, self.token.weight)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T, V) next-token logits for ids (B, T), T <= context_length."""
        return self.logits(self.hidden(ids))

    def begin(self, prompts: list[list[int]], capacity: int) -> GPTContinuation:
        return GPTContinuation(self, prompts, capacity)


class GPTContinuation:
    """Prompts left-padded into one batch and read at once; then one token per row a step."""

    def __init__(self, model: GPT, prompts: list[list[int]], capacity: int):
        p = next(model.parameters())
        longest = max(map(len, prompts))
        if longest > model.context_length:
            raise ValueError(f"a prompt of {longest} tokens does not fit {model.context_length} positions")
        self.model = model
        head = model.width // model.num_heads
        self.cache = KVCache(model.num_layers, len(prompts), model.num_heads, capacity, head, p.device, p.dtype)
        ids = torch.zeros(len(prompts), longest, dtype=torch.long)
        real = torch.zeros(len(prompts), longest, dtype=torch.bool)
        for row, prompt in enumerate(prompts):
            ids[row, longest - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            real[row, longest - len(prompt):] = True
        self.logits = model.logits(model.hidden(ids.to(p.device), self.cache, real.to(p.device))[:, -1])

    @property
    def positions_used(self) -> torch.Tensor:
        """(B,) tokens each row has read: generation stops a row at the model's context length."""
        return self.cache.seen

    def feed(self, ids: torch.Tensor) -> None:
        self.logits = self.model.logits(self.model.hidden(ids[:, None], self.cache)[:, -1])
