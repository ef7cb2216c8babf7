"""Slow tier: every shipped recipe on real data reaches the dev score its header states.

Opt in with `python -m pytest -m slow`; needs the datasets under $DLCLI_DATA_DIR
(../shared/datasets in this project's checkouts). Scores may move by a little with the number of
threads (floating-point summation order), hence the tolerance.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from dlcli.cli import run
from dlcli.errors import DataError
from dlcli.recipe import resolve_data_path
from dlcli.registry import load_recipe, task_adapter

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("DLCLI_DATA_DIR", ROOT.parent / "shared" / "datasets"))
SCORED = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if p.parent.name != "recipes")
TOLERANCE = 0.01


def header_score(recipe: Path) -> tuple[str, float]:
    text = recipe.read_text(encoding="utf-8")
    match = re.search(r"^# Score:\s+dev (\w+) ([0-9.]+)", text, re.M)
    if not match and re.search(r"^# Score:\s+not (trained|measured)", text, re.M):
        pytest.skip("its header says it has no dev score yet")
    assert match, f"{recipe}: header has no '# Score:  dev <metric> <value>' line"
    return match.group(1), float(match.group(2))


def missing_start(recipe, recipe_dir: Path) -> str | None:
    """A checkpoint or vectors file the recipe starts from that is not there (another recipe makes it):
    `data.init` names a checkpoint as the run loads it (from the working directory), `data.vectors` a
    data path."""
    init = getattr(recipe.data, "init", None)
    if init and not Path(init).exists():
        return init
    vectors = getattr(recipe.data, "vectors", None)
    if vectors:
        try:
            resolve_data_path(vectors, DATA, recipe_dir)
        except DataError:
            return vectors
    return None


@pytest.mark.slow
@pytest.mark.parametrize("recipe", SCORED, ids=lambda p: p.relative_to(ROOT / "recipes").as_posix())
def test_recipe_reaches_its_stated_dev_score(recipe, tmp_path, capsys):
    if not DATA.is_dir():
        pytest.skip(f"datasets not found at {DATA}")
    loaded_recipe = load_recipe(recipe)
    metric, stated = header_score(recipe)
    if needed := missing_start(loaded_recipe, recipe.parent):
        pytest.skip(f"needs {needed}, which another recipe makes (train that one first)")
    code = run(["train", str(recipe), "--out", str(tmp_path / "model.pt"), "--data-dir", str(DATA), "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["metric"] == metric
    if not task_adapter(loaded_recipe.task).metrics[metric]:
        assert summary["best"] <= stated + TOLERANCE
    else:
        assert summary["best"] >= stated - TOLERANCE
