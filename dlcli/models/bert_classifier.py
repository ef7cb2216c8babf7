"""A BERT fine-tuned to classify (Devlin et al. 2019, section 4.1): [CLS] text [SEP] through the
encoder, then dropout and a linear layer over the pooled output (`pooling: cls`, BERT's tanh
pooler on [CLS]) or the mean of every position's state, [CLS] and [SEP] included (`mean`, the
pooling sentence-transformers' models such as all-MiniLM-L6-v2 were trained with).

The architecture knobs and the [CLS]/[SEP] ids default to None: a run that starts from a
pretrained `bert` (`data.init`: an mlm checkpoint, trained or made by `dlcli convert bert`) takes
them from it and its vocabulary (the classify task fills them in; `start_from` copies the
weights, the pretraining heads left behind); without one the recipe gives the architecture and a
bert_wordpiece vocabulary gives the ids.
"""

from __future__ import annotations

import torch
from torch import nn

from dlcli.models.bert import encoder_layers, fine_tuning_encoder, start_encoder, with_cls_sep
from dlcli.models.classifier import ClassifierDefaults
from dlcli.nn.pooling import masked_mean

POOLINGS = ("cls", "mean")


class BertClassifier(ClassifierDefaults, nn.Module):
    pretrained = "bert"

    def __init__(self, vocab_size: int, num_labels: int, pad_id: int, *, hidden_size: int | None = None,
                 num_layers: int | None = None, num_heads: int | None = None, intermediate_size: int | None = None,
                 max_position_embeddings: int | None = None, type_vocab_size: int = 2, activation: str = "gelu",
                 layer_norm_eps: float = 1e-12, cls_id: int | None = None, sep_id: int | None = None,
                 dropout: float = 0.1, pooling: str = "cls"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling: {pooling!r} is not one of {', '.join(POOLINGS)}")
        knobs = {"hidden_size": hidden_size, "num_layers": num_layers, "num_heads": num_heads,
                 "intermediate_size": intermediate_size, "max_position_embeddings": max_position_embeddings,
                 "type_vocab_size": type_vocab_size, "activation": activation, "layer_norm_eps": layer_norm_eps,
                 "cls_id": cls_id, "sep_id": sep_id}
        self.bert, self.architecture = fine_tuning_encoder(vocab_size, knobs, dropout)
        self.cls_id, self.sep_id, self.pad_id, self.pooling = cls_id, sep_id, pad_id, pooling
        self.max_tokens = max_position_embeddings - 2
        self.drop = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, num_labels)
        nn.init.normal_(self.output.weight, std=0.02)
        nn.init.zeros_(self.output.bias)

    @property
    def embedding(self) -> nn.Embedding:
        """The token embedding (data.vectors fills it)."""
        return self.bert.token

    def layer_groups(self) -> list[list]:
        """The embeddings, each encoder layer, then the pooler and the output layer."""
        return [*encoder_layers(self.bert), [*self.bert.pooler.parameters(), *self.output.parameters()]]

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ids, mask = ids[:, : self.max_tokens], mask[:, : self.max_tokens]  # the positions end here
        x, real = with_cls_sep(ids, mask, self.cls_id, self.sep_id, self.pad_id)
        hidden = self.bert.encode(x, real)
        if self.pooling == "cls":
            pooled = self.bert.pooled(hidden)
        else:
            pooled = masked_mean(hidden, real)
        return self.output(self.drop(pooled))

    def start_from(self, pretrained: nn.Module, kwargs: dict) -> None:
        start_encoder(self.bert, self.architecture, pretrained, kwargs)
