"""Recipes: strict keys with suggestions, YAML 1.1 coercion, --set overrides, binding, data paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import recipe_dict

from dlcli import registry
from dlcli.errors import DataError, RecipeError
from dlcli.models.textcnn import TextCNN
from dlcli.recipe import Component, bind_kwargs, coerce, data_root, resolve_data_path
from dlcli.registry import load_recipe, parse_recipe


def write_recipe_text(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def recipe_error(raw: dict) -> str:
    with pytest.raises(RecipeError) as info:
        parse_recipe(raw)
    return info.value.message


# ---------------------------------------------------------------- strict keys


@pytest.mark.parametrize(
    ("section", "key", "dotted", "suggestion"),
    [
        (None, "trian", "trian", "train"),
        ("train", "epochz", "train.epochz", "epochs"),
        ("data", "formt", "data.formt", "format"),
        ("predict", "topk", "predict.topk", "top_k"),
    ],
)
def test_unknown_key_names_dotted_key_and_suggests(section, key, dotted, suggestion):
    raw = recipe_dict(predict={})
    (raw[section] if section else raw)[key] = 1
    message = recipe_error(raw)
    assert f"{dotted}: unknown key" in message
    assert f"did you mean {suggestion!r}" in message


def test_unknown_key_without_close_match_lists_known_keys():
    raw = recipe_dict(predict={"zzzzzz": 1})
    message = recipe_error(raw)
    assert "predict.zzzzzz: unknown key" in message
    assert "known:" in message and "batch_size" in message


def test_all_errors_reported_at_once():
    raw = recipe_dict(train={"epochz": 1, "batch_sise": 2})
    del raw["task"]
    message = recipe_error(raw)
    assert "train.epochz" in message and "train.batch_sise" in message
    assert "task: required key is missing" in message


def test_bad_scalar_names_dotted_key():
    message = recipe_error(recipe_dict(train={"epochs": "many"}))
    assert "train.epochs: expected an integer" in message


def test_choice_fields_are_checked():
    assert "data.format: 'xml' is not one of" in recipe_error(recipe_dict(data={"format": "xml"}))
    assert "precision" in recipe_error(recipe_dict(precision="fp8"))


def test_non_mapping_recipe_is_refused(tmp_path):
    with pytest.raises(RecipeError, match="must be a mapping"):
        load_recipe(write_recipe_text(tmp_path, "- just\n- a list\n"))


def test_invalid_yaml_names_the_line(tmp_path):
    path = write_recipe_text(tmp_path, "task: classify\nmodel: [unclosed\n")
    with pytest.raises(RecipeError, match=r"r\.yaml:\d+: invalid YAML"):
        load_recipe(path)


def test_missing_recipe_gives_absolute_path(tmp_path):
    with pytest.raises(RecipeError) as info:
        load_recipe(tmp_path / "nope.yaml")
    assert str((tmp_path / "nope.yaml").resolve()) in info.value.message


# ---------------------------------------------------------------- YAML 1.1 coercion


def test_yaml_11_scalars_are_coerced_to_field_types(tmp_path):
    path = write_recipe_text(tmp_path, "task: classify\nmodel: fasttext\ndata: {header: yes, label_column: '1'}\n"
                                       "train: {epochs: 1e1, grad_clip: 1e-3, deterministic: no}\n")
    assert yaml.safe_load(path.read_text())["train"]["grad_clip"] == "1e-3"  # YAML 1.1 gives a string
    recipe = load_recipe(path)
    assert recipe.train.epochs == 10 and type(recipe.train.epochs) is int
    assert recipe.train.grad_clip == pytest.approx(1e-3) and type(recipe.train.grad_clip) is float
    assert recipe.train.deterministic is False
    assert recipe.data.header is True
    assert recipe.data.label_column == 1


def test_optimizer_lr_written_1e_3_becomes_float(tmp_path):
    """PyYAML reads `lr: 1e-3` as the string '1e-3'; binding must turn it into 0.001."""
    path = write_recipe_text(tmp_path, "task: classify\nmodel: fasttext\ntrain:\n  optimizer:\n"
                                       "    type: adam\n    lr: 1e-3\n")
    recipe = load_recipe(path)
    assert recipe.train.optimizer.kwargs["lr"] == "1e-3"  # what YAML 1.1 gives
    _, kwargs = registry.resolve("optimizer", registry.OPTIMIZERS, recipe.train.optimizer, "train.optimizer")
    assert kwargs["lr"] == 0.001 and type(kwargs["lr"]) is float


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [("1e-3", float, 1e-3), ("1_000", int, 1000), (2.0, int, 2), ("off", bool, False), (3, str, "3"),
     (None, int | None, None), ("2", int | None, 2), (4, list[int], [4]), (["1", "2"], list[int], [1, 2])],
)
def test_coerce(value, hint, expected):
    assert coerce(value, hint) == expected


@pytest.mark.parametrize(("value", "hint"), [(2.5, int), (True, int), (True, float), ("maybe", bool), ([1], str)])
def test_coerce_refuses(value, hint):
    with pytest.raises(ValueError):
        coerce(value, hint)


# ---------------------------------------------------------------- --set overrides


def load_with(tmp_path: Path, *overrides: str, **sections):
    path = write_recipe_text(tmp_path, yaml.safe_dump(recipe_dict(**sections)))
    return load_recipe(path, list(overrides))


def test_set_values_are_parsed_as_yaml(tmp_path):
    recipe = load_with(tmp_path, "train.epochs=5", "model.embedding_dim=32", "train.grad_clip=1e-1",
                       "data.train=./a=b.tsv", "predict.threshold=")
    assert recipe.train.epochs == 5
    assert recipe.model.kwargs["embedding_dim"] == 32
    assert recipe.train.grad_clip == pytest.approx(0.1)
    assert recipe.data.train == "./a=b.tsv"  # split on the first '=' only
    assert recipe.predict.threshold is None


def test_set_optimizer_shorthand_replaces_component(tmp_path):
    recipe = load_with(tmp_path, "train.optimizer=sgd")
    assert recipe.train.optimizer == Component("sgd", {})


def test_set_into_shorthand_component_expands_it(tmp_path):
    recipe = load_with(tmp_path, "train.optimizer.lr=0.1", train={"optimizer": "adam"})
    assert recipe.train.optimizer == Component("adam", {"lr": 0.1})


def test_set_creates_missing_sections(tmp_path):
    recipe = load_with(tmp_path, "train.lr_schedule.type=step", "train.lr_schedule.gamma=0.5")
    assert recipe.train.lr_schedule == Component("step", {"gamma": 0.5})


@pytest.mark.parametrize(
    ("override", "fragment"),
    [("train.epochz=3", "train.epochz: unknown key (did you mean 'epochs'?)"),
     ("epochs", "expected KEY=VALUE"),
     ("=3", "expected KEY=VALUE"),
     ("task.sub=1", "task is not a section")],
)
def test_bad_set_is_a_recipe_error(tmp_path, override, fragment):
    with pytest.raises(RecipeError) as info:
        load_with(tmp_path, override)
    assert fragment in info.value.message


# ---------------------------------------------------------------- registry binding


def test_unknown_model_type_suggests_the_closest():
    with pytest.raises(RecipeError) as info:
        registry.model_builder("classify", Component("textcn"))
    assert "model.type: unknown type 'textcn'" in info.value.message
    assert "did you mean 'textcnn'" in info.value.hint


def test_unknown_task_lists_choices():
    with pytest.raises(RecipeError) as info:
        registry.task_adapter("zzz")
    assert info.value.message.startswith("task:")
    assert "classify" in info.value.hint


def test_bind_kwargs_reports_every_unknown_and_missing_key():
    def builder(vocab_size, num_labels, pad_id, *, hidden_size: int, layers: int = 1, rate: float = 0.5):
        return None

    with pytest.raises(RecipeError) as info:
        bind_kwargs(builder, {"hiden_size": 3, "layerz": 2, "rate": "fast"}, "model", skip=3)
    message = info.value.message
    assert "model.hiden_size: unknown key (did you mean 'hidden_size'?)" in message
    assert "model.layerz: unknown key (did you mean 'layers'?)" in message
    assert "model.hidden_size: required key is missing" in message
    assert "model.rate: expected a number" in message


def test_bind_kwargs_fills_defaults_and_coerces():
    kwargs = bind_kwargs(TextCNN, {"num_filters": "12", "dropout": "0.1", "kernel_sizes": 2}, "model", skip=3)
    assert kwargs["num_filters"] == 12 and kwargs["dropout"] == 0.1 and kwargs["kernel_sizes"] == [2]
    assert kwargs["embedding_dim"] == 300 and kwargs["max_norm"] == 3.0  # defaults filled in
    assert "vocab_size" not in kwargs  # derived sizes never come from the recipe


def test_derived_size_in_recipe_is_unknown():
    with pytest.raises(RecipeError, match="model.vocab_size: unknown key"):
        registry.model_builder("classify", Component("textcnn", {"vocab_size": 10}))


def test_resolve_recipe_catches_bad_schedule_kwargs():
    recipe = parse_recipe(recipe_dict(train={"lr_schedule": {"type": "warmup_linear", "warmup": 3}}))
    with pytest.raises(RecipeError, match=r"train\.lr_schedule\.warmup: unknown key \(did you mean 'warmup_"):
        registry.resolve_recipe(recipe)


# ---------------------------------------------------------------- data paths


def test_data_root_precedence(monkeypatch):
    monkeypatch.setenv("DLCLI_DATA_DIR", "/from/env")
    assert data_root("/from/flag") == Path("/from/flag")
    assert data_root(None) == Path("/from/env")
    monkeypatch.delenv("DLCLI_DATA_DIR")
    assert data_root(None) == Path("data")


def test_dot_paths_resolve_against_the_recipe_and_others_against_the_root(tmp_path):
    recipe_dir, root = tmp_path / "recipes", tmp_path / "root"
    for path in (recipe_dir / "a.tsv", root / "ds" / "a.tsv", tmp_path / "b.tsv"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\ty\n")
    assert resolve_data_path("./a.tsv", root, recipe_dir) == recipe_dir / "a.tsv"
    assert resolve_data_path("../b.tsv", root, recipe_dir).resolve() == tmp_path / "b.tsv"
    assert resolve_data_path("ds/a.tsv", root, recipe_dir) == root / "ds" / "a.tsv"
    assert resolve_data_path(str(tmp_path / "b.tsv"), root, recipe_dir) == tmp_path / "b.tsv"


def test_missing_data_file_names_absolute_path_and_readme(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as info:
        resolve_data_path("sst2/train.tsv", Path("data"), None)
    assert str(tmp_path / "data" / "sst2" / "train.tsv") in info.value.message
    assert "data/README.md" in info.value.hint
    assert "--data-dir" in info.value.hint and "DLCLI_DATA_DIR" in info.value.hint
