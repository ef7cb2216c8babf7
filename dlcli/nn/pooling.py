"""Masked pooling over time: global (Keras GlobalAveragePooling1D / GlobalMaxPooling1D semantics)
and strided max pooling. Padding never counts, so a text pools the same whatever it is batched with.

Letters: B batch, T positions, H features, N pooled positions.
"""

from __future__ import annotations

import torch
from torch import nn


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x (B, T, H) over the True positions of mask (B, T); an all-pad row gives zeros."""
    weights = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, H)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max of x (B, T, H) over the True positions of mask (B, T); an all-pad row gives zeros."""
    filled = x.masked_fill(~mask.unsqueeze(-1), torch.finfo(x.dtype).min)
    return torch.where(mask.any(1, keepdim=True), filled.max(1).values, torch.zeros_like(x[:, 0]))


class GlobalAveragePooling1d(nn.Module):
    """(B, T, H), mask (B, T) -> (B, H): the mean over each row's unpadded positions."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_mean(x, mask)


class GlobalMaxPooling1d(nn.Module):
    """(B, T, H), mask (B, T) -> (B, H): the max over each row's unpadded positions."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_max(x, mask)


class GlobalMeanMaxPooling1d(nn.Module):
    """(B, T, H), mask (B, T) -> (B, 2H): the masked mean and max, concatenated."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.cat([masked_mean(x, mask), masked_max(x, mask)], dim=-1)


GLOBAL_POOLINGS = {"mean": GlobalAveragePooling1d, "max": GlobalMaxPooling1d}


class MaskedMaxPool1d(nn.Module):
    """Max over windows of `kernel_size` positions every `stride` (default: kernel_size), per row
    exactly as nn.MaxPool1d on that row's unpadded slice alone, with two differences that keep a
    short text from vanishing: a text shorter than the kernel keeps one window (the max of all of
    it), and only an empty text pools to nothing. `ceil_mode` as in nn.MaxPool1d: also keep a
    last, partial window that starts inside the text.

    forward: x (B, T, H), mask (B, T) holding each text as a prefix -> pooled (B, N, H), zero where
    the new mask (B, N) is False.
    Padding never wins a window, even where every value in it is negative.
    """

    def __init__(self, kernel_size: int, stride: int | None = None, ceil_mode: bool = False):
        super().__init__()
        if kernel_size < 1 or (stride is not None and stride < 1):
            raise ValueError("kernel_size and stride must be at least 1")
        self.kernel_size, self.stride, self.ceil_mode = kernel_size, stride or kernel_size, ceil_mode

    def pooled_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """How many pooled positions a text of each length (any shape) keeps."""
        k, s = self.kernel_size, self.stride
        extra = s - 1 if self.ceil_mode else 0  # floor((L - k + s - 1) / s) = ceil((L - k) / s)
        count = (torch.div(lengths - k + extra, s, rounding_mode="floor") + 1).clamp(min=1)
        if self.ceil_mode:  # as nn.MaxPool1d: no window may start past the text (stride > kernel)
            count = torch.minimum(count, torch.div(lengths - 1, s, rounding_mode="floor") + 1)
        return torch.where(lengths > 0, count, 0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, s = self.kernel_size, self.stride
        lengths = self.pooled_lengths(mask.sum(1))  # (B,)
        steps = max(int(self.pooled_lengths(torch.tensor(x.size(1)))), 1)
        width = (steps - 1) * s + k  # every window complete, so F.max_pool1d needs no ceil logic
        filled = x.masked_fill(~mask.unsqueeze(-1), torch.finfo(x.dtype).min)  # (B, T, H)
        filled = nn.functional.pad(filled, (0, 0, 0, max(0, width - x.size(1))), value=torch.finfo(x.dtype).min)
        pooled = nn.functional.max_pool1d(filled[:, :width].transpose(1, 2), k, s).transpose(1, 2)  # (B, N, H)
        new_mask = torch.arange(steps, device=x.device) < lengths.unsqueeze(1)  # (B, N)
        return pooled.masked_fill(~new_mask.unsqueeze(-1), 0.0), new_mask

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, ceil_mode={self.ceil_mode}"
