"""One self-describing checkpoint file: save atomically, load without ever running code from it.

A checkpoint is a dict of plain types and tensors in torch.save's format (a zip of one pickle and
one raw file per tensor storage), written and read without torch by dlcli/torch_format.py:
`read`'s unpickler admits only plain data, ordered dicts and tensors, and maps every storage
straight from the file (copy-on-write), so an 850 MB fastText table is paged in as rows are read.
`load` is `read` with the arrays handed to torch without copying. Prediction that needs no torch
(FastText) uses `read` and starts in a fraction of the 1.5 s that importing torch takes.
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from dlcli import __version__, migrations, torch_format
from dlcli.errors import CheckpointError
from dlcli.files import atomic_write

MODEL_FORMAT = "dlcli.model"
STATE_FORMAT = "dlcli.train_state"
FORMAT_VERSION = 2  # 2: recipes hold only their task's data and predict fields (dlcli/migrations.py)

# Models shipped inside the package (later issues add taggers and the face detector).
PRETRAINED_DIR = Path(__file__).parent / "pretrained"


def resolve_model(name: str | os.PathLike) -> Path:
    """A checkpoint path, or the name of a model shipped in the package."""
    path = Path(name)
    if path.exists():
        return path
    shipped = PRETRAINED_DIR / f"{name}.pt"
    if shipped.exists():
        return shipped
    raise CheckpointError(
        f"model not found: {path.resolve()}", "pass the .pt file written by `dlcli train`"
    )


def is_checkpoint(path: str | os.PathLike) -> bool:
    """Whether `path` is a zip archive as `save` writes (a vectors or text file never starts so)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def sidecar(out: Path, suffix: str) -> Path:
    """Files that live next to a checkpoint: `model.pt` -> `model.metrics.jsonl`, ..."""
    return Path(out).with_name(f"{Path(out).stem}.{suffix}")


def save(path: str | os.PathLike, payload: dict, kind: str = MODEL_FORMAT) -> None:
    """Write `payload` atomically: a crash mid-write leaves any previous file intact. Written by
    dlcli/torch_format.py, without torch: a model whose weights are NumPy arrays saves without it."""
    data = {"format": kind, "format_version": FORMAT_VERSION, "dlcli_version": __version__}
    data.update(payload)
    with atomic_write(path) as fh:
        torch_format.write(fh, data)


def read(path: str | os.PathLike, kind: str = MODEL_FORMAT) -> dict[str, Any]:
    """The checkpoint's content with its tensors as NumPy arrays, without importing torch."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path.resolve()} is a directory, not a checkpoint",
                              "give the .pt file written by `dlcli train` or `dlcli convert`")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path.resolve()}",
                              "give the .pt file written by `dlcli train`, or a shipped model's name")
    try:
        data = torch_format.unpickle(path)
    except torch_format.Refused as exc:
        raise CheckpointError(
            f"{path}: refused to load: the file holds objects that are not plain data ({exc})",
            "dlcli checkpoints hold only tensors and plain values; never load files you do not trust "
            "with other tools",
        ) from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, KeyError, TypeError, ValueError, OSError,
            struct.error, IndexError, AttributeError, MemoryError) as exc:
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or damaged?): {str(exc)[:200]}",
            "copy it again if it was cut short in transfer, or retrain it; a checkpoint is the .pt "
            "file `dlcli train` writes",
        ) from None
    if not isinstance(data, dict) or data.get("format") not in (MODEL_FORMAT, STATE_FORMAT):
        raise CheckpointError(f"{path}: not a dlcli checkpoint (unknown format)",
                              "give the .pt file written by `dlcli train`; other tools' weights come in "
                              "through `dlcli convert`")
    if data["format"] != kind:
        raise CheckpointError(f"{path}: holds a {data['format']}, expected a {kind}",
                              "a .train-state.pt file only resumes training (`dlcli train --resume`); "
                              "give the model's .pt file" if data["format"] == STATE_FORMAT else None)
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this dlcli reads "
            f"({FORMAT_VERSION})",
            f"it was written by dlcli {data.get('dlcli_version')}; upgrade dlcli",
        )
    return migrations.upgrade(data, version)


def load(path: str | os.PathLike, kind: str = MODEL_FORMAT) -> dict[str, Any]:
    """`read`, with every array a torch tensor sharing its memory."""
    return as_torch(read(path, kind))


def as_torch(value: Any) -> Any:
    """`read`'s content (or any part of it) with each NumPy array a torch tensor sharing its memory."""
    import torch

    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, dict):
        return type(value)((k, as_torch(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(as_torch(v) for v in value)
    return value


def describe(data: dict) -> dict:
    """What `dlcli info` prints: everything but the weights, plus parameter counts."""
    out = {k: v for k, v in data.items() if k not in ("state_dict", "vocab")}
    state = data.get("state_dict", {})
    out["parameters"] = int(sum(t.numel() for t in state.values() if hasattr(t, "numel")))
    out["vocab"] = data.get("vocab") or {}
    for key, value in out.items():  # vocabularies (a seq2seq model's source_vocab too): their size, not their tokens
        if key.endswith("vocab") and isinstance(value, dict):
            out[key] = {k: v for k, v in value.items() if k in ("type", "size", "lowercase")}
    return out
