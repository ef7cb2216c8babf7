"""RCNN: each word read together with its left and right contexts from a BiLSTM, then max-over-time.

Lai, Xu, Liu & Zhao, "Recurrent Convolutional Neural Networks for Text Classification", AAAI 2015.
The word's representation is x_i = [c_l(w_i); e(w_i); c_r(w_i)], where the left context c_l(w_i)
summarises w_1..w_{i-1} and the right context c_r(w_i) summarises w_{i+1}..w_n; y_i = tanh(W x_i + b);
the text is the element-wise max of y_i over i. The paper's contexts come from a simple bidirectional
recurrence; an LSTM is used here, as in most later reimplementations, because it trains more easily.

Letters: B batch, T tokens, E embedding width, H hidden size per direction, Z latent size, C labels.
"""

from __future__ import annotations

import torch
from torch import nn

from dlcli.models.classifier import ClassifierDefaults
from dlcli.models.rnn import encode_packed
from dlcli.nn.pooling import GlobalMaxPooling1d


class RCNN(ClassifierDefaults, nn.Module):
    def __init__(
        self, vocab_size: int, num_labels: int, pad_id: int, *,
        embedding_dim: int = 128, hidden_size: int = 128, latent_size: int = 100, dropout: float = 0.5,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True, bidirectional=True)
        # the contexts of the first word (nothing on its left) and of the last (nothing on its right):
        # the paper's shared learned c_l(w_1) and c_r(w_n)
        self.left_start = nn.Parameter(torch.zeros(hidden_size))
        self.right_end = nn.Parameter(torch.zeros(hidden_size))
        self.latent = nn.Linear(2 * hidden_size + embedding_dim, latent_size)
        self.pool = GlobalMaxPooling1d()  # max over time, padding excluded
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(latent_size, num_labels)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        e = self.dropout(self.embedding(ids))  # (B, T, E)
        left, right = self._contexts(e, mask)  # 2 x (B, T, H)
        y = torch.tanh(self.latent(torch.cat([left, e, right], dim=-1)))  # (B, T, Z)
        return self.output(self.dropout(self.pool(y, mask)))  # (B, C)

    def _contexts(self, e: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """c_l(w_i) = forward state after w_{i-1}; c_r(w_i) = backward state after w_{i+1}.

        Shifting by one keeps the word itself out of its own contexts, as in the paper: the
        middle slot of x_i is the only place e(w_i) enters.
        """
        states, _ = encode_packed(self.lstm, e, mask)  # (B, T, 2H), zero at padding
        forward, backward = states.chunk(2, dim=-1)  # 2 x (B, T, H)
        B, T, H = forward.shape
        left = torch.cat([self.left_start.expand(B, 1, H), forward[:, :-1]], dim=1)  # (B, T, H)
        right = backward[:, 1:]  # (B, T-1, H)
        right = torch.cat([right, right.new_zeros(B, 1, H)], dim=1)  # (B, T, H)
        last = (mask.sum(1, keepdim=True) - 1).clamp(min=0)  # (B, 1): index of each text's last token
        is_last = torch.arange(T, device=mask.device) == last  # (B, T)
        right = torch.where(is_last.unsqueeze(-1), self.right_end.expand(B, T, H), right)
        return left, right
