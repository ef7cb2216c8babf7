"""The prediction loop's helpers: thread counts and the progress bar's when and what."""

from __future__ import annotations

import io
import sys

import pytest
import torch

from dlcli.cli import _io
from dlcli.errors import RecipeError
from dlcli.threads import DEFAULT_INFERENCE_THREADS, inference_threads, set_inference_threads


def test_threads_requested_then_environment_then_measured_default(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert inference_threads() == DEFAULT_INFERENCE_THREADS
    assert inference_threads(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert inference_threads() == 2
    assert inference_threads(1) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")  # not a number: ignored, as OpenMP ignores it
    assert inference_threads() == DEFAULT_INFERENCE_THREADS
    with pytest.raises(RecipeError, match="--threads"):
        inference_threads(0)


def test_threads_are_applied_to_torch(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        assert set_inference_threads(2) == 2 and torch.get_num_threads() == 2
        assert set_inference_threads() == DEFAULT_INFERENCE_THREADS == torch.get_num_threads()
    finally:
        torch.set_num_threads(1)


@pytest.mark.parametrize("command", ["classify", "evaluate"])
def test_cli_threads_option_reaches_torch(cli, trained, command):
    args = [trained.parent / "dev.tsv"] if command == "evaluate" else []
    try:
        result = cli(command, trained, *args, "--threads", "2", stdin=b"red cat\n")
        assert result.code == 0 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _drive(stream, source: str, stderr, monkeypatch, quiet: bool = False) -> str:
    monkeypatch.setattr(sys, "stderr", stderr)
    with _io._progress(stream, source, quiet) as advance:
        for _ in range(3):
            stream.readline()
            advance(1)
    return stderr.getvalue()


def test_progress_bar_for_a_regular_file_on_a_terminal(tmp_path, monkeypatch):
    path = tmp_path / "big_input.txt"
    path.write_bytes(b"line\n" * 1000)
    with open(path, "rb") as fh:
        shown = _drive(fh, str(path), _Terminal(), monkeypatch)
    assert "big_input.txt" in shown and "records" in shown


def test_no_progress_bar_for_stdin_pipes_quiet_or_no_terminal(tmp_path, monkeypatch):
    path = tmp_path / "in.txt"
    path.write_bytes(b"line\n" * 10)
    with open(path, "rb") as fh:
        assert _drive(fh, str(path), _Terminal(), monkeypatch, quiet=True) == ""
    assert _drive(io.BytesIO(b"line\n" * 10), "<stdin>", _Terminal(), monkeypatch) == ""
    with open(path, "rb") as fh:  # stderr redirected to a file
        assert _drive(fh, str(path), io.StringIO(), monkeypatch) == ""


def test_a_huge_record_is_written_in_pieces_as_the_same_json_line(monkeypatch):
    import json

    monkeypatch.setattr(_io, "PIECE", 3)
    record = {"id": 1, "tokens": list("北京😀abcdefg"), "tags": ["B"] * 10, "note": "\u2028",
              "spans": [{"start": i, "text": "x\udcff"} for i in range(7)], "empty": []}
    assert _io._is_huge(record)
    out = io.BytesIO()
    _io.JsonlWriter(out).write([record])
    text = out.getvalue().decode("utf-8")  # strict: the surrogate is escaped
    assert text.endswith("\n") and text.count("\n") == 1
    assert json.loads(text) == record
    whole = io.BytesIO()
    monkeypatch.setattr(_io, "PIECE", 1000)
    _io.JsonlWriter(whole).write([record])
    assert whole.getvalue() == out.getvalue()


def test_train_threads_option_reaches_torch(cli, dataset):
    try:
        result = cli("train", dataset.recipe(train={"epochs": 1}), "--out", dataset.root / "m.pt", "--quiet",
                     "--threads", "2")
        assert result.code == 0, result.err
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
