"""Batch normalisation over padded sequences: statistics from the real positions only, with
optional batch renormalisation (Ioffe 2017). Used by the character CNN."""

from __future__ import annotations

import torch
from torch import nn


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d over (B, F, T) whose training statistics count only the True positions of
    mask (B, T); in eval mode it is the plain layer (running statistics, no mask needed).

    With renorm (batch renormalisation, Ioffe 2017) training outputs use the running statistics
    too, corrected by r = sigma_B / sigma, d = (mu_B - mu) / sigma (clipped to rmax, dmax, no
    gradient) while gradients still flow through the batch's own: batches of similar lengths
    (the task buckets them) then cannot teach the layers a length-dependent shift that eval mode,
    with statistics over all lengths, would not apply.
    """

    def __init__(self, num_features: int, renorm: bool = False, rmax: float = 3.0, dmax: float = 5.0):
        super().__init__(num_features)
        self.renorm, self.rmax, self.dmax = renorm, rmax, dmax

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not self.training:
            return super().forward(h)
        weights = mask.unsqueeze(1).to(h.dtype)  # (B, 1, T)
        count = weights.sum().clamp(min=1.0)
        mean = (h * weights).sum((0, 2)) / count  # (F,)
        var = ((h - mean[:, None]) ** 2 * weights).sum((0, 2)) / count  # (F,)
        std = torch.sqrt(var + self.eps)
        h = (h - mean[:, None]) / std[:, None]
        if self.renorm:
            with torch.no_grad():
                running_std = torch.sqrt(self.running_var + self.eps)
                r = (std / running_std).clamp(1.0 / self.rmax, self.rmax)
                d = ((mean - self.running_mean) / running_std).clamp(-self.dmax, self.dmax)
            h = h * r[:, None] + d[:, None]
        if count > 1:
            with torch.no_grad():
                self.num_batches_tracked += 1
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach() * count / (count - 1), self.momentum)
        return h * self.weight[:, None] + self.bias[:, None]
