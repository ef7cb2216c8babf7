"""What the embed task asks of every word-embedding model, declared once with the common values.

An embedding model trains with its own kernel (a `train.optimizer` of steps.KERNEL_STEPS) on one
of two inputs: the corpus itself (word2vec) or its co-occurrence counts (GloVe), and defines
`vectors()`: the (V, D) word vectors it gives (rows 0 and 1, padding and unknown, never train).
"""

from __future__ import annotations

import torch


class EmbeddingDefaults:
    trains_on = "corpus"  # "corpus": sentences of word ids; "cooccurrence": (row, col, count) entries
    window = 5  # context words on each side

    def fit_counts(self, counts: torch.Tensor) -> None:
        """Told the corpus frequency of every vocabulary word before training."""
