"""What the lm task asks of its models, declared once: every language model lists
`LanguageModelDefaults` first among its bases and overrides what differs.

Two families share the task. A recurrent model (rnn_lm) carries a state from one window of a
stream to the next: `context_length` is None, and it maps time-major (T, B) ids and a state to
(T, B, V) logits and the next state (`initial_state`, `detach_state`). A model that reads a fixed
window (gpt) declares its `context_length` and maps batch-major (B, T) ids to (B, T, V) logits;
the task trains it on independent blocks of the corpus and scores files in sliding windows.

Both generate through `begin`, which dlcli/decoding.py drives one token at a time.

A bidirectional model (elmo) declares `bidirectional`: it reads each line on its own, between the
end token before it and its own, forwards and backwards (see dlcli/tasks/lm_sentences.py). It
maps batch-major (B, N) ids and their mask to two (B, N - 1) losses in nats, 0 where there is no
target: column t of the first scores ids[:, t + 1] read forwards up to t, of the second ids[:, t]
read backwards from t + 1 (in training mode a model may give a sampled-softmax estimate).
`layers` gives its vectors of every position, (layers, B, N, D), and `num_layers` + 1 is how many
layers that is: `dlcli embed` prints them. It does not generate.

A model that reads words' spellings as well as their ids declares `word_bytes` > 0 (only a
bidirectional one, for now): both calls then also take chars (U, L), the UTF-8 bytes + 1 (0 pads;
dlcli/text/chars.py) of each distinct word of the batch as written, at most `word_bytes` of them,
the end token an empty row, and word_index (B, N), each position's row.
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
    bidirectional = False  # True: each line read on its own, both ways; losses, not logits (see above)
    word_bytes = 0  # > 0: also reads each word's first word_bytes UTF-8 bytes (see above)

    def begin(self, prompts: list[list[int]], capacity: int) -> Continuation:
        """Read the prompts (token ids, at least one each; different lengths allowed) and get ready
        to feed up to `capacity` - the longest prompt's length further tokens."""
        raise NotImplementedError
