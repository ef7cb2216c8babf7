"""Hierarchical softmax over a Huffman tree of label frequencies (Morin & Bengio 2005; fastText).

The tree comes from `dlcli.nn.huffman`; training touches O(log C) output rows per example. Each
label's probability is the product of binary decisions sigma(+-w_node . h) along its root-to-leaf
path; the C probabilities sum to one, so `log_probs` can stand in for logits wherever a softmax
follows. `log_probs` takes torch tensors (the FastText model, autograd flows) or NumPy arrays
(the torch-free scorer), so both score with one formula; this module imports torch only when
handed tensors, since the NumPy scorer exists to avoid torch's import time.
"""

from __future__ import annotations

import numpy as np


def log_probs(hidden, nodes, paths, codes, depths):
    """(B, C) log-probabilities of every label from hidden (B, H) and node vectors (C-1, H), with
    the tree's paths, codes (C, D) and depths (C,) from `huffman_paths`; all tensors or all
    NumPy arrays (float32 out)."""
    scores = hidden @ nodes.T  # (B, C-1)
    signs = codes * 2 - 1  # branch 1 -> sigma(+s), branch 0 -> sigma(-s)
    branches = scores[:, paths] * signs  # (B, C, D)
    if isinstance(hidden, np.ndarray):
        on_path = np.arange(paths.shape[1]) < depths[:, None]  # (C, D)
        steps = -np.logaddexp(np.float32(0.0), -branches, dtype=np.float32)
    else:
        import torch

        on_path = torch.arange(paths.shape[1], device=paths.device) < depths[:, None]
        steps = torch.nn.functional.logsigmoid(branches)
    return (steps * on_path).sum(-1)
