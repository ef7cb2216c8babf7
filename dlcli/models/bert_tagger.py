"""A BERT fine-tuned to tag words (Devlin et al. 2019, section 5.3), optionally with a CRF output
layer over the words (BERT-CRF; Souza et al. 2019).

Each word of a sentence is split into WordPiece tokens (the tag task does that, and cuts a
sentence longer than the model's positions into windows); [CLS] pieces [SEP] go through the
encoder, and each word's tag scores come from its first piece's final state through dropout and
a linear layer. The loss and the decoding are over words: a softmax per word, or the CRF
(`crf: true`), which forbids the transitions the tag scheme rules out (`constrained`).

The architecture knobs and the [CLS]/[SEP] ids default to None: a run that starts from a
pretrained `bert` (`data.init`: an mlm checkpoint, trained or made by `dlcli convert bert`) takes
them from it and its vocabulary; without one the recipe gives the architecture and a
bert_wordpiece vocabulary gives the ids.

Letters: B batch, P pieces, W words, D width, K tags.
"""

from __future__ import annotations

import torch
from torch import nn

from dlcli.models.bert import encoder_layers, fine_tuning_encoder, start_encoder, with_cls_sep
from dlcli.models.tagger import TaggerDefaults, TaggerInputs, output_crf


class BertTagger(TaggerDefaults, nn.Module):
    reads_pieces = True
    pretrained = "bert"

    def __init__(self, vocab_size: int, num_tags: int, pad_id: int, inputs: TaggerInputs, *,
                 hidden_size: int | None = None, num_layers: int | None = None, num_heads: int | None = None,
                 intermediate_size: int | None = None, max_position_embeddings: int | None = None,
                 type_vocab_size: int = 2, activation: str = "gelu", layer_norm_eps: float = 1e-12,
                 cls_id: int | None = None, sep_id: int | None = None, dropout: float = 0.1, crf: bool = False,
                 constrained: bool = True):
        super().__init__()
        knobs = {"hidden_size": hidden_size, "num_layers": num_layers, "num_heads": num_heads,
                 "intermediate_size": intermediate_size, "max_position_embeddings": max_position_embeddings,
                 "type_vocab_size": type_vocab_size, "activation": activation, "layer_norm_eps": layer_norm_eps,
                 "cls_id": cls_id, "sep_id": sep_id}
        self.bert, self.architecture = fine_tuning_encoder(vocab_size, knobs, dropout, pooler=False)
        self.cls_id, self.sep_id, self.pad_id = cls_id, sep_id, pad_id
        self.max_tokens = max_position_embeddings - 2  # pieces read at once, [CLS] and [SEP] aside
        self.drop = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, num_tags)
        nn.init.normal_(self.output.weight, std=0.02)
        nn.init.zeros_(self.output.bias)
        self.crf = output_crf(inputs, crf, constrained)

    def layer_groups(self) -> list[list]:
        """The embeddings, each encoder layer, then the output layer and the CRF."""
        head = [*self.output.parameters(), *(self.crf.parameters() if self.crf is not None else [])]
        return [*encoder_layers(self.bert), head]

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """Tag scores (B, W, K) for piece ids (B, P) (mask True at real pieces) and `first` (B, W):
        the position among the pieces of each word's first piece (any value past a row's words)."""
        if ids.shape[1] > self.max_tokens:
            raise ValueError(f"{ids.shape[1]} pieces do not fit the model's {self.max_tokens} positions")
        x, real = with_cls_sep(ids, mask, self.cls_id, self.sep_id, self.pad_id)
        hidden = self.bert.encode(x, real)  # (B, P + 2, D)
        index = (first + 1).clamp(max=hidden.shape[1] - 1)  # + 1: past [CLS]
        words = hidden.gather(1, index[:, :, None].expand(-1, -1, hidden.shape[2]))  # (B, W, D)
        return self.output(self.drop(words))

    def start_from(self, pretrained: nn.Module, kwargs: dict) -> None:
        start_encoder(self.bert, self.architecture, pretrained, kwargs)
