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

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class RNNLanguageModel(nn.Module):
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

