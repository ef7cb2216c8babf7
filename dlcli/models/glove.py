"""GloVe (Pennington, Socher and Manning, "GloVe: Global Vectors for Word Representation", EMNLP 2014).

Weighted least squares on the log co-occurrence counts: f(x) (w_i . w~_j + b_i + b~_j - log x)^2
with f(x) = min(1, (x / x_max)^alpha). The counts come from the corpus over a symmetric window
weighted 1/distance (dlcli/text/cooccurrence.py, within `count_memory_mb`, spilling to disk); it
trains with `train.optimizer: hogwild_adagrad`, the lock-free AdaGrad of dlcli/kernels/glove.py,
whose squared-gradient sums are buffers here so that a resumed run continues them.
"""

from __future__ import annotations

import torch
from torch import nn

from dlcli.models.embedding import EmbeddingDefaults

OUTPUTS = ("sum", "input")


class GloVe(EmbeddingDefaults, nn.Module):
    trains_on = "cooccurrence"

    def __init__(self, vocab_size: int, *, embedding_dim: int = 50, window: int = 15, x_max: float = 10.0,
                 alpha: float = 0.75, output: str = "sum", count_memory_mb: float = 256.0):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
        if window < 1 or embedding_dim < 1 or x_max <= 0 or count_memory_mb <= 0:
            raise ValueError("window and embedding_dim must be >= 1, x_max and count_memory_mb above 0")
        self.window, self.x_max, self.alpha, self.output = window, x_max, alpha, output
        self.count_memory_mb = count_memory_mb
        bound = 0.5 / embedding_dim  # glove.c's start: uniform in (-0.5, 0.5) / dim
        self.embedding = nn.Embedding(vocab_size, embedding_dim)  # W
        self.context = nn.Parameter(torch.empty(vocab_size, embedding_dim))  # W~
        self.bias = nn.Parameter(torch.empty(vocab_size))
        self.context_bias = nn.Parameter(torch.empty(vocab_size))
        for tensor in (self.embedding.weight, self.context, self.bias, self.context_bias):
            nn.init.uniform_(tensor, -bound, bound)
        for name, like in (("grad_sq", self.embedding.weight), ("context_grad_sq", self.context),
                           ("bias_grad_sq", self.bias), ("context_bias_grad_sq", self.context_bias)):
            self.register_buffer(name, torch.ones_like(like))  # AdaGrad's sums start at 1, as glove.c's

    def vectors(self) -> torch.Tensor:
        return self.embedding.weight + self.context if self.output == "sum" else self.embedding.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.embedding(ids)
        return rows + self.context[ids] if self.output == "sum" else rows

    def hogwild_step(self, batch: dict, lr: float, threads: int) -> float:
        """AdaGrad over the co-occurrence entries batch["order"] of batch["entries"], in place;
        returns their mean cost."""
        from dlcli.kernels.glove import glove_epoch

        entries = batch["entries"]
        arrays = [t.detach().numpy() for t in (
            self.embedding.weight, self.context, self.bias, self.context_bias,
            self.grad_sq, self.context_grad_sq, self.bias_grad_sq, self.context_bias_grad_sq)]
        with torch.no_grad():
            return glove_epoch(*arrays, entries.rows, entries.cols, entries.values, batch["order"], self.x_max,
                               self.alpha, lr, threads)
