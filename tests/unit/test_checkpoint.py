"""Checkpoints: round trip, atomic writes, and refusal of files that carry code or are damaged."""

from __future__ import annotations

import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import RunsCodeOnLoad

from dlcli import __version__, checkpoint, torch_format
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

    def crash(fh, obj, *args, **kwargs):
        fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch_format, "write", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, {**payload(), "labels": ["new"]})
    assert path.read_bytes() == before
    monkeypatch.undo()
    assert checkpoint.load(path)["labels"] == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_interrupted_save_leaves_no_temp(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch_format, "write", interrupted)
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
    from dlcli.loading import build_loaded
    from dlcli.models.fasttext import FastText

    model = FastText(50, 3, 0, embedding_dim=4, loss="hs")
    model.fit_labels([5, 1, 2])
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    rebuilt = build_loaded(FastText, (50, 3, 0), {"embedding_dim": 4, "loss": "hs"}, state)
    assert not any(t.is_meta for t in [*rebuilt.parameters(), *rebuilt.buffers()])
    assert all(p.dtype == torch.float32 for p in rebuilt.parameters())  # float16 files are cast back
    ids, mask = torch.tensor([[3, 4, 0]]), torch.tensor([[True, True, False]])
    torch.testing.assert_close(rebuilt(ids, mask), model(ids, mask), atol=1e-3, rtol=1e-3)
    assert rebuilt.label_counts.tolist() == [5, 1, 2]


# ---------------------------------------------------------------- reading without torch


def test_read_gives_numpy_views_of_every_dtype_and_layout(tmp_path):
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    tensors = {"f32": base, "row_view": base[1:], "transposed": base.t(), "f16": torch.ones(2, dtype=torch.float16),
               "i64": torch.tensor([2**40, -3]), "bool": torch.tensor([True, False]), "scalar": torch.tensor(2.5),
               "empty": torch.zeros(0, 5), "u8": torch.tensor([255], dtype=torch.uint8)}
    path = tmp_path / "m.pt"
    checkpoint.save(path, {**payload(), "state_dict": tensors})
    state = checkpoint.read(path)["state_dict"]
    for name, tensor in tensors.items():
        assert isinstance(state[name], np.ndarray), name
        np.testing.assert_array_equal(state[name], tensor.numpy(), err_msg=name)
        assert state[name].dtype == tensor.numpy().dtype and state[name].shape == tuple(tensor.shape), name
    state["f32"][0, 0] = 99.0  # copy-on-write: arrays are writable, the file is not changed
    assert checkpoint.read(path)["state_dict"]["f32"][0, 0] == 0.0


def test_read_never_imports_torch(tmp_path):
    path = tmp_path / "m.pt"
    checkpoint.save(path, payload())
    code = ("import sys; from dlcli import checkpoint; data = checkpoint.read(sys.argv[1]); "
            "assert data['state_dict']['w'].sum() == 15; assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _rewrite_pickle(path: Path, old: bytes, new: bytes) -> None:
    """Edit data.pkl inside a torch zip (same length), the archive rewritten with CRCs that match."""
    assert len(old) == len(new)
    with zipfile.ZipFile(path) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members:
            if name.endswith("/data.pkl"):
                assert data.count(old) == 1
                data = data.replace(old, new)
            archive.writestr(name, data)


def test_saved_checkpoints_load_in_torch_with_crcs_that_hold(tmp_path):
    path = tmp_path / "m.pt"
    checkpoint.save(path, payload())
    assert torch.load(path, weights_only=True)["state_dict"]["w"].sum() == 15
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None


def test_a_pickle_that_fails_its_crc_is_refused(tmp_path):
    """data.pkl is checked against its CRC (torch.save writes one, as `save` does)."""
    path = tmp_path / "m.pt"
    torch.save({**payload(), "format": checkpoint.MODEL_FORMAT, "format_version": 1}, path)
    assert checkpoint.read(path)["state_dict"]["w"].sum() == 15
    data = path.read_bytes()
    path.write_bytes(data.replace(b"dlcli.model", b"dlcli.mode_"))
    assert "not a readable checkpoint" in load_error(path).message


def test_tensor_reaching_past_its_storage_is_refused(tmp_path):
    """The view is built with as_strided, which would read foreign memory: sizes are checked first."""
    path = tmp_path / "m.pt"
    checkpoint.save(path, {**payload(), "state_dict": {"w": torch.zeros(7)}})
    _rewrite_pickle(path, b"K\x07\x85", b"K\x70\x85")  # size (7,) -> (112,)
    assert "not a readable checkpoint" in load_error(path).message


def test_storage_of_an_unknown_kind_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    checkpoint.save(path, {**payload(), "state_dict": {"w": torch.zeros(3)}})
    _rewrite_pickle(path, b"FloatStorage", b"FloatStorag_")
    error = load_error(path)
    assert "refused to load" in error.message and "torch.FloatStorag_" in error.message
