"""The weight files of a Hugging Face model folder, read without running code from them.

model.safetensors is a small format (an 8-byte little-endian header length, a JSON header of
name -> dtype, shape and data offsets, then the raw little-endian data), read here without the
safetensors package; pytorch_model.bin is read with `torch.load(weights_only=True)`, which builds
tensors and plain values only. The converters of Hugging Face folders (dlcli/convert/gpt2.py,
dlcli/convert/bert.py) share them.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import torch

from dlcli.errors import DataError

SAFETENSORS, TORCH_BIN = "model.safetensors", "pytorch_model.bin"
SAFETENSORS_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"), "F64": np.dtype("<f8"),
                      "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
                      "U8": np.dtype("u1"), "BOOL": np.dtype("?")}  # integers: buffers such as BERT's position_ids
MAX_HEADER = 100 << 20


def weights_file(folder: Path, hint: str) -> Path:
    """The folder's model.safetensors, else its pytorch_model.bin; `hint`: what a folder should hold."""
    for name in (SAFETENSORS, TORCH_BIN):
        if (folder / name).is_file():
            return folder / name
    sharded = [p.name for p in folder.glob("*.index.json")]
    hint = (f"{', '.join(sharded)}: sharded weights are not read; save the model in one file "
            f"(save_pretrained(..., max_shard_size='100GB'))" if sharded else hint)
    raise DataError(f"{folder}: no {SAFETENSORS} or {TORCH_BIN} (expected the model's weights)", hint)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a weights file that `weights_file` found."""
    return read_safetensors(path) if path.name.endswith(".safetensors") else read_torch_bin(path)


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a .safetensors file (floats, BF16 as float32; integers, bools), without the
    safetensors package."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < length <= min(size - 8, MAX_HEADER):
            raise DataError(f"{path}: not a safetensors file (its header length is {length}, the file {size} bytes)")
        try:
            header = json.loads(fh.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: not a safetensors file (its header is not JSON: {exc})") from None
    if not isinstance(header, dict):
        raise DataError(f"{path}: not a safetensors file (its header is not a JSON object)")
    start = 8 + length
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=start) if size > start else np.zeros(0, np.uint8)
    return {name: _safetensor(path, name, entry, data) for name, entry in header.items() if name != "__metadata__"}


def _safetensor(path: Path, name: str, entry, data: np.ndarray) -> torch.Tensor:
    if not isinstance(entry, dict) or entry.get("dtype") not in SAFETENSORS_DTYPES:
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        raise DataError(f"{path}: tensor {name} has dtype {dtype!r}; dlcli reads {', '.join(SAFETENSORS_DTYPES)}")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    ints = isinstance(shape, list) and isinstance(offsets, list) and len(offsets) == 2 and all(
        isinstance(n, int) and n >= 0 for n in (*shape, *offsets))
    dtype = SAFETENSORS_DTYPES[entry["dtype"]]
    if not ints or not offsets[0] <= offsets[1] <= len(data) or (
            offsets[1] - offsets[0] != math.prod(shape) * dtype.itemsize):
        raise DataError(f"{path}: tensor {name}: shape {shape} and data_offsets {offsets} do not fit the file "
                        f"(truncated or damaged?)")
    array = np.array(data[offsets[0]:offsets[1]]).view(dtype).reshape(shape)  # a copy: the file closes
    if entry["dtype"] == "BF16":  # bfloat16 is float32's upper half
        return torch.from_numpy((array.astype(np.uint32) << 16).view(np.float32))
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=False))


def read_torch_bin(path: Path) -> dict[str, torch.Tensor]:
    """A torch state dict, loaded as tensors and plain values only (bfloat16 as float32)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise DataError(f"{path}: refused to load: the file holds objects that are not plain data",
                        f"convert from {SAFETENSORS} instead, or from a file you trust saved with torch.save") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: not a readable torch weight file: {str(exc)[:200]}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path}: not a state dict of tensors")
    return {k: v.float() if v.dtype == torch.bfloat16 else v for k, v in state.items()}
