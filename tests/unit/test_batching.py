"""Padding with masks, and length-bucketed or plainly shuffled batches that cover every example exactly once."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlcli.text.batching import bucket_batches, pad, shuffled_batches


def test_pad_right_pads_and_masks():
    ids, mask = pad([[5, 6, 7], [8], []], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert mask.tolist() == [[True, True, True], [True, False, False], [False, False, False]]
    assert ids.dtype == torch.long and mask.dtype == torch.bool


def test_pad_min_length_widens_and_uses_pad_id():
    ids, mask = pad([[5]], pad_id=3, min_length=4)
    assert ids.tolist() == [[5, 3, 3, 3]]
    assert mask.tolist() == [[True, False, False, False]]


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def flat(batches: list[list[int]]) -> list[int]:
    return [i for batch in batches for i in batch]


lengths_st = st.lists(st.integers(0, 40), min_size=0, max_size=300)


@settings(max_examples=40, deadline=None)
@given(lengths=lengths_st, batch_size=st.integers(1, 17), seed=st.integers(0, 2**31))
def test_every_index_exactly_once(lengths, batch_size, seed):
    for gen in (None, generator(seed)):
        batches = bucket_batches(lengths, batch_size, gen)
        assert sorted(flat(batches)) == list(range(len(lengths)))
        assert all(0 < len(b) <= batch_size for b in batches)


@settings(max_examples=20, deadline=None)
@given(lengths=lengths_st, batch_size=st.integers(1, 17), seed=st.integers(0, 2**31))
def test_same_seed_same_batches(lengths, batch_size, seed):
    assert bucket_batches(lengths, batch_size, generator(seed)) == bucket_batches(lengths, batch_size, generator(seed))


def test_different_seeds_shuffle_differently():
    lengths = list(range(200))
    assert bucket_batches(lengths, 4, generator(1)) != bucket_batches(lengths, 4, generator(2))


def test_without_generator_batches_are_length_sorted_within_the_window():
    lengths = [5, 1, 4, 2, 3, 0]
    batches = bucket_batches(lengths, 2)
    assert batches == [[5, 1], [3, 4], [2, 0]]
    assert [lengths[i] for i in flat(batches)] == sorted(lengths)


def test_bucketing_keeps_padding_low():
    lengths = [i % 50 for i in range(400)]
    batches = bucket_batches(lengths, 8, generator(0))
    spread = max(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    assert spread <= 2


@settings(max_examples=20, deadline=None)
@given(n=st.integers(0, 300), batch_size=st.integers(1, 17), seed=st.integers(0, 2**31))
def test_shuffled_batches_cover_every_index_once_in_full_batches(n, batch_size, seed):
    batches = shuffled_batches(n, batch_size, generator(seed))
    assert sorted(flat(batches)) == list(range(n))
    assert all(len(b) == batch_size for b in batches[:-1]) and all(0 < len(b) <= batch_size for b in batches)
    assert batches == shuffled_batches(n, batch_size, generator(seed))


def test_shuffled_batches_ignore_length_where_buckets_sort_by_it():
    lengths = [i % 50 for i in range(400)]
    spread = max(max(lengths[i] for i in b) - min(lengths[i] for i in b)
                 for b in shuffled_batches(len(lengths), 8, generator(0)))
    assert spread > 20
