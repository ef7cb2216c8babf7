"""What the lm task asks of its models, declared once: every language model lists
`LanguageModelDefaults` first among its bases and overrides what differs.

Two families share the task. A recurrent model (rnn_lm) carries a state from one window of a
stream to the next: `context_length` is None, and it maps time-major (T, B) ids and a state to
(T, B, V) logits and the next state (`initial_state`, `detach_state`). A model that reads a fixed
window (gpt) declares its `context_length` and maps batch-major (B, T) ids to (B, T, V) logits;
the task trains it on independent blocks of the corpus and scores files in sliding windows.

Both generate through `begin`, which dlcli/decoding.py drives one token at a time.
"""

from __future__ import annotations

from typing import Protocol

import torch


class Continuation(Protocol):
    """Rows of text being continued: `logits` (B, V) score each row's next token; `feed` appends
    one token to every row and updates them, reusing what earlier steps computed (a key/value
    cache, a carried recurrent state)."""

    logits: torch.Tensor

    @property
    def positions_used(self) -> torch.Tensor:
        """(B,) tokens each row has read (a model with a context length stops a row at it)."""
        ...

    def feed(self, ids: torch.Tensor) -> None: ...


class LanguageModelDefaults:
    context_length: int | None = None  # None: a recurrent state, no limit on what it reads

    def begin(self, prompts: list[list[int]], capacity: int) -> Continuation:
        """Read the prompts (token ids, at least one each; different lengths allowed) and get ready
        to feed up to `capacity` - the longest prompt's length further tokens."""
        raise NotImplementedError
