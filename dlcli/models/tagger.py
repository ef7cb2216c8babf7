"""BiLSTM sequence tagger with a softmax or CRF output layer, and optional character features.

Huang, Xu & Yu, "Bidirectional LSTM-CRF Models for Sequence Tagging", 2015 (BiLSTM-CRF);
Lample et al. 2016 (character BiLSTM per word); Ma & Hovy 2016 (character CNN per word); Peters et
al. 2018 (frozen ELMo features, `elmo`: dlcli/models/elmo.py, dlcli/tasks/elmo_features.py).

Letters: B batch, T tokens, U distinct words in the batch, L characters per word, K tags.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dlcli.models.elmo import ElmoFeatures
from dlcli.nn.crf import CRF, scheme_constraints

CHAR_ENCODERS = ("none", "cnn", "lstm")


@dataclass(frozen=True)
class TaggerInputs:
    """What the data decides besides vocabulary and tag counts: tag names (for the CRF's
    scheme constraints), the character vocabulary, and each extra feature column's vocabulary."""

    tags: tuple[str, ...]
    scheme: str
    char_vocab_size: int
    feature_vocab_sizes: tuple[int, ...]
    unk_id: int = 1


class CharEncoder(nn.Module):
    """One vector per distinct word from its characters: CNN + max pool, or BiLSTM final states."""

    def __init__(self, kind: str, vocab_size: int, char_dim: int, char_hidden: int, kernel: int):
        super().__init__()
        self.kind = kind
        self.embedding = nn.Embedding(vocab_size, char_dim, padding_idx=0)
        if kind == "cnn":
            self.conv = nn.Conv1d(char_dim, char_hidden, kernel, padding=kernel // 2)
            self.output_size = char_hidden
        else:
            self.lstm = nn.LSTM(char_dim, char_hidden, batch_first=True, bidirectional=True)
            self.output_size = 2 * char_hidden

    def forward(self, chars: torch.Tensor) -> torch.Tensor:  # chars (U, L), 0 = padding
        emb = self.embedding(chars)  # (U, L, C)
        if self.kind == "cnn":
            hidden = self.conv(emb.transpose(1, 2))  # (U, H, L)
            hidden = hidden.masked_fill((chars == 0).unsqueeze(1), float("-inf"))
            return hidden.amax(2)  # (U, H)
        lengths = (chars != 0).sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)  # h (2, U, H)
        return torch.cat([h[0], h[1]], dim=1)  # (U, 2H)


class TaggerDefaults:
    """What the tag task asks of every tagger, declared once with the BiLSTM's values; a tagger
    lists it first among its bases and overrides what differs. Its output layer, a CRF (`crf`)
    or one softmax per token (crf None), gives the loss and the decoding."""

    reads_pieces = False  # True: forward(piece ids, mask, first) reads WordPiece ids, scores words (bert)
    pretrained: str | None = None  # the model type of a language model it can start from (data.init)
    crf: CRF | None  # set by the tagger (an attribute of the class would hide the submodule)

    def layer_groups(self) -> list[list] | None:
        """The parameters in layers, input first, head last (train.layer_lr_decay), or None."""
        return None

    def start_from(self, pretrained, kwargs: dict) -> None:
        raise ValueError("this tagger has no pretrained start")

    def loss(self, scores: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.crf is not None:
            return self.crf.nll(scores.float(), tags, mask)
        return F.cross_entropy(scores.float()[mask], tags[mask])

    def decode(self, scores: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        if self.crf is not None:
            return self.crf.decode(scores.float(), mask)
        best = scores.argmax(2).tolist()
        return [row[:n] for row, n in zip(best, mask.sum(1).tolist())]


def output_crf(inputs: TaggerInputs, crf: bool, constrained: bool) -> CRF | None:
    """The CRF output layer (None: softmax); `constrained` forbids the moves the tag scheme rules out."""
    if not crf:
        return None
    spans = constrained and inputs.scheme != "none"  # per-token labels have no forbidden moves
    return CRF(len(inputs.tags), scheme_constraints(list(inputs.tags), inputs.scheme) if spans else None)


class BiLSTMTagger(TaggerDefaults, nn.Module):
    def __init__(self, vocab_size: int, num_tags: int, pad_id: int, inputs: TaggerInputs, *,
                 crf: bool, embedding_dim: int = 100, hidden_size: int = 100, num_layers: int = 1,
                 dropout: float = 0.5, char_encoder: str = "none", char_dim: int = 30,
                 char_hidden: int = 30, char_kernel: int = 3, feature_dim: int = 25,
                 word_dropout: float = 0.0, constrained: bool = True, elmo: dict | None = None,
                 elmo_dropout: float = 0.5):
        super().__init__()
        self.word_dropout = word_dropout  # training only: tokens read as unknown, so <unk> gets learned
        self.unk_id = inputs.unk_id
        if char_encoder not in CHAR_ENCODERS:
            raise ValueError(f"char_encoder must be one of {', '.join(CHAR_ENCODERS)}, not {char_encoder!r}")
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.chars = (CharEncoder(char_encoder, inputs.char_vocab_size, char_dim, char_hidden, char_kernel)
                      if char_encoder != "none" else None)
        self.features = nn.ModuleList(nn.Embedding(size, feature_dim, padding_idx=0)
                                      for size in inputs.feature_vocab_sizes)
        # ELMo features (data.elmo): the biLM reads each word spelled from the character table
        self.elmo = ElmoFeatures.for_chars(elmo, elmo_dropout, inputs.char_vocab_size) if elmo else None
        width = embedding_dim + (self.chars.output_size if self.chars else 0) + feature_dim * len(self.features)
        width += self.elmo.output_size if self.elmo is not None else 0
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(width, hidden_size, num_layers=num_layers, batch_first=True, bidirectional=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.project = nn.Linear(2 * hidden_size, num_tags)
        self.crf = output_crf(inputs, crf, constrained)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, chars: torch.Tensor | None = None,
                char_index: torch.Tensor | None = None, features: torch.Tensor | None = None) -> torch.Tensor:
        """Tag scores (B, T, K) for ids (B, T); chars (U, L) spell the batch's distinct words and
        char_index (B, T) points each token at its word; features (B, T, F) are extra columns."""
        if self.training and self.word_dropout > 0:
            drop = torch.rand(ids.shape, device=ids.device) < self.word_dropout
            ids = ids.masked_fill(drop & mask, self.unk_id)
        parts = [self.embedding(ids)]  # (B, T, E)
        if self.chars is not None:
            parts.append(self.chars(chars)[char_index])  # (B, T, C)
        parts.extend(emb(features[:, :, i]) for i, emb in enumerate(self.features))
        x = self.dropout(torch.cat(parts, dim=2) if len(parts) > 1 else parts[0])
        if self.elmo is not None:  # after the input dropout: elmo_dropout is the mixed vector's own
            x = torch.cat([x, self.elmo.from_chars(chars, char_index, mask)], dim=2)  # (B, T, . + 2P)
        lengths = mask.sum(1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        hidden, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=ids.size(1))
        return self.project(self.dropout(hidden))  # (B, T, K)


def bilstm_crf(vocab_size: int, num_tags: int, pad_id: int, inputs: TaggerInputs, *,
               embedding_dim: int = 100, hidden_size: int = 100, num_layers: int = 1, dropout: float = 0.5,
               char_encoder: str = "none", char_dim: int = 30, char_hidden: int = 30, char_kernel: int = 3,
               feature_dim: int = 25, word_dropout: float = 0.0, constrained: bool = True,
               elmo: dict | None = None, elmo_dropout: float = 0.5) -> BiLSTMTagger:
    """BiLSTM + CRF; `constrained` forbids the transitions the tag scheme rules out."""
    return BiLSTMTagger(vocab_size, num_tags, pad_id, inputs, crf=True, embedding_dim=embedding_dim,
                        hidden_size=hidden_size, num_layers=num_layers, dropout=dropout,
                        char_encoder=char_encoder, char_dim=char_dim, char_hidden=char_hidden,
                        char_kernel=char_kernel, feature_dim=feature_dim, word_dropout=word_dropout,
                        constrained=constrained, elmo=elmo, elmo_dropout=elmo_dropout)


def bilstm_softmax(vocab_size: int, num_tags: int, pad_id: int, inputs: TaggerInputs, *,
                   embedding_dim: int = 100, hidden_size: int = 100, num_layers: int = 1, dropout: float = 0.5,
                   char_encoder: str = "none", char_dim: int = 30, char_hidden: int = 30, char_kernel: int = 3,
                   feature_dim: int = 25, word_dropout: float = 0.0, elmo: dict | None = None,
                   elmo_dropout: float = 0.5) -> BiLSTMTagger:
    """BiLSTM + independent softmax per token."""
    return BiLSTMTagger(vocab_size, num_tags, pad_id, inputs, crf=False, embedding_dim=embedding_dim,
                        hidden_size=hidden_size, num_layers=num_layers, dropout=dropout,
                        char_encoder=char_encoder, char_dim=char_dim, char_hidden=char_hidden,
                        char_kernel=char_kernel, feature_dim=feature_dim, word_dropout=word_dropout,
                        elmo=elmo, elmo_dropout=elmo_dropout)
