"""`dlcli train --plot`: the loss and dev curves drawn beside the checkpoint, after a run, a resumed
run and an early stop; refused before training when matplotlib is missing."""

from __future__ import annotations

import builtins
import json

import pytest
from helpers import assert_fails, assert_ok, train

from dlcli import checkpoint

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def log_records(out) -> list[dict]:
    return [json.loads(line) for line in checkpoint.sidecar(out, "metrics.jsonl").read_text().splitlines()]


def test_plot_writes_the_curves_beside_the_checkpoint(cli, dataset):
    pytest.importorskip("matplotlib")
    out = dataset.root / "runs" / "m.pt"
    result = cli("train", dataset.recipe(train={"epochs": 3}), "--out", out, "--plot")
    assert_ok(result)
    picture = dataset.root / "runs" / "m.metrics.png"
    assert result.json()["plot"] == str(picture)
    assert picture.read_bytes()[:8] == PNG_SIGNATURE and picture.stat().st_size > 5000
    assert f"wrote {picture}" in result.err
    losses = [record["train_loss"] for record in log_records(out)]  # what the top panel draws
    assert len(losses) == 3 and losses[-1] < losses[0]

    # a new run into the same --out without --plot: the old picture, of a log now gone, goes too
    assert_ok(cli("train", dataset.recipe(train={"epochs": 1}), "--out", out, "--overwrite"))
    assert not picture.exists() and len(log_records(out)) == 1


def test_plot_after_a_resumed_run_and_after_an_early_stop(cli, dataset):
    pytest.importorskip("matplotlib")
    out = dataset.root / "m.pt"
    assert_ok(train(cli, dataset.recipe(train={"epochs": 1}), out))
    resumed = train(cli, dataset.recipe(train={"epochs": 2}), out, "--resume", "--plot")
    assert_ok(resumed)
    assert resumed.json()["plot"] == str(dataset.root / "m.metrics.png")
    assert [r["epoch"] for r in log_records(out)] == [1, 2]  # the picture draws the whole run

    # lr 0 never improves on the first evaluation: patience 1 stops after the second of 20 epochs
    stopped = train(cli, dataset.recipe(train={"epochs": 20, "patience": 1, "optimizer": {"type": "adam", "lr": 0.0}}),
                    dataset.root / "s.pt", "--plot")
    assert_ok(stopped)
    assert stopped.json()["epochs"] == 2
    assert (dataset.root / "s.metrics.png").read_bytes()[:8] == PNG_SIGNATURE


def test_without_matplotlib_plot_is_refused_before_training(cli, dataset, monkeypatch):
    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    out = dataset.root / "m.pt"
    result = train(cli, dataset.recipe(), out, "--plot")
    assert_fails(result, 2, "--plot draws with matplotlib, which is not installed", "pip install 'dlcli[plot]'")
    assert not out.exists() and not checkpoint.sidecar(out, "metrics.jsonl").exists()
