"""ELMo: a bidirectional LSTM language model over character-CNN word representations, and its
layers mixed as frozen features for a classifier or tagger.

Peters et al. 2018, "Deep contextualized word representations" (NAACL), after Jozefowicz et al.
2016's CNN-BIG-LSTM: each word's UTF-8 bytes between begin- and end-of-word markers go through a
byte embedding, convolutions of several widths max-pooled over the word (Kim, Jernite, Sontag &
Rush 2016), highway layers (Srivastava et al. 2015) and a projection; then, per direction, stacked
LSTMs whose states are projected back to the token width (LSTMP, Sak et al. 2014: torch's
`proj_size`), with a residual connection from the second layer on. One softmax over the word
vocabulary, shared by the directions, scores the next word (forward) and the previous one
(backward). Bytes rather than a character table, as the released ELMo reads: nothing is unknown.

`softmax_samples` > 0 trains with a sampled softmax instead (Jean et al. 2015, as bilm-tf does):
each step scores the targets against that many words drawn log-uniformly over the vocabulary's
frequency ranks, shared by the batch, their logits corrected by their expected counts; a sample
equal to a row's target is left out of that row. On a CPU the full softmax over 30k words took
three quarters of a step. Scoring and evaluation always use the full softmax.

Downstream (`ElmoFeatures`) the biLM is frozen and its L + 1 layers (layer 0 the token
representation twice, then each LSTM layer's [forward; backward] states) are mixed by
softmax-normalised scalar weights times gamma (the paper's eq. 1).

Letters: U distinct words, S bytes a word is read as (markers included), B batch, N positions,
E byte embedding, F filters of all widths, P projection (each direction's width), H LSTM cells,
L LSTM layers per direction, V word vocabulary, C a tagger's characters.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from dlcli.models.language_model import LanguageModelDefaults

# Byte ids: 0 pads, byte b is b + 1 (the task's encoding, dlcli/text/chars.py), then the markers.
BOW, EOW, BOUNDARY = 257, 258, 259  # BOUNDARY spells the end token (an empty word) between the markers
BYTE_TABLE = 260
SOFTMAX_ROWS = 4096  # positions scored against the whole vocabulary at once: bounds the logits' memory
DEFAULT_FILTERS = ((1, 32), (2, 32), (3, 64), (4, 128), (5, 256))  # (width, filters)
BILM_KNOBS = ("max_chars", "char_dim", "filters", "highway_layers", "hidden_size", "projection_size", "num_layers")


def spelled(chars: torch.Tensor, max_chars: int, min_width: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Byte ids (U, S) between BOW and EOW, cut to `max_chars` with the markers, and each word's
    length with them (U,), from bytes + 1 (U, L) packed to the left, 0 padding. An empty row, the
    end token, reads as BOW BOUNDARY EOW. S is the longest word's length, at least `min_width`."""
    n = (chars > 0).sum(1).clamp(max=max_chars - 2)  # (U,)
    empty = n == 0
    length = n + 2 + empty.long()
    width = max(int(length.max()) if len(n) else 3, min_width)
    out = torch.zeros(len(n), width, dtype=torch.long, device=chars.device)
    body = chars[:, : width - 2].long()
    out[:, 1:1 + body.size(1)] = body
    keep = torch.arange(width, device=chars.device) < (n + 1)[:, None]
    out = out * keep
    out[:, 0] = BOW
    out[empty, 1] = BOUNDARY
    out[torch.arange(len(n), device=chars.device), length - 1] = EOW
    return out, length


class TokenEncoder(nn.Module):
    """Words -> (U, P): byte embeddings, convolutions max-pooled over each word's own windows
    (never over padding, so a word's vector does not depend on its batch), highway layers, projection."""

    def __init__(self, max_chars: int, char_dim: int, filters, highway_layers: int, output_size: int):
        super().__init__()
        self.max_chars = max_chars
        self.embedding = nn.Embedding(BYTE_TABLE, char_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(char_dim, count, width) for width, count in filters)
        width = sum(count for _, count in filters)
        self.highways = nn.ModuleList(nn.Linear(width, 2 * width) for _ in range(highway_layers))
        for layer in self.highways:  # the gate starts mostly closed: the layer carries its input (bilm-tf's -2)
            nn.init.constant_(layer.bias[width:], -2.0)
        self.projection = nn.Linear(width, output_size)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        widest = max(conv.kernel_size[0] for conv in self.convs)
        ids, length = spelled(chars, self.max_chars, widest)  # (U, S), (U,)
        x = self.embedding(ids).transpose(1, 2)  # (U, E, S)
        pooled = []
        for conv in self.convs:
            h = conv(x)  # (U, F_k, S - k + 1)
            last = (length - conv.kernel_size[0]).clamp(min=0)  # the last window starting inside the word
            outside = torch.arange(h.size(2), device=h.device)[None, :] > last[:, None]
            pooled.append(torch.relu(h.masked_fill(outside[:, None, :], float("-inf")).amax(2)))  # (U, F_k)
        x = torch.cat(pooled, 1)  # (U, F)
        for layer in self.highways:
            transform, gate = layer(x).chunk(2, dim=1)
            gate = torch.sigmoid(gate)
            x = gate * torch.relu(transform) + (1 - gate) * x
        return self.projection(x)  # (U, P)


def reversal(mask: torch.Tensor) -> torch.Tensor:
    """(B, N) positions that reverse each row's first `length` items and keep its padding in place."""
    length = mask.sum(1, keepdim=True)
    t = torch.arange(mask.size(1), device=mask.device)[None, :]
    return torch.where(t < length, length - 1 - t, t)


def flip(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    return x.gather(1, order[:, :, None].expand_as(x))


class BiLM(nn.Module):
    """The token encoder and L LSTMP layers per direction: what the language model and the
    downstream features share. Each row is read on its own; padding sits after a row's positions
    in both directions, so it never reaches them."""

    def __init__(self, *, max_chars: int = 50, char_dim: int = 16, filters=DEFAULT_FILTERS,
                 highway_layers: int = 2, hidden_size: int = 512, projection_size: int = 128,
                 num_layers: int = 2, dropout: float = 0.0):
        super().__init__()
        if max_chars < 3:
            raise ValueError(f"max_chars: a word needs its markers and a byte, so at least 3, got {max_chars}")
        if not filters or any(len(f) != 2 or min(f) < 1 for f in filters):
            raise ValueError(f"filters: [width, count] pairs of positive numbers, got {filters!r}")
        if min(hidden_size, projection_size, num_layers) < 1:
            raise ValueError("hidden_size, projection_size and num_layers must be at least 1")
        if projection_size >= hidden_size:
            raise ValueError(f"projection_size ({projection_size}) must be below hidden_size ({hidden_size})")
        self.tokens = TokenEncoder(max_chars, char_dim, [tuple(f) for f in filters], highway_layers, projection_size)
        P = projection_size
        self.forward_layers = nn.ModuleList(nn.LSTM(P, hidden_size, batch_first=True, proj_size=P)
                                            for _ in range(num_layers))
        self.backward_layers = nn.ModuleList(nn.LSTM(P, hidden_size, batch_first=True, proj_size=P)
                                             for _ in range(num_layers))
        self.drop = nn.Dropout(dropout)
        self.num_layers, self.width = num_layers, P

    def forward(self, chars: torch.Tensor, word_index: torch.Tensor, mask: torch.Tensor):
        """The token representations (B, N, P) and each direction's layers, L x (B, N, P), for
        words spelled by chars (U, L') at word_index (B, N)."""
        x = self.tokens(chars)[word_index]  # (B, N, P)
        order = reversal(mask)
        forward = self._stack(self.forward_layers, x)
        backward = [flip(h, order) for h in self._stack(self.backward_layers, flip(x, order))]
        return x, forward, backward

    def _stack(self, layers: nn.ModuleList, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for i, lstm in enumerate(layers):
            with warnings.catch_warnings():  # torch says, each call, that oneDNN has no LSTMP kernel
                warnings.filterwarnings("ignore", "LSTM with projections", UserWarning)
                h, _ = lstm(self.drop(x))  # (B, N, P)
            x = h + x if i > 0 else h  # residual from the second layer on
            outputs.append(x)
        return outputs

    def layers(self, chars: torch.Tensor, word_index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(L + 1, B, N, 2P): the token layer twice, then each layer's [forward; backward] states."""
        x, forward, backward = self(chars, word_index, mask)
        return torch.stack([torch.cat([x, x], -1), *(torch.cat(pair, -1) for pair in zip(forward, backward))])


class ELMo(LanguageModelDefaults, nn.Module):
    """The biLM and one softmax over the word vocabulary (task lm, a bidirectional model that reads words)."""

    bidirectional = True

    def __init__(self, vocab_size: int, *, max_chars: int = 50, char_dim: int = 16,
                 filters: list[list[int]] = DEFAULT_FILTERS, highway_layers: int = 2, hidden_size: int = 512,
                 projection_size: int = 128, num_layers: int = 2, dropout: float = 0.1, softmax_samples: int = 0):
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout: must be in [0, 1), got {dropout}")
        if softmax_samples < 0:
            raise ValueError(f"softmax_samples: 0 (the full softmax) or more, got {softmax_samples}")
        self.samples = softmax_samples
        self.bilm = BiLM(max_chars=max_chars, char_dim=char_dim, filters=filters, highway_layers=highway_layers,
                         hidden_size=hidden_size, projection_size=projection_size, num_layers=num_layers,
                         dropout=dropout)
        self.softmax = nn.Linear(projection_size, vocab_size)
        nn.init.normal_(self.softmax.weight, std=projection_size ** -0.5)
        nn.init.zeros_(self.softmax.bias)

    @property
    def word_bytes(self) -> int:
        return self.bilm.tokens.max_chars - 2

    @property
    def num_layers(self) -> int:
        return self.bilm.num_layers

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, chars: torch.Tensor,
                word_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Losses (nats, (B, N - 1) each, 0 where there is no target) of ids[:, t + 1] read
        forwards up to t, and of ids[:, t] read backwards from t + 1."""
        _, forward, backward = self.bilm(chars, word_index, mask)
        valid = mask[:, 1:]  # (B, N - 1): both positions t and t + 1 are in the row
        return (self._losses(forward[-1][:, :-1], ids[:, 1:], valid),
                self._losses(backward[-1][:, 1:], ids[:, :-1], valid))

    def _losses(self, h: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        rows, wanted = self.bilm.drop(h[valid]), target[valid]  # (n, P), (n,)
        if self.training and self.samples:
            losses = [self._sampled_losses(rows, wanted)]
        else:
            losses = [F.cross_entropy(self.softmax(rows[i:i + SOFTMAX_ROWS]).float(), wanted[i:i + SOFTMAX_ROWS],
                                      reduction="none") for i in range(0, len(rows), SOFTMAX_ROWS)]
        out = torch.zeros(valid.shape, dtype=torch.float32, device=h.device)
        if losses:
            out[valid] = torch.cat(losses)
        return out

    def _sampled_losses(self, rows: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
        V, K = self.softmax.out_features, self.samples
        log_range = float(torch.log(torch.tensor(V + 1.0)))
        samples = (torch.exp(torch.rand(K, device=rows.device) * log_range).floor().long() - 1).clamp(0, V - 1)

        def log_expected(ids: torch.Tensor) -> torch.Tensor:  # log(K q(k)), q(k) = log((k + 2) / (k + 1)) / log(V + 1)
            k = ids.double()
            return torch.log(K * torch.log1p(1 / (k + 1)) / log_range).float()

        weight, bias = self.softmax.weight, self.softmax.bias
        true = (rows * weight[wanted]).sum(1) + bias[wanted] - log_expected(wanted)  # (n,)
        drawn = torch.addmm(bias[samples] - log_expected(samples), rows, weight[samples].T)  # (n, K)
        drawn = drawn.masked_fill_(samples[None, :] == wanted[:, None], float("-inf"))
        return torch.logaddexp(true, torch.logsumexp(drawn.float(), 1)) - true  # the target's cross-entropy

    def layers(self, ids: torch.Tensor, mask: torch.Tensor, chars: torch.Tensor,
               word_index: torch.Tensor) -> torch.Tensor:
        """(L + 1, B, N, 2P): every layer's vectors of each position (see BiLM.layers)."""
        return self.bilm.layers(chars, word_index, mask)


def bilm_config(kwargs: dict) -> dict:
    """The architecture knobs of an elmo model's builder kwargs: what ElmoFeatures rebuilds it from."""
    return {k: kwargs[k] for k in BILM_KNOBS if k in kwargs}


class ElmoFeatures(nn.Module):
    """A frozen biLM's layers mixed for another model's tokens: gamma x sum_j softmax(w)_j x layer_j,
    then dropout; (B, T, 2P) for tokens (B, T). The biLM always runs in eval mode without gradients.

    Its words come from a table filled before training and saved with the weights: either a
    word vocabulary's bytes (`table` (V, S'), `from_ids`: a classifier's ids) or a character
    table's bytes (`table` (C, 4), `from_chars`: a tagger's spelled words, so unseen words keep
    their spelling). A classifier's words outside its vocabulary keep theirs too: the task gives
    them ids from V on and their spellings (`spell_unseen`, not saved); the classifier's own
    embedding reads them as <unk> (`known`)."""

    CHAR_BYTES = 4  # the most UTF-8 bytes of one character

    def __init__(self, config: dict, dropout: float, table_rows: int, table_width: int):
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"elmo_dropout: must be in [0, 1), got {dropout}")
        self.bilm = BiLM(**bilm_config(config))
        self.bilm.requires_grad_(False)
        self.scalars = nn.Parameter(torch.zeros(self.bilm.num_layers + 1))
        self.gamma = nn.Parameter(torch.ones(()))
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("table", torch.zeros(table_rows, table_width, dtype=torch.int16))
        self.register_buffer("unseen", torch.zeros(0, table_width, dtype=torch.int16), persistent=False)
        self.output_size = 2 * self.bilm.width

    @classmethod
    def for_words(cls, config: dict, dropout: float, vocab_size: int) -> ElmoFeatures:
        """Features of a word vocabulary's ids (a classifier's): the table spells each word."""
        return cls(config, dropout, vocab_size, config["max_chars"] - 2)

    @classmethod
    def for_chars(cls, config: dict, dropout: float, char_vocab_size: int) -> ElmoFeatures:
        """Features of words spelled in a character table's ids (a tagger's): the table spells each character."""
        return cls(config, dropout, char_vocab_size, cls.CHAR_BYTES)

    def train(self, mode: bool = True) -> ElmoFeatures:
        super().train(mode)
        self.bilm.eval()
        return self

    @torch.no_grad()
    def fill(self, bilm_state: dict, spellings: list[list[int]]) -> None:
        """Take a trained biLM's weights and each table row's bytes (+ 1)."""
        self.bilm.load_state_dict(bilm_state)
        self.table.copy_(self._rows(spellings, len(self.table)))

    @torch.no_grad()
    def spell_unseen(self, spellings: list[list[int]]) -> None:
        """The bytes (+ 1) of the words with ids V, V + 1, ... (words outside the vocabulary)."""
        self.unseen = self._rows(spellings, len(spellings)).to(self.table.device)

    def _rows(self, spellings: list[list[int]], count: int) -> torch.Tensor:
        """(count, table width) int16: row r holds spellings[r], cut to the width, zero-padded."""
        rows = torch.zeros(count, self.table.size(1), dtype=torch.int16)
        for row, values in enumerate(spellings):
            values = values[: rows.size(1)]
            rows[row, : len(values)] = torch.tensor(values, dtype=torch.int16)
        return rows

    def known(self, ids: torch.Tensor, unk_id: int) -> torch.Tensor:
        """`ids` with those past the vocabulary (words spelled by `spell_unseen`) as `unk_id`."""
        return ids.masked_fill(ids >= self.table.size(0), unk_id)

    def from_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        words, index = torch.unique(ids, return_inverse=True)
        table = torch.cat([self.table, self.unseen]) if len(self.unseen) else self.table
        return self.mixed(table[words].long(), index, mask)

    def from_chars(self, chars: torch.Tensor, char_index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """chars (U, L'): each distinct word's character ids; char_index (B, T): each token's word."""
        spelling = self.table[chars].long().flatten(1)  # (U, 4L'): bytes, gaps where a character has fewer
        packed = spelling.gather(1, torch.sort((spelling == 0).to(torch.uint8), dim=1, stable=True).indices)
        return self.mixed(packed, char_index, mask)

    def mixed(self, chars: torch.Tensor, word_index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T = word_index.shape
        lengths = mask.sum(1)
        boundary = chars.size(0)  # an empty row: the end token on each side of every sentence
        chars = torch.cat([chars, chars.new_zeros(1, chars.size(1))])
        index = torch.full((B, T + 2), boundary, dtype=torch.long, device=mask.device)
        index[:, 1:T + 1] = torch.where(mask, word_index, boundary)
        inside = torch.arange(T + 2, device=mask.device)[None, :] < (lengths + 2)[:, None]  # (B, T + 2)
        with torch.no_grad():
            layers = self.bilm.layers(chars, index, inside)[:, :, 1:T + 1]  # (L + 1, B, T, 2P)
        weights = torch.softmax(self.scalars, 0).to(layers.dtype)
        return self.dropout(self.gamma * torch.einsum("l,lbtd->btd", weights, layers))  # (B, T, 2P)
