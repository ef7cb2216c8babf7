"""Counts and rates a recipe holds are checked where the recipe is parsed (issue 18): a run that
would train nothing, or a section value no run can use, is a RecipeError naming the key, for a
recipe file, `--set` and `dlcli recipes validate` alike."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import yaml
from helpers import recipe_dict

from dlcli import registry
from dlcli.errors import RecipeError
from dlcli.recipe import TrainConfig, bounded, check_bounds, parse_section, recipe_warnings
from dlcli.registry import load_recipe, parse_recipe


def recipe_error(raw: dict) -> str:
    with pytest.raises(RecipeError) as info:
        parse_recipe(raw)
    return info.value.message


@pytest.mark.parametrize(("train", "message"), [
    ({"epochs": 0}, "train.epochs: must be >= 1, got 0"),
    ({"epochs": -3}, "train.epochs: must be >= 1, got -3"),
    ({"batch_size": 0}, "train.batch_size: must be >= 1, got 0"),
    ({"max_steps": 0}, "train.max_steps: must be >= 1, got 0"),
    ({"max_steps": -1}, "train.max_steps: must be >= 1, got -1"),
    ({"patience": 0}, "train.patience: must be >= 1, got 0"),
    ({"eval_every": -1}, "train.eval_every: must be >= 0, got -1"),
    ({"state_every": -2}, "train.state_every: must be >= 0, got -2"),
    ({"grad_clip": 0}, "train.grad_clip: must be > 0, got 0"),
    ({"ema_decay": 1.0}, "train.ema_decay: must be > 0 and < 1, got 1.0"),
    ({"optimizer": {"type": "adam", "lr": -0.1}}, "train.optimizer.lr: must be >= 0, got -0.1"),
    ({"optimizer": {"type": "sgd", "lr": "-1e-3"}}, "train.optimizer.lr: must be >= 0, got '-1e-3'"),
    ({"optimizer": {"type": "hogwild_sgd", "lr": float("nan")}}, "train.optimizer.lr: must be >= 0, got nan"),
])
def test_train_values_that_train_nothing_are_refused_naming_the_key(train, message):
    assert message in recipe_error(recipe_dict(train=train))


@pytest.mark.parametrize(("task", "section", "values", "message"), [
    ("classify", "data", {"max_length": 0}, "data.max_length: must be >= 1, got 0"),
    ("classify", "predict", {"batch_size": 0}, "predict.batch_size: must be >= 1, got 0"),
    ("classify", "predict", {"top_k": 0}, "predict.top_k: must be >= 1, got 0"),
    ("classify", "predict", {"threshold": 1.5}, "predict.threshold: must be >= 0 and <= 1, got 1.5"),
    ("tag", "data", {"feature_min_freq": 0}, "data.feature_min_freq: must be >= 1, got 0"),
    ("tag", "data", {"max_length": -5}, "data.max_length: must be >= 1, got -5"),
    ("embed", "predict", {"restrict": 0}, "predict.restrict: must be >= 1, got 0"),
    ("detect_faces", "data", {"dev_fraction": 1.0}, "data.dev_fraction: must be >= 0 and < 1, got 1.0"),
    ("detect_faces", "data", {"background_negatives": -1}, "data.background_negatives: must be >= 0, got -1"),
    ("detect_faces", "predict", {"thresholds": [0.6, 1.5, 0.7]}, "predict.thresholds[1]: must be >= 0 and <= 1"),
    ("detect_faces", "predict", {"factor": 1}, "predict.factor: must be > 0 and < 1, got 1"),
])
def test_task_sections_are_held_to_their_bounds(task, section, values, message):
    adapter = registry.task_adapter(task)
    cls = adapter.data_section if section == "data" else adapter.predict_section
    with pytest.raises(RecipeError) as info:
        parse_section(cls, values, section)
    assert message in info.value.message


def test_every_error_is_reported_at_once():
    message = recipe_error(recipe_dict(train={"epochs": 0, "batch_size": -1}, predict={"top_k": 0}))
    assert "train.epochs" in message and "train.batch_size" in message and "predict.top_k" in message


@pytest.mark.parametrize("train", [
    {"epochs": 1, "batch_size": 1, "max_steps": 1, "patience": 1},
    {"eval_every": 0, "state_every": 0},  # documented: evaluate at the end / keep no state
    {"max_steps": None, "patience": None, "grad_clip": None, "ema_decay": None},
    {"optimizer": {"type": "adam", "lr": "1e-3"}},  # YAML 1.1 reads 1e-3 as a string
    {"optimizer": "adam"},  # no lr: the optimizer's default
])
def test_boundary_and_unset_values_pass(train):
    parse_recipe(recipe_dict(train=train))


def test_a_learning_rate_of_0_is_warned_about(tmp_path, cli):
    """lr 0 writes the initialised model (tests freeze pretrained vectors so), but never in silence."""
    assert recipe_warnings(parse_recipe(recipe_dict())) == []
    (warning,) = recipe_warnings(parse_recipe(recipe_dict(train={"optimizer": {"type": "sgd", "lr": "0"}})))
    assert "train.optimizer.lr is 0" in warning
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_dict()), encoding="utf-8")
    result = cli("recipes", "validate", path, "--set", "train.optimizer.lr=0")
    assert result.code == 0 and result.out.startswith("ok ") and "warning:" in result.err and "lr is 0" in result.err


def test_set_overrides_and_recipes_validate_are_checked(tmp_path, cli):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_dict()), encoding="utf-8")
    with pytest.raises(RecipeError, match=r"train\.epochs: must be >= 1, got 0"):
        load_recipe(path, ["train.epochs=0"])
    result = cli("recipes", "validate", path, "--set", "train.batch_size=-4")
    assert result.code == 2 and result.out == ""
    assert "train.batch_size: must be >= 1, got -4" in result.err


def _is_int(hint) -> bool:
    args = typing.get_args(hint) or (hint,)
    return int in args or any(typing.get_args(a) == (int,) for a in args)


def _sections():
    yield "train", TrainConfig
    for name, adapter in registry.TASKS.items():
        yield f"{name} data", adapter.data_section
        yield f"{name} predict", adapter.predict_section


@pytest.mark.parametrize(("where", "cls"), list(_sections()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_count_field_declares_its_bounds(where, cls):
    """A new count (an int field) declares its bounds with `recipe.bounded`; column numbers may be
    negative (counted from the last column) and are the only exception."""
    hints = typing.get_type_hints(cls)
    unbounded = [f.name for f in dataclasses.fields(cls) if _is_int(hints[f.name]) and "column" not in f.name
                 and not f.metadata.get("bounds") and f.name != "seed"]
    assert not unbounded, f"{where}: int fields without bounds: {unbounded}"


def test_check_bounds_on_lists_and_none():
    errors: list[str] = []
    check_bounds([1, 0, None, 3], ((">=", 1),), "x", errors)
    check_bounds(None, ((">=", 1),), "y", errors)
    assert errors == ["x[1]: must be >= 1, got 0"]


def test_bounded_takes_a_default_factory():
    @dataclasses.dataclass(frozen=True)
    class Section:
        sizes: list[int] = bounded(default_factory=lambda: [1, 2], ge=1)

    assert Section().sizes == [1, 2]
    with pytest.raises(RecipeError, match=r"s\.sizes\[0\]: must be >= 1, got 0"):
        parse_section(Section, {"sizes": [0]}, "s")
