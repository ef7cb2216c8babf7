"""Length-bucketed batching and padding with masks."""

from __future__ import annotations

from itertools import chain

import numpy as np
import torch

# Sorting within windows of this many batches keeps padding low while order stays random.
BUCKET_WINDOW = 50


def pad(seqs: list[list[int]], pad_id: int, min_length: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists into (B, T) ids and a (B, T) bool mask, T >= min_length."""
    if seqs and isinstance(seqs[0], np.ndarray):  # feature bags (ngrams vocabulary): all in numpy
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        mask = np.arange(max(int(lengths.max()), min_length)) < lengths[:, None]
        block = np.zeros(mask.shape, dtype=np.int64) if pad_id == 0 else np.full(mask.shape, pad_id, dtype=np.int64)
        block[mask] = np.concatenate(seqs)
        return torch.from_numpy(block), torch.from_numpy(mask)
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    width = max(int(lengths.max()) if len(seqs) else 0, min_length)
    mask = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    ids[mask] = torch.tensor(list(chain.from_iterable(seqs)), dtype=torch.long)
    return ids, mask


def concatenate(seqs: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Id sequences as one flat tensor and each one's start offset (embedding_bag's input)."""
    lengths = [len(s) for s in seqs]
    if seqs and isinstance(seqs[0], np.ndarray):
        flat = torch.from_numpy(np.concatenate(seqs).astype(np.int64, copy=False))
    else:
        flat = torch.tensor(list(chain.from_iterable(seqs)), dtype=torch.long)
    offsets = torch.tensor([0, *lengths[:-1]], dtype=torch.long).cumsum(0)
    return flat, offsets


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Indices 0..n-1 in a random order, cut into batches: for models without padding, where
    sorting by length would save nothing and would order each batch's SGD steps by length."""
    order = torch.randperm(n, generator=generator).tolist()
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def bucket_batches(
    lengths: list[int], batch_size: int, generator: torch.Generator | None = None
) -> list[list[int]]:
    """Split example indices into batches of similar length.

    With a generator the examples are shuffled first and the batch order is shuffled after, so
    each epoch differs but depends only on the generator's seed; without one, order is kept
    (sorted by length inside each window) for evaluation.
    """
    n = len(lengths)
    order = torch.randperm(n, generator=generator).tolist() if generator is not None else list(range(n))
    window = batch_size * BUCKET_WINDOW
    batches = []
    for start in range(0, n, window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    if generator is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def token_capped(batches: list[list[int]], lengths: list[int], max_tokens: int) -> list[list[int]]:
    """`batches` with each one split where its padded size (items x longest) would pass
    `max_tokens`, so that a batch of long inputs takes no more memory than one of short ones."""
    out = []
    for batch in batches:
        width = max((lengths[i] for i in batch), default=0)
        size = max(1, max_tokens // max(1, width))
        out.extend(batch[i : i + size] for i in range(0, len(batch), size))
    return out


def split_pieces(seqs: list, size: int | None) -> tuple[list, list[int]]:
    """Sequences longer than `size` cut into the fewest pieces of at most `size` items, of even
    lengths; (the pieces, the index in `seqs` each one comes from). `size` None cuts nothing."""
    if size is None or all(len(s) <= size for s in seqs):
        return list(seqs), list(range(len(seqs)))
    pieces, owners = [], []
    for n, s in enumerate(seqs):
        count = max(1, -(-len(s) // size))
        bounds = [len(s) * k // count for k in range(count + 1)]
        pieces.extend(s[a:b] for a, b in zip(bounds, bounds[1:]))
        owners.extend([n] * count)
    return pieces, owners
