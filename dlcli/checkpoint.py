"""One self-describing checkpoint file: save atomically, load without ever running code from it.

A checkpoint is a dict of plain types and tensors written by `torch.save` (a zip of one pickle
and one raw file per tensor storage). `read` opens it without torch: its own unpickler admits
only plain data, ordered dicts and tensors, and maps every storage straight from the file
(copy-on-write), so an 850 MB fastText table is paged in as rows are read. `load` is `read` with
the arrays handed to torch without copying. Prediction that needs no torch (FastText) uses `read`
and starts in a fraction of the 1.5 s that importing torch takes.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from dlcli import __version__, migrations
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
    """Write `payload` atomically: a crash mid-write leaves any previous file intact.

    The zip's CRC-32 fields are left at 0: torch and `read` map storages without checking them,
    and computing them took 0.6 s of the 1.1 s that an 800 MB FastText table takes to write.
    """
    import torch
    from torch.utils.serialization import config

    data = {"format": kind, "format_version": FORMAT_VERSION, "dlcli_version": __version__}
    data.update(payload)
    with atomic_write(path) as fh:
        computed, config.save.compute_crc32 = config.save.compute_crc32, False
        try:
            torch.save(data, fh)
        finally:
            config.save.compute_crc32 = computed


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
        data = _unpickle(path)
    except _Refused as exc:
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


# ---------------------------------------------------------------- torch's file format, read as data

# torch's storage classes (as the pickle names them) and the element type each holds
_STORAGES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_, "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
}


class _Refused(pickle.UnpicklingError):
    """The pickle names something other than plain data; it is never called."""


class _PlainDataUnpickler(pickle.Unpickler):
    """Admits plain values, ordered dicts and tensors; any other global is refused, so nothing the
    file names runs (the restricted unpickler of the `pickle` docs). Storages come from `storage`."""

    def __init__(self, file, storage):
        super().__init__(file)
        self._storage = storage

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGES:
            return _STORAGES[name]
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and any(pid[1] is t for t in _STORAGES.values())):
            raise _Refused(f"persistent id {str(pid)[:80]}")
        _, dtype, key, _location, numel = pid  # every tensor is read onto the CPU
        return self._storage(str(key), np.dtype(dtype), int(numel))


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_ignored) -> np.ndarray:
    """The tensor viewing `storage`, checked to stay inside it first (as_strided does not check)."""
    if not isinstance(storage, np.ndarray):
        raise ValueError("a tensor without a storage")
    size, stride, offset = tuple(int(n) for n in size), tuple(int(n) for n in stride), int(offset)
    if len(size) != len(stride) or min((*size, *stride, offset)) < 0:
        raise ValueError("a tensor with negative or mismatched sizes")
    if 0 in size:
        return np.zeros(size, storage.dtype)
    if offset + sum((n - 1) * s for n, s in zip(size, stride)) >= len(storage):
        raise ValueError("a tensor reaching past its storage")
    return np.lib.stride_tricks.as_strided(storage[offset:], size, tuple(s * storage.itemsize for s in stride))


def _unpickle(path: Path):
    if not zipfile.is_zipfile(path):  # not torch's zip: only a bare pickle of plain data can pass
        with open(path, "rb") as fh:
            return _PlainDataUnpickler(fh, _no_storage).load()
    mapped = np.memmap(path, mode="c")  # copy-on-write: arrays are writable, the file never changes
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: info for info in archive.infolist()}
    pickles = [name for name in members if name.endswith("/data.pkl") and name.count("/") == 1]
    if len(pickles) != 1:
        raise ValueError("no data.pkl in the archive")
    root = pickles[0][: -len("data.pkl")]

    def start_of(info: zipfile.ZipInfo) -> int:
        """Where a stored member's bytes start: after the 30-byte local header, its name and extra field."""
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(f"{info.filename} is compressed")
        head = info.header_offset
        name_len, extra_len = struct.unpack("<HH", mapped[head + 26 : head + 30].tobytes())
        start = head + 30 + name_len + extra_len
        if start + info.file_size > len(mapped):
            raise ValueError(f"{info.filename} is cut short")
        return start

    def small(name: str) -> bytes:
        info = members[name]
        start = start_of(info)
        data = mapped[start : start + info.file_size].tobytes()
        if info.CRC and zlib.crc32(data) != info.CRC:  # 0: `save` wrote none
            raise ValueError(f"{name} fails its CRC check")
        return data

    def storage(key: str, dtype: np.dtype, numel: int) -> np.ndarray:
        info = members[root + "data/" + key]
        if info.file_size != numel * dtype.itemsize:
            raise ValueError(f"storage {key} is not {numel} elements long")
        return np.frombuffer(mapped, dtype, numel, start_of(info)) if numel else np.zeros(0, dtype)

    if root + "byteorder" in members and small(root + "byteorder") != b"little":
        raise ValueError("a big-endian checkpoint")
    return _PlainDataUnpickler(io.BytesIO(small(pickles[0])), storage).load()


def _no_storage(key: str, dtype: np.dtype, numel: int):
    raise ValueError("a tensor outside a torch zip archive")


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
