"""One self-describing checkpoint file: save atomically, load without ever running code from it.

A checkpoint is a dict of plain types and tensors written by `torch.save` and read back with
`torch.load(weights_only=True)`, whose unpickler refuses anything but tensors and plain data.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from dlcli import __version__
from dlcli.errors import CheckpointError

MODEL_FORMAT = "dlcli.model"
STATE_FORMAT = "dlcli.train_state"
FORMAT_VERSION = 1

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


def save(path: str | os.PathLike, payload: dict, kind: str = MODEL_FORMAT) -> None:
    """Write `payload` atomically: a crash mid-write leaves any previous file intact."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": kind, "format_version": FORMAT_VERSION, "dlcli_version": __version__}
    data.update(payload)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike, kind: str = MODEL_FORMAT) -> dict[str, Any]:
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path.resolve()}")
    try:
        # memory-mapped: a big table (fastText's hashed n-grams) is paged in as rows are read, not copied up front
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load: the file holds objects that are not plain data "
            f"({_refusal_reason(exc)})",
            "dlcli checkpoints hold only tensors and plain values; never load files you do not trust "
            "with other tools",
        ) from None
    except (EOFError, zipfile.BadZipFile, RuntimeError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or damaged?): {str(exc)[:200]}"
        ) from None
    if not isinstance(data, dict) or data.get("format") not in (MODEL_FORMAT, STATE_FORMAT):
        raise CheckpointError(f"{path}: not a dlcli checkpoint (unknown format)")
    if data["format"] != kind:
        raise CheckpointError(f"{path}: holds a {data['format']}, expected a {kind}")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this dlcli reads "
            f"({FORMAT_VERSION})",
            f"it was written by dlcli {data.get('dlcli_version')}; upgrade dlcli",
        )
    return data


def _refusal_reason(exc: Exception) -> str:
    """What torch's unpickler refused (e.g. `GLOBAL io.open`), without its advice on loading the
    file unsafely and without its terminal escape codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
    reason = found.group(1).split(". ")[0] if found else text.splitlines()[0]
    return reason.strip()[:200]


def describe(data: dict) -> dict:
    """What `dlcli info` prints: everything but the weights, plus parameter counts."""
    out = {k: v for k, v in data.items() if k not in ("state_dict", "vocab")}
    state = data.get("state_dict", {})
    out["parameters"] = int(sum(t.numel() for t in state.values() if hasattr(t, "numel")))
    vocab = data.get("vocab") or {}
    out["vocab"] = {k: v for k, v in vocab.items() if k in ("type", "size", "lowercase")}
    return out
