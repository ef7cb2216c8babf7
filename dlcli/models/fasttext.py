"""FastText classifier (Joulin et al., "Bag of Tricks for Efficient Text Classification", EACL 2017).

The mean of the input rows (words, plus hashed word and character n-grams when the vocabulary
is `ngrams`) feeds a linear output: a softmax, a hierarchical softmax over a Huffman tree of
label frequencies (`loss: hs`), or one sigmoid per label (`loss: ova`, fastText's multi-label
loss). On CPU with plain SGD the trainer hands batches to `hogwild_step`, fastText's own
per-example lock-free loop; elsewhere (GPU, DDP, other optimizers) the same model trains by autograd.

`FastText.forward_bags` (with `hsoftmax.log_probs` for hs) is the reference forward. The fast
paths compute it again for speed, and tests/unit/test_fasttext_parity.py holds each to it for
every loss: the NumPy scorer (models/fasttext_numpy.py, its compiled bag means in
kernels/bag_means.py) and the SGD kernel (kernels/fasttext_sgd.py, against autograd SGD here).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlcli.models.classifier import ClassifierDefaults
from dlcli.nn.hsoftmax import log_probs
from dlcli.nn.huffman import huffman_paths

LOSSES = ("softmax", "hs", "ova")
INIT_BLOCKS = 8  # row blocks of the table drawn side by side; fixed, so a seed gives one table on any machine


class FastText(ClassifierDefaults, nn.Module):
    bag_input = True  # forward_bags scores unpadded bags

    def __init__(self, vocab_size: int, num_labels: int, pad_id: int, *,
                 embedding_dim: int = 100, loss: str = "softmax"):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {loss!r}")
        if loss == "hs" and num_labels < 2:
            raise ValueError("loss hs needs at least two labels")
        self.loss_kind = loss
        self.pad_id = pad_id
        start = torch.empty(vocab_size, embedding_dim)  # passed in, so nn.Embedding does not draw a normal init first
        uniform_rows(start, 1.0 / embedding_dim)
        start[pad_id] = 0.0
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id, _weight=start)
        rows = num_labels - 1 if loss == "hs" else num_labels
        self.output = nn.Parameter(torch.zeros(rows, embedding_dim))  # fastText starts it at zero, no bias
        # Label frequencies shape the Huffman tree; saved, so a loaded model rebuilds the same tree.
        self.register_buffer("label_counts", torch.ones(num_labels, dtype=torch.long))
        self._tree = None

    @property
    def output_activation(self) -> str:
        return "sigmoid" if self.loss_kind == "ova" else "softmax"

    def fit_labels(self, counts: list[int]) -> None:
        """Set the training label frequencies (before training; the tree follows them)."""
        self.label_counts.copy_(torch.tensor(counts, dtype=torch.long))
        self._tree = None

    def tree(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._tree is None or self._tree[0].device != self.output.device:
            tree = huffman_paths(self.label_counts.tolist())
            self._tree = tuple(torch.from_numpy(t).to(self.output.device) for t in tree)
        return self._tree

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, C) logits (softmax, ova) or log-probabilities (hs): a softmax or sigmoid follows."""
        # Bags of the unpadded ids: padding never counts, and embedding_bag's padding_idx path is ~3x slower.
        lengths = mask.sum(1)
        return self.forward_bags(ids[mask], torch.cumsum(lengths, 0) - lengths)

    def forward_bags(self, flat: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """forward() on the concatenated bags and their start offsets (no padding to build or strip);
        the reference every fast path is tested against. An empty bag's hidden vector is zero."""
        hidden = F.embedding_bag(flat, self.embedding.weight, offsets, mode="mean")
        if self.loss_kind == "hs":
            return log_probs(hidden, self.output, *self.tree())
        return hidden @ self.output.t()

    def hogwild_step(self, bags: dict[str, np.ndarray], lr: float, threads: int, seed: int = 0) -> float:
        """fastText's per-example SGD over a CPU batch of bags (ClassifyTask.collate_bags), in
        place; returns the mean loss. It draws nothing at random: `seed` is not needed."""
        from dlcli.kernels import fasttext_sgd as k

        target = bags["target"]
        kind = {"softmax": k.SOFTMAX, "hs": k.HIERARCHICAL, "ova": k.ONE_VS_ALL}[self.loss_kind]
        if target.ndim == 2:
            labels, multi = np.zeros(len(target), np.int64), target
        elif kind == k.ONE_VS_ALL:
            labels, multi = target, np.eye(len(self.label_counts), dtype=np.float32)[target]
        else:
            labels, multi = target, np.zeros((0, 0), np.float32)
        if kind == k.HIERARCHICAL:
            paths, codes, depths = (t.numpy() for t in self.tree())
        else:
            paths, codes, depths = np.zeros((1, 1), np.int64), np.zeros((1, 1), np.float32), np.zeros(1, np.int64)
        with torch.no_grad():
            return k.sgd_step(self.embedding.weight.detach().numpy(), self.output.detach().numpy(), bags["flat"],
                              bags["starts"], bags["lengths"], kind, labels, multi, paths, codes, depths, lr, threads)


def uniform_rows(table: torch.Tensor, bound: float) -> None:
    """Uniform values in +-bound, drawn in INIT_BLOCKS row blocks on torch's threads by NumPy's
    PCG64: torch's uniform_ fills on one thread (1.6 s for 2M rows), and NumPy's generator, which
    frees the GIL, took 0.6x torch's time on the same blocks. Each block's generator is seeded
    from torch's, so the values depend on the seed, not on timing or the thread count. A meta
    tensor (a model built to receive a checkpoint's tensors) is left as it is: there is nothing to
    fill, and no seed is drawn."""
    if table.is_meta:
        return
    seeds = torch.randint(2**62, (INIT_BLOCKS,)).tolist()

    def fill(block_seed):
        block, seed = block_seed
        values = block.numpy().reshape(-1)
        np.random.default_rng(seed).random(out=values, dtype=np.float32)
        values *= 2 * bound
        values -= bound

    with ThreadPoolExecutor(max(1, min(INIT_BLOCKS, torch.get_num_threads()))) as pool:
        list(pool.map(fill, zip(table.chunk(INIT_BLOCKS), seeds)))
