"""Hierarchical softmax over a Huffman tree of label frequencies (Morin & Bengio 2005; fastText).

The tree comes from `dlcli.nn.huffman`; training touches O(log C) output rows per example. Each
label's probability is the product of binary decisions sigma(+-w_node . h) along its root-to-leaf
path; the C probabilities sum to one, so `log_probs` can stand in for logits wherever a softmax
follows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def log_probs(hidden: torch.Tensor, nodes: torch.Tensor, paths: torch.Tensor, codes: torch.Tensor,
              depths: torch.Tensor) -> torch.Tensor:
    """(B, C) log-probabilities of every label from hidden (B, H) and node vectors (C-1, H)."""
    scores = hidden @ nodes.t()  # (B, C-1)
    signs = codes * 2 - 1  # branch 1 -> sigma(+s), branch 0 -> sigma(-s)
    on_path = torch.arange(paths.shape[1], device=paths.device) < depths.unsqueeze(1)  # (C, D)
    steps = F.logsigmoid(scores[:, paths] * signs)  # (B, C, D)
    return (steps * on_path).sum(-1)
