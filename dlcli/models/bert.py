"""BERT: a Transformer encoder pretrained by masked language modelling and next-sentence prediction.

Devlin et al. 2019 ("BERT: Pre-training of Deep Bidirectional Transformers for Language
Understanding"), in the layout of Hugging Face's `BertModel`, which `dlcli convert bert` relies on
(dlcli/convert/bert.py maps the names): token + segment + learned position embeddings, LayerNorm;
post-norm layers (self-attention, add, LayerNorm; feed-forward with GELU, add, LayerNorm); a pooler
(dense + tanh on the first token, [CLS]). The pretraining heads are modules of the model, so a
pretraining run and a converted BertForPreTraining carry them: the masked-LM head (dense, GELU,
LayerNorm, then the token embedding transposed, plus a bias) and the next-sentence head (a linear
layer over the pooled output). Weights N(0, 0.02), as BERT's.

Attention is torch's `scaled_dot_product_attention` with the padding keys masked out.

Letters: B batch, T positions, D width (hidden_size), N heads, K = D / N, F feed-forward width,
V vocabulary, M masked positions of a batch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dlcli.models.classifier import check_same_architecture
from dlcli.nn.init import normal_002

ACTIVATIONS = {"gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "relu": F.relu}


class Pretraining(NamedTuple):
    mlm_logits: torch.Tensor  # (M, V): the masked positions, in row-major order
    nsp_logits: torch.Tensor  # (B, 2): 0 = B follows A, 1 = B is a random sentence (BERT's order)


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)  # HF's query, key and value, stacked
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, keys: torch.Tensor | None) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, N, T, K)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keys, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class Layer(nn.Module):
    """Post-norm: x = LN(x + attention(x)); x = LN(x + FFN(x))."""

    def __init__(self, width: int, heads: int, ffn_dim: int, dropout: float, attention_dropout: float,
                 activation: str, eps: float):
        super().__init__()
        self.attn = SelfAttention(width, heads, attention_dropout)
        self.norm1 = nn.LayerNorm(width, eps=eps)
        self.fc = nn.Linear(width, ffn_dim)
        self.proj = nn.Linear(ffn_dim, width)
        self.norm2 = nn.LayerNorm(width, eps=eps)
        self.act = ACTIVATIONS[activation]
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keys: torch.Tensor | None) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.attn(x, keys)))
        return self.norm2(x + self.drop(self.proj(self.act(self.fc(x)))))


class BERT(nn.Module):
    def __init__(self, vocab_size: int, *, hidden_size: int = 256, num_layers: int = 4, num_heads: int = 4,
                 intermediate_size: int | None = None, max_position_embeddings: int = 512, type_vocab_size: int = 2,
                 dropout: float = 0.1, attention_dropout: float = 0.1, activation: str = "gelu",
                 layer_norm_eps: float = 1e-12, pretraining_heads: bool = True, pooler: bool = True):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: {activation!r} is not one of {', '.join(ACTIVATIONS)}")
        if min(hidden_size, num_layers, num_heads, max_position_embeddings, type_vocab_size) < 1:
            raise ValueError("hidden_size, num_layers, num_heads, max_position_embeddings and type_vocab_size "
                             "must be at least 1")
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads})")
        if not (0 <= dropout < 1 and 0 <= attention_dropout < 1):
            raise ValueError(f"dropout and attention_dropout must be in [0, 1), got {dropout}, {attention_dropout}")
        self.max_length = max_position_embeddings
        self.token = nn.Embedding(vocab_size, hidden_size)
        self.segment = nn.Embedding(type_vocab_size, hidden_size)
        self.position = nn.Embedding(max_position_embeddings, hidden_size)
        self.embed_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            Layer(hidden_size, num_heads, intermediate_size or 4 * hidden_size, dropout, attention_dropout,
                  activation, layer_norm_eps) for _ in range(num_layers))
        if pooler:  # a tagger (models/bert_tagger.py) reads every position, not the pooled [CLS]
            self.pooler = nn.Linear(hidden_size, hidden_size)
        if pretraining_heads:  # a fine-tuned encoder (models/bert_classifier.py) leaves them out
            self.mlm_transform = nn.Linear(hidden_size, hidden_size)
            self.mlm_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
            self.mlm_bias = nn.Parameter(torch.zeros(vocab_size))
            self.nsp = nn.Linear(hidden_size, 2)
        self.act = ACTIVATIONS[activation]
        self.apply(normal_002)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, segments: torch.Tensor | None = None,
                masked: torch.Tensor | None = None) -> torch.Tensor | Pretraining:
        """The last layer's hidden states (B, T, D) for ids (B, T), `mask` (B, T) True at real tokens,
        `segments` (B, T) the sentence of each token (default all 0). Given `masked` (B, T), True
        where a token is to be predicted, the pretraining heads' logits instead (one forward for a
        pretraining step, so that a distributed wrapper sees every weight used)."""
        hidden = self.encode(ids, mask, segments)
        if masked is None:
            return hidden
        return Pretraining(self.mlm_logits(hidden[masked]), self.nsp_logits(self.pooled(hidden)))

    def encode(self, ids: torch.Tensor, mask: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        B, T = ids.shape
        if T > self.max_length:
            raise ValueError(f"{T} positions do not fit the model's {self.max_length}")
        positions = torch.arange(T, device=ids.device)
        x = self.token(ids) + self.position(positions)[None]  # (B, T, D)
        x = x + (self.segment(segments) if segments is not None else self.segment.weight[0])
        x = self.drop(self.embed_norm(x))
        keys = None if bool(mask.all()) else mask[:, None, None, :]  # (B, 1, 1, T): padding is never attended
        for layer in self.layers:
            x = layer(x, keys)
        return x

    def pooled(self, hidden: torch.Tensor) -> torch.Tensor:
        """BERT's pooled output (B, D): dense + tanh on the first position ([CLS])."""
        return torch.tanh(self.pooler(hidden[:, 0]))

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., V) token scores for hidden states (..., D)."""
        h = self.mlm_norm(self.act(self.mlm_transform(hidden)))
        return F.linear(h, self.token.weight, self.mlm_bias)

    def nsp_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.nsp(pooled)


# ---------------------------------------------------------------- fine-tuning (bert_classifier.py, bert_tagger.py)

# The knobs that fix a BERT's weights' shapes and function: a fine-tuned model must match its
# pretrained start (data.init) on each, and takes each from it where the recipe leaves it None.
ARCHITECTURE = ("hidden_size", "num_layers", "num_heads", "intermediate_size", "max_position_embeddings",
                "type_vocab_size", "activation", "layer_norm_eps")


def fine_tuning_encoder(vocab_size: int, knobs: dict, dropout: float, pooler: bool = True) -> tuple[BERT, dict]:
    """(a BERT without pretraining heads, its architecture) from a fine-tuning model's knobs: the
    ARCHITECTURE ones and the [CLS]/[SEP] ids, which must be given by now (the task fills them
    from data.init and its vocabulary); a ValueError names those missing."""
    missing = [k for k in ("hidden_size", "num_layers", "num_heads", "max_position_embeddings", "cls_id", "sep_id")
               if knobs.get(k) is None]
    if missing:
        raise ValueError(f"{', '.join(missing)}: give them, or start from a pretrained bert (data.init) with "
                         "its vocabulary")
    if knobs["max_position_embeddings"] < 3:
        raise ValueError(f"max_position_embeddings: at least 3 ([CLS], a token, [SEP]), "
                         f"got {knobs['max_position_embeddings']}")
    architecture = {k: knobs[k] for k in ARCHITECTURE}
    architecture["intermediate_size"] = knobs["intermediate_size"] or 4 * knobs["hidden_size"]
    bert = BERT(vocab_size, **architecture, dropout=dropout, attention_dropout=dropout, pretraining_heads=False,
                pooler=pooler)
    return bert, architecture


def start_encoder(bert: BERT, architecture: dict, pretrained: nn.Module, kwargs: dict) -> None:
    """Copy a pretrained BERT's weights (builder kwargs `kwargs`) into a fine-tuning model's
    encoder, the parts it lacks (pretraining heads, a pooler) left behind."""
    if not isinstance(pretrained, BERT):
        raise ValueError(f"a bert model starts from a bert encoder, not a {type(pretrained).__name__}")
    check_same_architecture(architecture, {**kwargs, "intermediate_size": kwargs.get("intermediate_size")
                                           or 4 * kwargs.get("hidden_size", 0)})
    mine = bert.state_dict()
    bert.load_state_dict({k: v for k, v in pretrained.state_dict().items() if k in mine})


def encoder_layers(bert: BERT) -> list[list]:
    """The encoder's parameters in layers for train.layer_lr_decay: the embeddings, then each layer
    (a fine-tuning model adds its head as the last)."""
    embeddings = [*bert.token.parameters(), *bert.segment.parameters(), *bert.position.parameters(),
                  *bert.embed_norm.parameters()]
    return [embeddings, *(list(layer.parameters()) for layer in bert.layers)]


def with_cls_sep(ids: torch.Tensor, mask: torch.Tensor, cls_id: int, sep_id: int,
                 pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] ids [SEP] for right-padded ids (B, T): (the ids (B, T + 2), True at real positions)."""
    B, T = ids.shape
    lengths = mask.sum(1)
    x = torch.full((B, T + 2), pad_id, dtype=ids.dtype, device=ids.device)
    x[:, 0] = cls_id
    x[:, 1:T + 1] = ids.masked_fill(~mask, pad_id)
    x[torch.arange(B, device=ids.device), lengths + 1] = sep_id
    return x, torch.arange(T + 2, device=ids.device) <= (lengths + 1)[:, None]
