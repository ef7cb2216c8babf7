"""A word-level recurrent language model: embedding, stacked LSTM or GRU, softmax over the vocabulary.

Zaremba, Sutskever & Vinyals 2014, "Recurrent Neural Network Regularization": dropout on the
non-recurrent connections only (the embedding's output, between layers, before the softmax) and
every weight drawn uniformly from [-init_range, init_range] (0.1 small, 0.05 medium, 0.04 large).
`tie_weights` shares the embedding with the output layer (Press & Wolf 2017; Inan et al. 2017).

Shapes are time-major, nn.LSTM's own layout: T time steps, B parallel streams, V vocabulary, E
embedding, H hidden. The recurrent state goes in and out of `forward`, so a caller can carry it
from one window of a stream to the next (truncated BPTT, see dlcli/tasks/lm.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from dlcli.models.language_model import LanguageModelDefaults

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class RNNLanguageModel(LanguageModelDefaults, nn.Module):
    def __init__(self, vocab_size: int, *, cell: str = "lstm", embedding_dim: int = 200, hidden_size: int = 200,
                 num_layers: int = 2, dropout: float = 0.0, tie_weights: bool = False, init_range: float = 0.1):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell: {cell!r} is not one of {', '.join(CELLS)}")
        if min(embedding_dim, hidden_size, num_layers) < 1:
            raise ValueError("embedding_dim, hidden_size and num_layers must be at least 1")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout: must be in [0, 1), got {dropout}")
        if tie_weights and embedding_dim != hidden_size:
            raise ValueError(f"tie_weights: the output layer shares the embedding only when embedding_dim == "
                             f"hidden_size, got {embedding_dim} and {hidden_size}")
        self.cell, self.num_layers, self.hidden_size = cell, num_layers, hidden_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = CELLS[cell](embedding_dim, hidden_size, num_layers, dropout=dropout if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        # Tied: the output projection is the embedding matrix itself, one tensor (and one state_dict entry).
        self.output_weight = None if tie_weights else nn.Parameter(torch.empty(vocab_size, hidden_size))
        self.output_bias = nn.Parameter(torch.empty(vocab_size))
        for p in self.parameters():
            nn.init.uniform_(p, -init_range, init_range)

    @property
    def tied(self) -> bool:
        return self.output_weight is None

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> State:
        """The all-zero state a stream starts from."""
        device = device or self.embedding.weight.device
        dtype = self.embedding.weight.dtype
        zeros = torch.zeros(self.num_layers, batch_size, self.hidden_size, device=device, dtype=dtype)
        return (zeros, zeros.clone()) if self.cell == "lstm" else zeros

    @staticmethod
    def detach_state(state: State) -> State:
        """The state cut from the graph of the window that made it (truncated BPTT)."""
        return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()

    def forward(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        x = self.drop(self.embedding(ids))  # (T, B, E)
        h, state = self.rnn(x, state)  # (T, B, H)
        weight = self.embedding.weight if self.tied else self.output_weight
        return F.linear(self.drop(h), weight, self.output_bias), state  # (T, B, V)


    def begin(self, prompts: list[list[int]], capacity: int) -> RNNContinuation:
        return RNNContinuation(self, prompts)


class RNNContinuation:
    """Prompts read side by side as a packed batch (each row's state taken after its own last
    token), then the state carried one token at a time: nothing is recomputed."""

    def __init__(self, model: RNNLanguageModel, prompts: list[list[int]]):
        device = model.embedding.weight.device
        lengths = torch.tensor([len(p) for p in prompts])
        ids = torch.zeros(int(lengths.max()), len(prompts), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[: len(prompt), row] = torch.tensor(prompt, dtype=torch.long)
        x = model.embedding(ids.to(device))
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        _, self.state = model.rnn(packed, model.initial_state(len(prompts), device))
        self.model = model
        self.seen = lengths.to(device)
        top = self.state[0][-1] if isinstance(self.state, tuple) else self.state[-1]  # (B, H): the last layer's output
        self.logits = self._logits(top)

    @property
    def positions_used(self) -> torch.Tensor:
        return self.seen

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        m = self.model
        return F.linear(h, m.embedding.weight if m.tied else m.output_weight, m.output_bias)

    def feed(self, ids: torch.Tensor) -> None:
        h, self.state = self.model.rnn(self.model.embedding(ids[None]), self.state)
        self.seen = self.seen + 1
        self.logits = self._logits(h[0])
