"""Huffman trees over counts, as NumPy arrays (no torch: the torch-free FastText scorer and the
training kernels read them directly).

Frequent items get short paths, so a hierarchical softmax (Morin & Bengio 2005; fastText,
word2vec) touches O(log C) output rows per example.
"""

from __future__ import annotations

import heapq

import numpy as np


def huffman_paths(counts: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(paths, codes, depths) for C >= 2 items: paths (C, D) int64 internal-node ids 0..C-2 from
    the root down, codes (C, D) float32 the branch taken (1 or 0), depths (C,) int64; rows are
    zero-padded to D. Ties break on node id, so a tree depends only on the counts."""
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
    depths = np.array([len(n) for n, _ in walks], dtype=np.int64)
    paths = np.zeros((num, int(depths.max())), dtype=np.int64)
    codes = np.zeros((num, int(depths.max())), dtype=np.float32)
    for leaf, (nodes, bits) in enumerate(walks):
        paths[leaf, : len(nodes)] = nodes
        codes[leaf, : len(bits)] = bits
    return paths, codes, depths
