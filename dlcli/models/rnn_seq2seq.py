"""A recurrent encoder-decoder, with or without attention.

Encoder: embeddings, a (bi)directional GRU or LSTM; its outputs are the memory the decoder attends
to, and its last states, joined across directions and squeezed by a tanh layer (the bridge),
start the decoder (Cho et al. 2014; Bahdanau et al. 2015).
Decoder (Luong, Pham & Manning, EMNLP 2015): at step t the RNN reads the previous target token's
embedding (and, with input feeding, the previous attentional state h~), its top state h_t scores
the memory (`attention: additive | dot | general`, see dlcli/nn/attention.py), giving a context
c_t; h~_t = tanh(W [c_t; h_t]) is what predicts the next token. `attention: none` is the classic
encoder-decoder: c_t is the encoder's summary (the bridge's input) at every step.

`hidden_size` is the decoder's width and the encoder's output width (each direction has half of
it when bidirectional), so dot attention always fits. `teacher_forcing` < 1 feeds, at each step
of training and for each row, the model's own best guess instead of the true previous token with
probability 1 - teacher_forcing (scheduled sampling without a schedule, Bengio et al. 2015).

Letters: B batch, S source positions, T target positions, E embedding width, H hidden width, V vocabulary.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dlcli.models.encoder_decoder import EncoderDecoderDefaults
from dlcli.nn.attention import SCORES, QueryAttention

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}
ATTENTION = ("none", *SCORES)


class RNNSeq2Seq(EncoderDecoderDefaults, nn.Module):
    def __init__(self, source_vocab_size: int, target_vocab_size: int, *, cell: str = "gru",
                 embedding_dim: int = 256, hidden_size: int = 512, num_layers: int = 1,
                 bidirectional: bool = True, attention: str = "additive", input_feeding: bool = True,
                 dropout: float = 0.2, teacher_forcing: float = 1.0, tie_embeddings: str = "none"):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
        if attention not in ATTENTION:
            raise ValueError(f"attention must be one of {', '.join(ATTENTION)}, not {attention!r}")
        if bidirectional and hidden_size % 2:
            raise ValueError(f"hidden_size ({hidden_size}) must be even with a bidirectional encoder")
        if not 0 <= teacher_forcing <= 1:
            raise ValueError(f"teacher_forcing must be in [0, 1], got {teacher_forcing}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        check_tying(tie_embeddings, source_vocab_size, target_vocab_size, embedding_dim, hidden_size)
        self.lstm = cell == "lstm"
        self.attention_kind, self.input_feeding, self.teacher_forcing = attention, input_feeding, teacher_forcing
        self.num_layers, self.hidden_size = num_layers, hidden_size
        directions = 2 if bidirectional else 1
        self.directions = directions
        between = dropout if num_layers > 1 else 0.0
        self.source_embedding = nn.Embedding(source_vocab_size, embedding_dim)
        self.target_embedding = (self.source_embedding if tie_embeddings == "all"
                                 else nn.Embedding(target_vocab_size, embedding_dim))
        self.encoder = CELLS[cell](embedding_dim, hidden_size // directions, num_layers, batch_first=True,
                                   bidirectional=bidirectional, dropout=between)
        self.bridge = nn.Linear(hidden_size, hidden_size)
        self.bridge_cell = nn.Linear(hidden_size, hidden_size) if self.lstm else None
        feed = hidden_size if input_feeding else 0
        self.decoder = CELLS[cell](embedding_dim + feed, hidden_size, num_layers, batch_first=True, dropout=between)
        self.attention = None if attention == "none" else QueryAttention(hidden_size, hidden_size, attention)
        self.combine = nn.Linear(2 * hidden_size, hidden_size)
        self.squeeze = nn.Linear(hidden_size, embedding_dim)  # h~ to the output embedding's width
        self.output = nn.Linear(embedding_dim, target_vocab_size)
        if tie_embeddings != "none":
            self.output.weight = self.target_embedding.weight
        self.dropout = nn.Dropout(dropout)

    # ------------------------------------------------------------ encoder

    def encode(self, source: torch.Tensor, source_mask: torch.Tensor):
        """(memory (B, S, H), summary (B, H), initial decoder state)."""
        lengths = source_mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.dropout(self.source_embedding(source)), lengths, batch_first=True,
                                      enforce_sorted=False)
        outputs, last = self.encoder(packed)
        memory, _ = pad_packed_sequence(outputs, batch_first=True, total_length=source.shape[1])
        hidden, cell = last if self.lstm else (last, None)

        def joined(h):  # (layers x directions, B, H / directions) -> (layers, B, H)
            return h.view(self.num_layers, self.directions, *h.shape[1:]).transpose(1, 2).reshape(
                self.num_layers, h.shape[1], self.hidden_size)

        hidden = joined(hidden)
        summary = hidden[-1]
        state = torch.tanh(self.bridge(hidden))
        if self.lstm:
            state = (state, torch.tanh(self.bridge_cell(joined(cell))))
        return memory, summary, state

    # ------------------------------------------------------------ decoder

    def _attend(self, top: torch.Tensor, keys, memory, mask, summary) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(h~ (B, T, H), weights (B, T, S) or None) for top-layer states (B, T, H)."""
        if self.attention is None:
            context, weights = summary.unsqueeze(1).expand_as(top), None
        else:
            context, weights = self.attention(top, keys, memory, mask)
        return torch.tanh(self.combine(torch.cat([context, top], -1))), weights

    def _scores(self, attentional: torch.Tensor) -> torch.Tensor:
        return self.output(self.squeeze(self.dropout(attentional)))

    def forward(self, source: torch.Tensor, source_mask: torch.Tensor, target_in: torch.Tensor) -> torch.Tensor:
        memory, summary, state = self.encode(source, source_mask)
        keys = None if self.attention is None else self.attention.keys(memory)
        if not self.input_feeding and (self.teacher_forcing == 1 or not self.training):
            # no step depends on the last one's output: the whole target in one call
            top, _ = self.decoder(self.dropout(self.target_embedding(target_in)), state)
            attentional, _ = self._attend(top, keys, memory, source_mask, summary)
            return self._scores(attentional)
        B, T = target_in.shape
        feed = memory.new_zeros(B, self.hidden_size)
        token = target_in[:, 0]
        steps = []
        for t in range(T):
            if t and self.training and self.teacher_forcing < 1:
                guess = steps[-1].argmax(-1).squeeze(1)
                own = torch.rand(B, device=token.device) >= self.teacher_forcing
                token = torch.where(own, guess, target_in[:, t])
            elif t:
                token = target_in[:, t]
            scores, feed, state, _ = self._step(token, feed, state, keys, memory, source_mask, summary)
            steps.append(scores)
        return torch.cat(steps, 1)

    def _step(self, token, feed, state, keys, memory, mask, summary, need_weights: bool = False):
        x = self.dropout(self.target_embedding(token)).unsqueeze(1)  # (B, 1, E)
        if self.input_feeding:
            x = torch.cat([x, feed.unsqueeze(1)], -1)
        top, state = self.decoder(x, state)
        attentional, weights = self._attend(top, keys, memory, mask, summary)
        return self._scores(attentional), attentional.squeeze(1), state, weights

    def start(self, source: torch.Tensor, source_mask: torch.Tensor) -> RNNDecoderState:
        memory, summary, state = self.encode(source, source_mask)
        keys = None if self.attention is None else self.attention.keys(memory)
        return RNNDecoderState(self, memory, keys, source_mask, summary, state)


class RNNDecoderState:
    def __init__(self, model: RNNSeq2Seq, memory, keys, mask, summary, state):
        self.model, self.memory, self.keys, self.mask, self.summary = model, memory, keys, mask, summary
        self.state = state
        self.feed = memory.new_zeros(memory.shape[0], model.hidden_size)

    def step(self, ids: torch.Tensor, need_weights: bool = False):
        scores, self.feed, self.state, weights = self.model._step(ids, self.feed, self.state, self.keys, self.memory,
                                                                  self.mask, self.summary)
        return scores.squeeze(1), None if weights is None else weights.squeeze(1)

    @property
    def device(self) -> torch.device:
        return self.mask.device

    def select(self, rows: torch.Tensor) -> None:
        self.memory, self.mask, self.summary, self.feed = (x.index_select(0, rows) for x in (
            self.memory, self.mask, self.summary, self.feed))
        if self.keys is not None:
            self.keys = self.keys.index_select(0, rows)
        if isinstance(self.state, tuple):
            self.state = tuple(s.index_select(1, rows) for s in self.state)
        else:
            self.state = self.state.index_select(1, rows)


TYING = ("none", "decoder", "all")


def check_tying(tie: str, source_vocab_size: int, target_vocab_size: int, *widths: int) -> None:
    """`tie_embeddings`: none; decoder (the target embedding is the output layer's weight); all (the
    source's too, Press & Wolf 2017: needs one shared vocabulary)."""
    if tie not in TYING:
        raise ValueError(f"tie_embeddings must be one of {', '.join(TYING)}, not {tie!r}")
    if tie == "all" and source_vocab_size != target_vocab_size:
        raise ValueError("tie_embeddings all needs one vocabulary for source and target (data.shared_vocab: true)")
