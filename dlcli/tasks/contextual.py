"""Contextual vectors as `dlcli embed` prints them, one implementation for every encoder (a bert,
task mlm; an elmo, task lm): a line's vector pooled from its tokens', or every token's vector.

Options: `tokens` (one vector per token), `pool` (cls: the first position's; mean: over the
line's positions), `normalize` (unit length).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dlcli.nn.pooling import masked_mean

DIGITS = 6  # decimals of printed vectors


def rounded(matrix: torch.Tensor) -> list:
    return np.round(matrix.cpu().numpy().astype(np.float64), DIGITS).tolist()


def vector_records(hidden: torch.Tensor, mask: torch.Tensor, tokens: list[list[str]] | None,
                   options: dict) -> list[dict]:
    """Per row of hidden (B, T, D) over its True positions in mask (B, T): {"vector"}, or with
    option `tokens` {"tokens", "vectors"} (`tokens` names each row's positions, in order)."""
    if options.get("tokens"):
        if options.get("normalize"):
            hidden = F.normalize(hidden, dim=-1)
        return [{"tokens": names, "vectors": rounded(row[real])} for row, real, names in zip(hidden, mask, tokens)]
    vectors = masked_mean(hidden, mask) if options.get("pool", "cls") == "mean" else hidden[:, 0]
    if options.get("normalize"):
        vectors = F.normalize(vectors, dim=-1)
    return [{"vector": v} for v in rounded(vectors)]
