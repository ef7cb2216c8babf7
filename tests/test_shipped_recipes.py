"""Every shipped recipe parses, binds, and opens with the header that says how to use it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import REPO

from dlcli import api, registry
from dlcli.errors import DataError
from dlcli.recipe import data_root, resolve_data_path
from dlcli.registry import load_recipe

RECIPES = sorted((REPO / "recipes").rglob("*.yaml"))
HEADER_KEYS = ("Train:", "Smoke:", "Use:", "Score:")


def recipe_id(path: Path) -> str:
    return path.relative_to(REPO / "recipes").as_posix()


def header(path: Path) -> list[str]:
    """The comment lines before the first YAML key."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return lines


def test_recipes_are_shipped():
    assert any(p.name == "quickstart.yaml" for p in RECIPES)


@pytest.mark.parametrize("path", RECIPES, ids=recipe_id)
def test_recipe_parses_and_binds(path):
    recipe = load_recipe(path)
    registry.resolve_recipe(recipe)
    assert recipe.data.train, "a shipped recipe names its training data"


@pytest.mark.parametrize("path", RECIPES, ids=recipe_id)
def test_recipe_header(path):
    lines = header(path)
    assert lines and lines[0], "the first line says what the recipe trains"
    for key in HEADER_KEYS:
        assert any(line.startswith(key) for line in lines), f"header lacks a {key!r} line"
    (smoke,) = [line for line in lines if line.startswith("Smoke:")]
    assert "--set train.max_steps=" in smoke
    (train,) = [line for line in lines if line.startswith("Train:")]
    assert "dlcli train" in train and path.name in train


def made_by_a_command(name: str, recipe: Path) -> bool:
    """Data under the repository's runs/ (ignored by git) is made by a command its header gives."""
    return (recipe.parent / name).resolve().is_relative_to(REPO / "runs")


@pytest.mark.parametrize("path", [p for p in RECIPES if load_recipe(p).data.train.startswith(("./", "../"))],
                         ids=recipe_id)
def test_recipe_relative_data_ships_with_the_repo(path):
    data = load_recipe(path).data
    for name in (n for n in (data.train, data.dev) if n and n.startswith(("./", "../"))):
        if made_by_a_command(name, path):
            header = path.read_text(encoding="utf-8").split("task:")[0]
            assert "runs/" + Path(name).name in header  # the header gives the command that makes it
        else:
            assert resolve_data_path(name, data_root(None), path.parent).is_file()


@pytest.mark.slow
@pytest.mark.parametrize("path", RECIPES, ids=recipe_id)
def test_recipe_smoke_trains(path, tmp_path):
    """The header's smoke run (20 steps) on the real data, where it is present."""
    root = Path(os.environ.get("DLCLI_DATA_DIR") or REPO.parent / "shared" / "datasets")
    try:
        resolve_data_path(load_recipe(path).data.train, root, path.parent)
    except DataError as exc:
        pytest.skip(f"data not present: {exc.message}")
    data = load_recipe(path).data  # recipes that start from, or read features of, another checkpoint
    init = getattr(data, "init", None) or getattr(data, "elmo", None)
    if init and not Path(init).exists():
        pytest.skip(f"needs the earlier stage's checkpoint {init} (train that recipe first)")
    vectors = getattr(load_recipe(path).data, "vectors", None)
    if vectors and made_by_a_command(vectors, path) and not (path.parent / vectors).exists():
        pytest.skip(f"needs {vectors}, made by the command in the recipe's header")
    out = tmp_path / "smoke.pt"
    summary = api.train(path, overrides=["train.max_steps=20"], out=out, device="cpu", data_dir=str(root))
    assert summary["steps"] == 20
    assert api.load_model(out).data["metrics"]["step"] == 20
