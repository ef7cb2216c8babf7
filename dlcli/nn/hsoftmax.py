"""Hierarchical softmax over a Huffman tree of label frequencies (Morin & Bengio 2005; fastText).

Frequent labels get short paths, so training touches O(log C) output rows per example. Each
label's probability is the product of binary decisions sigma(+-w_node . h) along its root-to-leaf
path; the C probabilities sum to one, so `log_probs` can stand in for logits wherever a softmax
follows.
"""

from __future__ import annotations

import heapq

import torch
import torch.nn.functional as F


def huffman_paths(counts: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(paths, codes, depths) for C >= 2 labels: paths (C, D) internal-node ids 0..C-2 from the
    root down, codes (C, D) the branch taken (1 or 0), depths (C,); rows are zero-padded to D.
    Ties break on node id, so a tree depends only on the counts."""
    num = len(counts)
    if num < 2:
        raise ValueError("hierarchical softmax needs at least two labels")
    heap = [(int(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    parent, branch = [0] * (2 * num - 1), [0] * (2 * num - 1)
    next_id = num
    while len(heap) > 1:
        (c1, a), (c2, b) = heapq.heappop(heap), heapq.heappop(heap)
        parent[a] = parent[b] = next_id
        branch[b] = 1
        heapq.heappush(heap, (c1 + c2, next_id))
        next_id += 1
    root = next_id - 1
    walks = []
    for leaf in range(num):
        nodes, bits, node = [], [], leaf
        while node != root:
            nodes.append(parent[node] - num)
            bits.append(branch[node])
            node = parent[node]
        walks.append((nodes[::-1], bits[::-1]))
    depth = max(len(n) for n, _ in walks)
    paths = torch.zeros(num, depth, dtype=torch.long)
    codes = torch.zeros(num, depth)
    depths = torch.tensor([len(n) for n, _ in walks], dtype=torch.long)
    for leaf, (nodes, bits) in enumerate(walks):
        paths[leaf, : len(nodes)] = torch.tensor(nodes)
        codes[leaf, : len(bits)] = torch.tensor(bits, dtype=torch.float)
    return paths, codes, depths


def log_probs(hidden: torch.Tensor, nodes: torch.Tensor, paths: torch.Tensor, codes: torch.Tensor,
              depths: torch.Tensor) -> torch.Tensor:
    """(B, C) log-probabilities of every label from hidden (B, H) and node vectors (C-1, H)."""
    scores = hidden @ nodes.t()  # (B, C-1)
    signs = codes * 2 - 1  # branch 1 -> sigma(+s), branch 0 -> sigma(-s)
    on_path = torch.arange(paths.shape[1], device=paths.device) < depths.unsqueeze(1)  # (C, D)
    steps = F.logsigmoid(scores[:, paths] * signs)  # (B, C, D)
    return (steps * on_path).sum(-1)
