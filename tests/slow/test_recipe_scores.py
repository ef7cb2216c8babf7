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
from dlcli.registry import load_recipe, task_adapter

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("DLCLI_DATA_DIR", ROOT.parent / "shared" / "datasets"))
SCORED = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if p.parent.name != "recipes")
TOLERANCE = 0.01


def header_score(recipe: Path) -> tuple[str, float]:
    match = re.search(r"^# Score:\s+dev (\w+) ([0-9.]+)", recipe.read_text(encoding="utf-8"), re.M)
    assert match, f"{recipe}: header has no '# Score:  dev <metric> <value>' line"
    return match.group(1), float(match.group(2))


@pytest.mark.slow
@pytest.mark.parametrize("recipe", SCORED, ids=lambda p: p.relative_to(ROOT / "recipes").as_posix())
def test_recipe_reaches_its_stated_dev_score(recipe, tmp_path, capsys):
    if not DATA.is_dir():
        pytest.skip(f"datasets not found at {DATA}")
    loaded_recipe = load_recipe(recipe)
    init = getattr(loaded_recipe.data, "init", None)  # recipes that start from another checkpoint
    if init and not Path(init).exists():
        pytest.skip(f"needs the earlier stage's checkpoint {init} (train that recipe first)")
    metric, stated = header_score(recipe)
    code = run(["train", str(recipe), "--out", str(tmp_path / "model.pt"), "--data-dir", str(DATA), "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["metric"] == metric
    if not task_adapter(loaded_recipe.task).metrics[metric]:
        assert summary["best"] <= stated + TOLERANCE
    else:
        assert summary["best"] >= stated - TOLERANCE
