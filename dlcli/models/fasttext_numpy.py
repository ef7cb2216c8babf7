"""FastText's forward pass in NumPy, for `dlcli classify` without torch.

Importing torch takes about 1.5 s, longer than fastText needs to classify thousands of short
lines; a FastText model is a mean of table rows and one matrix product, which NumPy does at the
same speed. `FastTextScorer.scores` mirrors `FastText.forward_bags`; tests hold the two to the
same probabilities for all three losses.
"""

from __future__ import annotations

import numpy as np

from dlcli.nn.huffman import huffman_paths


class FastTextScorer:
    def __init__(self, state: dict[str, np.ndarray], kwargs: dict):
        self.table = state["embedding.weight"]  # (V, H), memory-mapped from the checkpoint
        self.output = np.ascontiguousarray(state["output"], dtype=np.float32)  # (C, H) or (C-1, H) for hs
        self.loss = kwargs.get("loss", "softmax")
        if self.loss == "hs":
            paths, codes, depths = huffman_paths(state["label_counts"].tolist())
            self.paths, self.signs = paths, codes * 2 - 1  # branch 1 -> sigma(+s), branch 0 -> sigma(-s)
            self.on_path = np.arange(paths.shape[1]) < depths[:, None]  # (C, D)

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
                np.add.reduce(take(bag, 0, mode="clip"), 0, out=row)
                row /= len(bag)
        return self._output(hidden)

    def scores_flat(self, flat: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """`scores` of the bags laid one after another in `flat`, compiled (numba)."""
        from dlcli.kernels.bag_means import bag_means

        return self._output(bag_means(self.table, flat, sizes))

    def _output(self, hidden: np.ndarray) -> np.ndarray:
        scores = hidden @ self.output.T
        if self.loss == "hs":  # log of the products of the branch probabilities along each label's path
            steps = -np.logaddexp(0.0, -scores[:, self.paths] * self.signs, dtype=np.float32)  # (N, C, D)
            return (steps * self.on_path).sum(-1)
        return scores
