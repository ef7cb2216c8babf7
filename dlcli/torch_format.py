"""torch.save's file format, read and written as data, without importing torch.

A file is a zip archive, stored uncompressed, of `<root>/data.pkl` (a protocol-2 pickle of the
object) and one member `<root>/data/<key>` per tensor storage, plus small `byteorder`, `version`
and `.format_version` records (torch 2.x: torch/serialization.py and
caffe2/serialize/inline_container.cc). A tensor is pickled as the call
torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks), its storage
a persistent id ("storage", torch.<Type>Storage, key, "cpu", numel).

`unpickle` admits only plain values, ordered dicts and tensors (nothing the file names runs) and
maps every storage straight from the file, copy-on-write. `write` emits that same subset itself,
opcode by opcode: torch.load(weights_only=True) and `unpickle` read its files, and saving a model
needs no torch (a model whose weights are NumPy arrays trains and saves without it).
"""

from __future__ import annotations

import io
import pickle
import struct
import sys
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any

import numpy as np

# torch's storage classes (as the pickle names them) and the element type each holds
STORAGES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_, "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
}
ALIGNMENT = 64  # where every member's bytes start, as torch aligns them (and memory maps need)


class Refused(pickle.UnpicklingError):
    """The pickle names something other than plain data; it is never called."""


# ---------------------------------------------------------------- reading


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
        if module == "torch" and name in STORAGES:
            return STORAGES[name]
        raise Refused(f"{module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and any(pid[1] is t for t in STORAGES.values())):
            raise Refused(f"persistent id {str(pid)[:80]}")
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


def unpickle(path: Path):
    """The object in a torch.save file (or a bare pickle of plain data), tensors as NumPy arrays."""
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
        if info.CRC and zlib.crc32(data) != info.CRC:  # 0: written without one
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


# ---------------------------------------------------------------- writing

_STORAGE_OF_NUMPY = {np.dtype(t): name for name, t in STORAGES.items()}
# torch's dtype names are NumPy's, and bfloat16 has no NumPy type
_TORCH_STORAGE_NAMES = {dtype.name: name for dtype, name in _STORAGE_OF_NUMPY.items()} | {"bfloat16": "BFloat16Storage"}


_TUPLE_OPCODES = {0: b")", 1: b"\x85", 2: b"\x86", 3: b"\x87"}  # TUPLE1-3 take no mark


class _Pickler:
    """Protocol-2 opcodes for plain values (None, bool, int, float, str), dicts, ordered dicts,
    lists, tuples, NumPy arrays and torch tensors; anything else is a TypeError. Tensors that
    share a torch storage share it in the file, as torch.save keeps them."""

    def __init__(self):
        self.out = io.BytesIO()
        self.storages: list[tuple[str, np.ndarray]] = []  # (key, its bytes as a 1-D uint8 array)
        self._torch_keys: dict[int, str] = {}  # a torch storage's address -> its key
        self._keep: list = []  # the storages written, alive so that no address is reused meanwhile
        self._torch = sys.modules.get("torch")  # a torch tensor can only exist if torch is loaded

    def dump(self, obj) -> bytes:
        self.out.write(b"\x80\x02")
        self._save(obj)
        self.out.write(b".")
        return self.out.getvalue()

    def _save(self, obj) -> None:
        w = self.out.write
        if obj is None:
            w(b"N")
        elif obj is True or obj is False:
            w(b"\x88" if obj else b"\x89")
        elif isinstance(obj, int):
            self._int(int(obj))
        elif isinstance(obj, float):
            w(b"G" + struct.pack(">d", obj))
        elif isinstance(obj, str):
            data = obj.encode("utf-8", "surrogatepass")
            w(b"X" + struct.pack("<I", len(data)) + data)
        elif isinstance(obj, dict):
            if isinstance(obj, OrderedDict):
                w(b"ccollections\nOrderedDict\n)R")
            else:
                w(b"}")
            if obj:
                w(b"(")
                for key, value in obj.items():
                    self._save(key)
                    self._save(value)
                w(b"u")
        elif isinstance(obj, list):
            w(b"]")
            if obj:
                w(b"(")
                for item in obj:
                    self._save(item)
                w(b"e")
        elif isinstance(obj, tuple):
            if len(obj) > 3:
                w(b"(")
            for item in obj:
                self._save(item)
            w(_TUPLE_OPCODES.get(len(obj), b"t"))
        elif isinstance(obj, np.ndarray):
            self._numpy(obj)
        elif self._torch is not None and isinstance(obj, self._torch.Tensor):
            self._tensor(obj)
        elif isinstance(obj, np.generic):
            self._save(obj.item())
        else:
            raise TypeError(f"a checkpoint holds plain values, dicts, lists, tuples and tensors, not "
                            f"{type(obj).__module__}.{type(obj).__qualname__}")

    def _int(self, n: int) -> None:
        if 0 <= n < 256:
            self.out.write(b"K" + bytes([n]))
        elif -(2**31) <= n < 2**31:
            self.out.write(b"J" + struct.pack("<i", n))
        else:  # LONG1: little-endian two's complement
            data = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
            self.out.write(b"\x8a" + bytes([len(data)]) + data)

    def _rebuild(self, storage_name: str, key: str, numel: int, offset: int, size, stride) -> None:
        w = self.out.write
        w(b"ctorch._utils\n_rebuild_tensor_v2\n(")
        w(b"(")  # the storage's persistent id
        self._save("storage")
        w(f"ctorch\n{storage_name}\n".encode())
        self._save(key)
        self._save("cpu")
        self._int(numel)
        w(b"tQ")
        self._int(offset)
        self._save(tuple(int(n) for n in size))
        self._save(tuple(int(n) for n in stride))
        w(b"\x89ccollections\nOrderedDict\n)R")  # requires_grad False, no backward hooks
        w(b"tR")

    def _numpy(self, array: np.ndarray) -> None:
        dtype = array.dtype.newbyteorder("=")
        if dtype not in _STORAGE_OF_NUMPY:
            raise TypeError(f"a checkpoint cannot hold {array.dtype} arrays")
        data = np.asarray(array, dtype=dtype.newbyteorder("<"), order="C")  # (ascontiguousarray makes 0-d 1-d)
        key = str(len(self.storages))
        self.storages.append((key, data.reshape(-1).view(np.uint8)))
        strides = tuple(s // data.itemsize for s in data.strides) if data.size else (1,) * data.ndim
        self._rebuild(_STORAGE_OF_NUMPY[dtype], key, data.size, 0, data.shape, strides)

    def _tensor(self, tensor) -> None:
        torch = self._torch
        tensor = tensor.detach()
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        name = _TORCH_STORAGE_NAMES.get(str(tensor.dtype).removeprefix("torch."))
        if name is None:
            raise TypeError(f"a checkpoint cannot hold {tensor.dtype} tensors")
        storage = tensor.untyped_storage()
        key = self._torch_keys.get(storage.data_ptr()) if storage.nbytes() else None
        if key is None:
            key = str(len(self.storages))
            raw = torch.empty(0, dtype=torch.uint8).set_(storage).numpy()  # the storage's bytes, not copied
            self.storages.append((key, raw))
            self._keep.append(storage)
            if storage.nbytes():
                self._torch_keys[storage.data_ptr()] = key
        numel = storage.nbytes() // tensor.element_size()
        self._rebuild(name, key, numel, tensor.storage_offset(), tensor.shape, tensor.stride())


def write(fh: IO[bytes], obj: Any, root: str = "archive") -> None:
    """`obj` in torch.save's format, to a seekable binary file."""
    pickler = _Pickler()
    data = pickler.dump(obj)
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        _member(archive, f"{root}/data.pkl", np.frombuffer(data, np.uint8))
        _member(archive, f"{root}/.format_version", np.frombuffer(b"1", np.uint8))
        _member(archive, f"{root}/.storage_alignment", np.frombuffer(b"64", np.uint8))
        _member(archive, f"{root}/byteorder", np.frombuffer(b"little", np.uint8))
        for key, raw in pickler.storages:
            _member(archive, f"{root}/data/{key}", raw)
        _member(archive, f"{root}/version", np.frombuffer(b"3\n", np.uint8))


def _member(archive: zipfile.ZipFile, name: str, raw: np.ndarray) -> None:
    """A stored member whose bytes start on an ALIGNMENT boundary: the local header's extra field
    (id 0x4246, as torch pads) takes up the slack."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = raw.nbytes
    zip64 = raw.nbytes * 1.05 > zipfile.ZIP64_LIMIT  # zipfile's own test: it then adds a 20-byte zip64 field
    start = archive.start_dir + 30 + len(name.encode()) + 4 + (20 if zip64 else 0)
    padding = -start % ALIGNMENT
    info.extra = struct.pack("<HH", 0x4246, padding) + b"\0" * padding
    with archive.open(info, "w", force_zip64=zip64) as dst:
        dst.write(memoryview(raw))
