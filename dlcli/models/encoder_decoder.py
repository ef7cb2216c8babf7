"""What the seq2seq task asks of its models, declared once: every encoder-decoder lists
`EncoderDecoderDefaults` among its bases and overrides what differs.

Training reads whole pairs: `model(source, source_mask, target_in)` maps (B, S) source ids, their
(B, S) mask and (B, T) target inputs (the start token, then the target) to (B, T, V) scores of
the next target token. Generation goes through `start`, which encodes the sources once and gives
a `DecoderState` that dlcli/decoding.py feeds a token at a time.
"""

from __future__ import annotations

from typing import Protocol

import torch


class DecoderState(Protocol):
    """Rows being decoded: `step` feeds each row one token and returns the next token's scores
    (R, V) and the row's attention over its source (R, S) or None; `select` keeps, reorders or
    repeats rows (a beam's survivors), with everything computed for them so far."""

    device: torch.device  # where its tensors are

    def step(self, ids: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]: ...

    def select(self, rows: torch.Tensor) -> None: ...


class EncoderDecoderDefaults:
    # Longest source and target the model can read (learned or tabled positions); None: no limit.
    max_source_positions: int | None = None
    max_target_positions: int | None = None

    def start(self, source: torch.Tensor, source_mask: torch.Tensor) -> DecoderState:
        """Encode (B, S) sources and get ready to decode one row for each."""
        raise NotImplementedError
