"""Reusable layers: EMA shadow weights and masked pooling, against hand-computed values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlcli.nn.ema import EMA
from dlcli.nn.pooling import masked_max, masked_mean


def set_weights(layer: nn.Linear, weight: list[float], bias: float) -> None:
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weight]))
        layer.bias.fill_(bias)


def linear(weight: list[float], bias: float) -> nn.Linear:
    layer = nn.Linear(len(weight), 1)
    set_weights(layer, weight, bias)
    return layer


# ---------------------------------------------------------------- EMA


def test_ema_update_follows_the_formula_with_warmup_decay():
    model = linear([0.0, 0.0], 0.0)
    ema = EMA(model, decay=0.9)
    set_weights(model, [1.0, 2.0], 10.0)
    ema.update(model)  # decay = min(0.9, 2/11)
    d1 = 2 / 11
    assert ema.shadow["weight"].flatten().tolist() == pytest.approx([(1 - d1) * 1.0, (1 - d1) * 2.0])
    assert ema.shadow["bias"].item() == pytest.approx((1 - d1) * 10.0)
    before = ema.shadow["bias"].item()
    set_weights(model, [0.0, 0.0], 20.0)
    ema.update(model)  # decay = min(0.9, 3/12)
    d2 = 3 / 12
    assert ema.shadow["bias"].item() == pytest.approx(d2 * before + (1 - d2) * 20.0)


def test_ema_decay_caps_at_the_configured_value():
    model = linear([0.0], 0.0)
    ema = EMA(model, decay=0.9)
    ema.num_updates = 10_000
    set_weights(model, [1.0], 1.0)
    ema.update(model)
    assert ema.shadow["bias"].item() == pytest.approx(0.1)


def test_ema_shadow_is_a_copy_not_the_parameter():
    model = linear([1.0], 1.0)
    ema = EMA(model, decay=0.5)
    set_weights(model, [5.0], 5.0)
    assert ema.shadow["bias"].item() == 1.0


def test_applied_swaps_in_the_shadow_and_restores():
    model = linear([0.0], 0.0)
    ema = EMA(model, decay=0.9)
    set_weights(model, [3.0], 3.0)
    ema.update(model)
    shadow = ema.shadow["weight"].clone()
    with ema.applied(model):
        assert torch.equal(model.weight, shadow)
    assert model.weight.item() == 3.0 and model.bias.item() == 3.0
    with pytest.raises(RuntimeError), ema.applied(model):
        raise RuntimeError("boom")
    assert model.weight.item() == 3.0  # restored on errors too


def test_ema_state_round_trip():
    model = linear([0.0], 0.0)
    ema = EMA(model, decay=0.9)
    set_weights(model, [4.0], 4.0)
    ema.update(model)
    again = EMA(linear([0.0], 0.0), decay=0.9)
    again.load_state_dict(ema.state_dict())
    assert again.num_updates == 1 and torch.equal(again.shadow["weight"], ema.shadow["weight"])


@pytest.mark.parametrize("decay", [0.0, 1.0, 1.5])
def test_ema_decay_must_be_inside_0_1(decay):
    with pytest.raises(ValueError):
        EMA(linear([0.0], 0.0), decay)


# ---------------------------------------------------------------- pooling


def sample() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor([[[1.0, -2.0], [3.0, -4.0], [100.0, 100.0]],
                      [[-5.0, -6.0], [-1.0, -9.0], [100.0, 100.0]],
                      [[100.0, 100.0], [100.0, 100.0], [100.0, 100.0]]])  # (B=3, T=3, H=2)
    mask = torch.tensor([[True, True, False], [True, True, False], [False, False, False]])
    return x, mask


def test_masked_mean_ignores_padding():
    x, mask = sample()
    assert masked_mean(x, mask).tolist() == [[2.0, -3.0], [-3.0, -7.5], [0.0, 0.0]]


def test_masked_max_ignores_padding_even_when_all_values_are_negative():
    x, mask = sample()
    assert masked_max(x, mask).tolist() == [[3.0, -2.0], [-1.0, -6.0], [0.0, 0.0]]


def test_pooling_gradients_skip_padding():
    x, mask = sample()
    x.requires_grad_(True)
    (masked_mean(x, mask).sum() + masked_max(x, mask).sum()).backward()
    assert torch.all(x.grad[~mask] == 0)
