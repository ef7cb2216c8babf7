"""Masked pooling modules against plain per-text loops over each unpadded slice."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlcli.nn.pooling import GlobalAveragePooling1d, GlobalMaxPooling1d, MaskedMaxPool1d

LENGTHS = [7, 3, 1, 0, 5]  # one empty text: an all-pad row


def padded_batch(lengths: list[int], width: int | None = None, pad_value: float = 1e4, seed: int = 0):
    """x (B, T, H) with `pad_value` at padding (large, so a max that let it in would show), mask (B, T)."""
    g = torch.Generator().manual_seed(seed)
    width = width or max(lengths)
    x = torch.randn(len(lengths), width, 3, generator=g) - 2.0  # mostly negative: zeros must not win
    mask = torch.arange(width) < torch.tensor(lengths).unsqueeze(1)
    return x.masked_fill(~mask.unsqueeze(-1), pad_value), mask


def reference_strided(row: torch.Tensor, k: int, s: int, ceil_mode: bool) -> torch.Tensor:
    """nn.MaxPool1d on one unpadded text (L, H); shorter than k: one window over all of it."""
    if row.size(0) == 0:
        return row
    if row.size(0) < k:
        return row.amax(0, keepdim=True)
    return F.max_pool1d(row.T.unsqueeze(0), k, s, ceil_mode=ceil_mode)[0].T  # (N, H)


@pytest.mark.parametrize(("pool", "reduce"), [(GlobalAveragePooling1d(), lambda r: r.mean(0)),
                                              (GlobalMaxPooling1d(), lambda r: r.amax(0))])
def test_global_pooling_matches_a_loop_over_unpadded_texts(pool, reduce):
    x, mask = padded_batch(LENGTHS)
    got = pool(x, mask)
    assert got.shape == (len(LENGTHS), 3)
    for i, n in enumerate(LENGTHS):
        want = reduce(x[i, :n]) if n else torch.zeros(3)  # an all-pad row pools to zeros, not NaN or -inf
        assert torch.allclose(got[i], want, atol=1e-6), (i, got[i], want)


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize(("k", "s"), [(3, 3), (3, 1), (2, 2), (4, 2), (1, 3), (5, None)])
def test_strided_max_pool_matches_max_pool1d_on_each_unpadded_text(k, s, ceil_mode):
    pool = MaskedMaxPool1d(k, s, ceil_mode=ceil_mode)
    x, mask = padded_batch(LENGTHS)
    got, got_mask = pool(x, mask)
    for i, n in enumerate(LENGTHS):
        want = reference_strided(x[i, :n], k, s or k, ceil_mode)
        assert int(got_mask[i].sum()) == want.size(0) == int(pool.pooled_lengths(torch.tensor(n)))
        assert torch.all(got_mask[i, : want.size(0)])  # the kept positions come first
        assert torch.equal(got[i, : want.size(0)], want), (i, got[i], want)
        assert torch.all(got[i, want.size(0):] == 0)


@pytest.mark.parametrize("pool", [GlobalAveragePooling1d(), GlobalMaxPooling1d(), MaskedMaxPool1d(3, 2),
                                  MaskedMaxPool1d(2, 2, ceil_mode=True)])
def test_pooling_does_not_depend_on_batch_width_or_pad_values(pool):
    x, mask = padded_batch(LENGTHS, width=12, pad_value=0.0)
    garbage = x.masked_fill(~mask.unsqueeze(-1), 5e3)  # the same texts, other values in the padding
    narrow, narrow_mask = x[:, :7], mask[:, :7]  # the batch cut to its longest text
    outs = [pool(*pair) for pair in ((x, mask), (garbage, mask), (narrow, narrow_mask))]
    if isinstance(pool, MaskedMaxPool1d):  # compare the kept positions; a wider batch pools to more
        n = outs[2][1].size(1)
        assert all(torch.equal(m[:, :n], outs[2][1]) and not m[:, n:].any() for _, m in outs)
        outs = [out[:, :n] for out, _ in outs]
    assert torch.allclose(outs[0], outs[1], atol=1e-6) and torch.allclose(outs[0], outs[2], atol=1e-6)


def test_strided_max_pool_of_an_all_pad_batch_and_a_too_short_batch():
    pool = MaskedMaxPool1d(4, 2)
    x, mask = padded_batch([0, 0], width=3)
    out, out_mask = pool(x, mask)
    assert out.shape == (2, 1, 3) and not out_mask.any() and torch.all(out == 0)
    x, mask = padded_batch([2, 1], width=2)  # narrower than the kernel: each text keeps one window
    out, out_mask = pool(x, mask)
    assert out_mask.tolist() == [[True], [True]]
    assert torch.equal(out[:, 0], torch.stack([x[0, :2].amax(0), x[1, 0]]))


@pytest.mark.parametrize("pool", [GlobalAveragePooling1d(), GlobalMaxPooling1d(), MaskedMaxPool1d(2, 1)])
def test_gradients_reach_the_text_and_never_the_padding(pool):
    x, mask = padded_batch(LENGTHS, pad_value=0.0)
    x.requires_grad_(True)
    out = pool(x, mask)
    out = out[0] if isinstance(out, tuple) else out
    out.sum().backward()
    assert torch.all(x.grad[~mask] == 0)
    reached = x.grad.abs().sum(-1) > 0  # (B, T): positions some output depends on
    assert all(reached[i, :n].any() for i, n in enumerate(LENGTHS) if n)
    if isinstance(pool, GlobalAveragePooling1d):
        assert torch.equal(reached, mask)  # a mean reads every position of the text


def test_strided_max_pool_rejects_bad_sizes():
    with pytest.raises(ValueError, match="at least 1"):
        MaskedMaxPool1d(0)
    with pytest.raises(ValueError, match="at least 1"):
        MaskedMaxPool1d(2, 0)
