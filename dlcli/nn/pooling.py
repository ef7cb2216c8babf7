"""Masked global pooling over time (Keras GlobalAveragePooling1D / GlobalMaxPooling1D semantics)."""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x (B, T, H) over the True positions of mask (B, T); an all-pad row gives zeros."""
    weights = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, H)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max of x (B, T, H) over the True positions of mask (B, T); an all-pad row gives zeros."""
    filled = x.masked_fill(~mask.unsqueeze(-1), torch.finfo(x.dtype).min)
    return torch.where(mask.any(1, keepdim=True), filled.max(1).values, torch.zeros_like(x[:, 0]))


POOLINGS = {"mean": masked_mean, "max": masked_max}
