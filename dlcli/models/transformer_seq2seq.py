"""The Transformer of Vaswani et al., "Attention Is All You Need", NeurIPS 2017: an encoder of
self-attention layers (dlcli/nn/transformer.EncoderLayer) and a decoder whose layers add causal
self-attention and attention over the encoder's output (DecoderLayer).

Embeddings are scaled by sqrt(d_model) and added to sinusoidal positions; `tie_embeddings`
decoder shares the target embedding with the output layer, all shares the source's too (one
vocabulary; section 3.4 of the paper). `norm: post` is the paper's layout; `pre` (the default)
normalises before each sublayer and once more after the last layer, which trains more steadily
on small data. Generation extends each decoder layer's keys and values by one step at a time and
computes the encoder's keys and values once per sentence (`start`).

Letters: B batch, S source positions, T target positions, D model width, V vocabulary.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlcli.models.encoder_decoder import EncoderDecoderDefaults
from dlcli.models.rnn_seq2seq import check_tying
from dlcli.nn.transformer import DecoderLayer, EncoderLayer, sinusoidal_positions


class TransformerSeq2Seq(EncoderDecoderDefaults, nn.Module):
    def __init__(self, source_vocab_size: int, target_vocab_size: int, *, d_model: int = 256,
                 num_heads: int = 4, ff_size: int = 1024, encoder_layers: int = 3, decoder_layers: int = 3,
                 dropout: float = 0.1, norm: str = "pre", max_positions: int = 256,
                 tie_embeddings: str = "decoder"):
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        check_tying(tie_embeddings, source_vocab_size, target_vocab_size)
        self.max_source_positions = self.max_target_positions = max_positions
        self.d_model = d_model
        self.scale = math.sqrt(d_model)
        self.source_embedding = nn.Embedding(source_vocab_size, d_model)
        self.target_embedding = (self.source_embedding if tie_embeddings == "all"
                                 else nn.Embedding(target_vocab_size, d_model))
        for table in {id(self.source_embedding): self.source_embedding,
                      id(self.target_embedding): self.target_embedding}.values():
            nn.init.normal_(table.weight, 0.0, d_model ** -0.5)  # times sqrt(D): unit-scale inputs
        self.register_buffer("positions", sinusoidal_positions(max_positions, d_model), persistent=False)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, num_heads, ff_size, dropout, norm)
                                     for _ in range(encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(d_model, num_heads, ff_size, dropout, norm)
                                     for _ in range(decoder_layers))
        self.pre_norm = norm == "pre"
        self.encoder_norm = nn.LayerNorm(d_model) if self.pre_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if self.pre_norm else nn.Identity()
        self.output = nn.Linear(d_model, target_vocab_size, bias=False)
        if tie_embeddings != "none":
            self.output.weight = self.target_embedding.weight
        self.dropout = nn.Dropout(dropout)

    def _embed(self, table: nn.Embedding, ids: torch.Tensor, offset: int = 0) -> torch.Tensor:
        x = table(ids) * self.scale + self.positions[offset:offset + ids.shape[1]]
        return self.dropout(x)

    def encode(self, source: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
        x = self._embed(self.source_embedding, source)
        for layer in self.encoder:
            x = layer(x, source_mask)
        return self.encoder_norm(x)  # (B, S, D)

    def memory_keys(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [layer.cross_attention.keys_values(memory) for layer in self.decoder]

    def decode(self, target_in: torch.Tensor, memory_kv, source_mask: torch.Tensor, past=None,
               need_weights: bool = False):
        """(scores (B, T, V), each layer's self-attention keys and values, the last layer's
        attention over the source (B, T, S) or None). `past`: earlier steps' keys and values."""
        offset = 0 if past is None else past[0][0].shape[2]
        x = self._embed(self.target_embedding, target_in, offset)
        cache, weights = [], None
        for i, layer in enumerate(self.decoder):
            x, kv, weights = layer(x, memory_kv[i], source_mask, None if past is None else past[i],
                                   need_weights and i == len(self.decoder) - 1)
            cache.append(kv)
        return self.output(self.decoder_norm(x)), cache, weights

    def forward(self, source: torch.Tensor, source_mask: torch.Tensor, target_in: torch.Tensor) -> torch.Tensor:
        memory = self.encode(source, source_mask)
        scores, _, _ = self.decode(target_in, self.memory_keys(memory), source_mask)
        return scores

    def start(self, source: torch.Tensor, source_mask: torch.Tensor) -> TransformerDecoderState:
        return TransformerDecoderState(self, self.memory_keys(self.encode(source, source_mask)), source_mask)


class TransformerDecoderState:
    def __init__(self, model: TransformerSeq2Seq, memory_kv, mask):
        self.model, self.memory_kv, self.mask, self.past = model, memory_kv, mask, None

    def step(self, ids: torch.Tensor, need_weights: bool = False):
        scores, self.past, weights = self.model.decode(ids.unsqueeze(1), self.memory_kv, self.mask, self.past,
                                                       need_weights)
        return scores.squeeze(1), None if weights is None else weights.squeeze(1)

    @property
    def device(self) -> torch.device:
        return self.mask.device

    def select(self, rows: torch.Tensor) -> None:
        def pick(kvs):
            return [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in kvs]

        self.memory_kv = pick(self.memory_kv)
        self.mask = self.mask.index_select(0, rows)
        if self.past is not None:
            self.past = pick(self.past)
