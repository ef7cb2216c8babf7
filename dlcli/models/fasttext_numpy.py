"""FastText's forward pass in NumPy, for `dlcli classify` without torch.

Importing torch takes about 1.5 s, longer than fastText needs to classify thousands of short
lines; a FastText model is a mean of table rows and one matrix product, which NumPy does at the
same speed. `FastText.forward_bags` (dlcli.models.fasttext) is the reference: both fast paths
here, `scores` and `scores_flat`, are held to it by tests/unit/test_fasttext_parity.py. The
output layer is shared with it (`hsoftmax.log_probs` runs on NumPy arrays); only the mean of each
bag is computed again, because torch's embedding_bag is what this module exists to avoid.
"""

from __future__ import annotations

import numpy as np

from dlcli.nn.hsoftmax import log_probs
from dlcli.nn.huffman import huffman_paths

LOSSES = ("softmax", "hs", "ova")  # the losses `scores` implements
BLOCK = 8192  # ids gathered at once: a (BLOCK, H) block, however long a bag is
OPTIONS = ("embedding_dim", "loss")  # FastText's kwargs it honours (embedding_dim is the table's width)


class FastTextScorer:
    def __init__(self, state: dict[str, np.ndarray], kwargs: dict):
        reason = self.unsupported(kwargs)
        if reason:  # scoring without an option would give other numbers than the torch model, silently
            raise ValueError(reason)
        self.table = state["embedding.weight"]  # (V, H), memory-mapped from the checkpoint
        self.output = np.ascontiguousarray(state["output"], dtype=np.float32)  # (C, H) or (C-1, H) for hs
        self.loss = kwargs.get("loss", "softmax")
        if self.loss == "hs":
            self.tree = huffman_paths(state["label_counts"].tolist())

    @staticmethod
    def unsupported(kwargs: dict) -> str | None:
        """Why this scorer cannot stand in for the FastText model built from `kwargs` (a
        checkpoint's model kwargs), or None when it can."""
        unknown = sorted(str(k) for k in kwargs if k not in OPTIONS)
        if unknown:
            return f"the NumPy FastText scorer does not implement {', '.join(unknown)}"
        loss = kwargs.get("loss", "softmax")
        if loss not in LOSSES:
            return f"the NumPy FastText scorer does not implement loss {loss!r}"
        return None

    @property
    def rows(self) -> int:
        return self.table.shape[0]

    @property
    def num_labels(self) -> int:
        return len(self.output) + (self.loss == "hs")

    @property
    def output_activation(self) -> str:
        return "sigmoid" if self.loss == "ova" else "softmax"

    def scores(self, bags: list) -> np.ndarray:
        """(N, C) float32 logits (softmax, ova) or log-probabilities (hs) of N bags of ids."""
        hidden = np.zeros((len(bags), self.table.shape[1]), dtype=np.float32)  # an empty bag stays zero
        take = self.table.take
        for row, bag in zip(hidden, bags):  # one small gather per bag: one big one would page in a fresh array
            if len(bag):
                # mode "clip" skips the bounds check (half the time); ids come from the checkpoint's own
                # vocabulary, whose size the table matches (checked when loading)
                np.add.reduce(take(bag[:BLOCK], 0, mode="clip"), 0, out=row)
                for start in range(BLOCK, len(bag), BLOCK):  # a long bag in blocks: memory stays flat
                    row += np.add.reduce(take(bag[start : start + BLOCK], 0, mode="clip"), 0)
                row /= len(bag)
        return self._output(hidden)

    def scores_flat(self, flat: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """`scores` of the bags laid one after another in `flat`, compiled (numba)."""
        from dlcli.kernels.bag_means import bag_means  # here, not at the top: numba costs 0.5 s to import

        return self._output(bag_means(self.table, flat, sizes))

    def _output(self, hidden: np.ndarray) -> np.ndarray:
        """The output layer of both paths, as FastText.forward_bags computes it."""
        if self.loss == "hs":
            return log_probs(hidden, self.output, *self.tree)
        return hidden @ self.output.T
