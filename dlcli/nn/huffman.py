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
    # Every node's parent has a higher id, so one pass down from the root gives each node's depth;
    # then all leaves climb together, one level a step, each writing its path from the bottom up.
    level = [0] * (2 * num - 1)
    for node in range(2 * num - 3, -1, -1):
        level[node] = level[parent[node]] + 1
    parent, branch = np.array(parent, dtype=np.int64), np.array(branch, dtype=np.float32)
    depths = np.array(level[:num], dtype=np.int64)
    paths = np.zeros((num, int(depths.max())), dtype=np.int64)
    codes = np.zeros((num, int(depths.max())), dtype=np.float32)
    leaves, node = np.arange(num), np.arange(num)
    for up in range(int(depths.max())):
        climbing = depths[leaves] > up
        leaves, node = leaves[climbing], node[climbing]
        slot = depths[leaves] - 1 - up
        paths[leaves, slot] = parent[node] - num
        codes[leaves, slot] = branch[node]
        node = parent[node]
    return paths, codes, depths
