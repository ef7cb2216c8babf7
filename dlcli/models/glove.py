"""GloVe (Pennington, Socher and Manning, "GloVe: Global Vectors for Word Representation", EMNLP 2014).

Weighted least squares on the log co-occurrence counts: f(x) (w_i . w~_j + b_i + b~_j - log x)^2
with f(x) = min(1, (x / x_max)^alpha). The counts come from the corpus over a symmetric window
weighted 1/distance (dlcli/text/cooccurrence.py, within `count_memory_mb`, spilling to disk); it
trains with `train.optimizer: hogwild_adagrad`, the lock-free AdaGrad of dlcli/kernels/glove.py,
whose squared-gradient sums are buffers here so that a resumed run continues them.
"""

from __future__ import annotations

import numpy as np

from dlcli.models.embedding import EmbeddingTables, draw_generator

OUTPUTS = ("sum", "input")


class GloVe(EmbeddingTables):
    trains_on = "cooccurrence"
    tables = {"embedding.weight": "embedding", "context": "context", "bias": "bias", "context_bias": "context_bias",
              "grad_sq": "grad_sq", "context_grad_sq": "context_grad_sq", "bias_grad_sq": "bias_grad_sq",
              "context_bias_grad_sq": "context_bias_grad_sq"}
    buffers = frozenset({"grad_sq", "context_grad_sq", "bias_grad_sq", "context_bias_grad_sq"})

    def __init__(self, vocab_size: int, *, embedding_dim: int = 50, window: int = 15, x_max: float = 10.0,
                 alpha: float = 0.75, output: str = "sum", count_memory_mb: float = 256.0):
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
        if window < 1 or embedding_dim < 1 or x_max <= 0 or count_memory_mb <= 0:
            raise ValueError("window and embedding_dim must be >= 1, x_max and count_memory_mb above 0")
        self.window, self.x_max, self.alpha, self.output = window, x_max, alpha, output
        self.count_memory_mb = count_memory_mb
        self.embedding = np.zeros((vocab_size, embedding_dim), np.float32)  # W
        self.context = np.zeros((vocab_size, embedding_dim), np.float32)  # W~
        self.bias = np.zeros(vocab_size, np.float32)
        self.context_bias = np.zeros(vocab_size, np.float32)
        # AdaGrad's sums of squared gradients
        self.grad_sq, self.context_grad_sq = np.ones_like(self.embedding), np.ones_like(self.context)
        self.bias_grad_sq, self.context_bias_grad_sq = np.ones_like(self.bias), np.ones_like(self.context_bias)

    def fit_counts(self, counts: np.ndarray) -> None:
        """glove.c's start: every weight uniform in (-0.5, 0.5) / dim, AdaGrad's sums at 1."""
        rng = draw_generator()
        for table in (self.embedding, self.context, self.bias, self.context_bias):
            rng.random(table.shape, dtype=np.float32, out=table)
            table -= 0.5
            table /= self.embedding.shape[1]
        for table in (self.grad_sq, self.context_grad_sq, self.bias_grad_sq, self.context_bias_grad_sq):
            table[:] = 1.0

    def vectors(self) -> np.ndarray:
        return self.embedding + self.context if self.output == "sum" else self.embedding

    def hogwild_step(self, batch: dict, lr: float, threads: int, seed: int) -> float:
        """AdaGrad over the co-occurrence entries batch["order"] of batch["entries"], in place;
        returns their mean cost. Its order was drawn already: `seed` is not needed."""
        from dlcli.kernels.glove import glove_epoch

        entries = batch["entries"]
        return glove_epoch(self.embedding, self.context, self.bias, self.context_bias, self.grad_sq,
                           self.context_grad_sq, self.bias_grad_sq, self.context_bias_grad_sq, entries.rows,
                           entries.cols, entries.values, batch["order"], self.x_max, self.alpha, lr, threads)
