"""Checkpoints: round trip, atomic writes, and refusal of files that carry code or are damaged."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from helpers import RunsCodeOnLoad

from dlcli import __version__, checkpoint
from dlcli.errors import CheckpointError


def payload() -> dict:
    return {"task": "classify", "labels": ["a", "b"], "state_dict": {"w": torch.arange(6.0).reshape(2, 3)},
            "metrics": {"accuracy": 0.5}, "nested": {"ints": [1, 2], "none": None}}


def load_error(path: Path, kind: str = checkpoint.MODEL_FORMAT) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path, kind)
    return info.value


def test_round_trip(tmp_path):
    path = tmp_path / "m.pt"
    checkpoint.save(path, payload())
    data = checkpoint.load(path)
    assert data["format"] == checkpoint.MODEL_FORMAT
    assert data["format_version"] == checkpoint.FORMAT_VERSION
    assert data["dlcli_version"] == __version__
    assert torch.equal(data["state_dict"]["w"], payload()["state_dict"]["w"])
    assert data["nested"] == {"ints": [1, 2], "none": None} and data["labels"] == ["a", "b"]


def test_save_creates_parent_folders(tmp_path):
    path = tmp_path / "a" / "b" / "m.pt"
    checkpoint.save(path, payload())
    assert checkpoint.load(path)["task"] == "classify"


def test_failed_save_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    checkpoint.save(path, payload())
    before = path.read_bytes()

    def crash(obj, fh, *args, **kwargs):
        fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, {**payload(), "labels": ["new"]})
    assert path.read_bytes() == before
    monkeypatch.undo()
    assert checkpoint.load(path)["labels"] == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_interrupted_save_leaves_no_temp(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(tmp_path / "m.pt", payload())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("container", ["torch", "pickle"])
def test_pickle_carrying_code_is_refused_and_never_runs(tmp_path, container):
    marker, path = tmp_path / "marker", tmp_path / "evil.pt"
    evil = {"format": checkpoint.MODEL_FORMAT, "format_version": 1, "state_dict": RunsCodeOnLoad(marker)}
    if container == "torch":
        torch.save(evil, path)
    else:
        path.write_bytes(pickle.dumps(evil))
    error = load_error(path)
    assert "refused to load" in error.message and "not plain data" in error.message
    assert not marker.exists()


def test_the_evil_file_really_runs_code_when_loaded_unsafely(tmp_path):
    """Control for the test above: the crafted file does create the marker under a plain unpickler."""
    marker, path = tmp_path / "marker", tmp_path / "evil.pt"
    torch.save({"x": RunsCodeOnLoad(marker)}, path)
    torch.load(path, weights_only=False)["x"].close()
    assert marker.exists()


def test_refusal_names_what_was_refused_without_terminal_escapes(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.MODEL_FORMAT, "x": RunsCodeOnLoad(tmp_path / "m")}, path)
    error = load_error(path)
    assert "io.open" in error.message
    assert "\x1b" not in error.message
    assert "weights_only" not in error.message  # torch's advice on loading it unsafely stays out


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.9])
def test_truncated_checkpoint(tmp_path, keep):
    path = tmp_path / "m.pt"
    checkpoint.save(path, payload())
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    assert "not a readable checkpoint (truncated or damaged?)" in load_error(path).message


def test_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    checkpoint.save(path, {**payload(), "format_version": checkpoint.FORMAT_VERSION + 1, "dlcli_version": "9.0"})
    error = load_error(path)
    assert "newer than this dlcli reads" in error.message
    assert "9.0" in error.hint and "upgrade" in error.hint


@pytest.mark.parametrize("content", [{"weights": torch.zeros(2)}, [1, 2], {"format": "other.tool"}])
def test_unknown_format_is_refused(tmp_path, content):
    path = tmp_path / "m.pt"
    torch.save(content, path)
    assert "not a dlcli checkpoint" in load_error(path).message


def test_model_and_train_state_are_not_interchangeable(tmp_path):
    path = tmp_path / "state.pt"
    checkpoint.save(path, payload(), checkpoint.STATE_FORMAT)
    assert "holds a dlcli.train_state, expected a dlcli.model" in load_error(path).message
    assert checkpoint.load(path, checkpoint.STATE_FORMAT)["task"] == "classify"


def test_missing_checkpoint(tmp_path):
    assert str(tmp_path / "nope.pt") in load_error(tmp_path / "nope.pt").message
    with pytest.raises(CheckpointError, match="model not found"):
        checkpoint.resolve_model(tmp_path / "nope.pt")


def test_describe_drops_weights_and_counts_parameters():
    data = {**payload(), "vocab": {"type": "word", "size": 9, "lowercase": True, "tokens": ["x"] * 9}}
    described = checkpoint.describe(data)
    assert "state_dict" not in described
    assert described["parameters"] == 6
    assert described["vocab"] == {"type": "word", "size": 9, "lowercase": True}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_rebuilt_models_adopt_the_saved_tensors(dtype):
    from dlcli.api import _rebuild
    from dlcli.models.fasttext import FastText

    model = FastText(50, 3, 0, embedding_dim=4, loss="hs")
    model.fit_labels([5, 1, 2])
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    rebuilt = _rebuild(FastText, (50, 3, 0), {"embedding_dim": 4, "loss": "hs"}, state)
    assert not any(t.is_meta for t in [*rebuilt.parameters(), *rebuilt.buffers()])
    assert all(p.dtype == torch.float32 for p in rebuilt.parameters())  # float16 files are cast back
    ids, mask = torch.tensor([[3, 4, 0]]), torch.tensor([[True, True, False]])
    torch.testing.assert_close(rebuilt(ids, mask), model(ids, mask), atol=1e-3, rtol=1e-3)
    assert rebuilt.label_counts.tolist() == [5, 1, 2]
