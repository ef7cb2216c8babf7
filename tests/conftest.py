"""Shared fixtures: a tiny synthetic dataset, a trained checkpoint reused by the CLI tests, and an
in-process CLI runner that goes through `dlcli.cli.run`, the real error -> exit-code boundary."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import torch
from helpers import TINY_TEXTCNN, Dataset, Result, make_dataset, read_tsv


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # Two shared cores: tiny models run faster on one thread than fighting over both.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def dataset(tmp_path) -> Dataset:
    return make_dataset(tmp_path / "data")


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """A small TextCNN checkpoint trained once per session; tests must only read it."""
    from dlcli import api

    data = make_dataset(tmp_path_factory.mktemp("trained"))
    recipe = data.recipe(model=TINY_TEXTCNN, train={"epochs": 6})
    out = data.root / "model.pt"
    summary = api.train(recipe, out=out)
    assert summary["best"] >= 0.9, f"the shared tiny model did not learn: {summary}"
    return out


@pytest.fixture(scope="session")
def trained_dev(trained) -> list[tuple[str, str]]:
    """The (label, text) dev rows the shared checkpoint was selected on."""
    return read_tsv(trained.parent / "dev.tsv")


@pytest.fixture
def cli(capsys, monkeypatch):
    """cli(*args, stdin=b"...") -> Result, run through dlcli.cli.run exactly as `main()` runs it."""
    from dlcli.cli import run

    monkeypatch.delenv("DLCLI_DEBUG", raising=False)

    def invoke(*args, stdin: bytes = b"") -> Result:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke
