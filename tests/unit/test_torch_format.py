"""torch.save's format written without torch: torch.load(weights_only=True) and dlcli's own reader
read back every dtype, layout, shared storage and plain value; members are aligned; anything that
is not plain data is refused; no torch is imported to write NumPy weights."""

from __future__ import annotations

import io
import math
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from dlcli import torch_format

PLAIN = {"none": None, "flags": [True, False], "ints": [0, 255, 256, -1, 2**31 - 1, -(2**31), 2**40, -(2**70)],
         "floats": (0.5, -1e300, math.inf), "text": "naïve 中文 \U0001f600", "empty": ([], {}, (), ""),
         "ordered": OrderedDict([("b", 1), ("a", [2, (3,)])]), 7: "int key"}


def _write(path: Path, obj) -> None:
    with open(path, "wb") as fh:
        torch_format.write(fh, obj)


def test_plain_values_read_back_in_torch_and_in_dlcli(tmp_path):
    path = tmp_path / "m.pt"
    _write(path, PLAIN)
    for loaded in (torch.load(path, weights_only=True), torch_format.unpickle(path)):
        assert loaded == PLAIN
        assert type(loaded["ordered"]) is OrderedDict and type(loaded["floats"]) is tuple


def test_tensors_of_every_dtype_and_layout_read_back(tmp_path):
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    tensors = {"f32": base, "rows": base[1:], "transposed": base.t(), "column": base[:, 2],
               "f64": torch.rand(3, dtype=torch.float64), "f16": torch.tensor([1.5, -2.0], dtype=torch.float16),
               "i64": torch.tensor([2**40, -3]), "i32": torch.tensor([-7], dtype=torch.int32),
               "i16": torch.tensor([300], dtype=torch.int16), "i8": torch.tensor([-8], dtype=torch.int8),
               "u8": torch.tensor([255], dtype=torch.uint8), "bool": torch.tensor([True, False]),
               "c64": torch.tensor([1 + 2j], dtype=torch.complex64), "scalar": torch.tensor(2.5),
               "empty": torch.zeros(0, 5), "param": torch.nn.Parameter(torch.ones(2))}
    path = tmp_path / "m.pt"
    _write(path, {"state_dict": tensors})
    by_torch = torch.load(path, weights_only=True)["state_dict"]
    ours = torch_format.unpickle(path)["state_dict"]
    for name, tensor in tensors.items():
        want = tensor.detach()
        assert by_torch[name].dtype == want.dtype and by_torch[name].shape == want.shape, name
        assert torch.equal(by_torch[name], want), name
        assert by_torch[name].stride() == want.stride(), name
        assert not by_torch[name].requires_grad, name
        np.testing.assert_array_equal(ours[name], want.numpy(), err_msg=name)
        assert ours[name].dtype == want.numpy().dtype, name


def test_bfloat16_tensors_read_back_in_torch(tmp_path):
    path = tmp_path / "m.pt"
    tensor = torch.tensor([1.5, -3.25, 1e30], dtype=torch.bfloat16)
    _write(path, {"w": tensor})
    assert torch.equal(torch.load(path, weights_only=True)["w"], tensor)


def test_views_of_one_storage_share_it_in_the_file(tmp_path):
    base = torch.arange(1000, dtype=torch.float32)
    path = tmp_path / "m.pt"
    _write(path, {"whole": base, "tail": base[600:], "tied": base})
    with zipfile.ZipFile(path) as archive:
        assert sum("/data/" in name for name in archive.namelist()) == 1
    loaded = torch.load(path, weights_only=True)
    assert loaded["tail"].untyped_storage().data_ptr() == loaded["whole"].untyped_storage().data_ptr()
    assert torch.equal(loaded["tail"], base[600:]) and loaded["tail"].storage_offset() == 600


def test_numpy_arrays_of_any_order_and_layout_read_back_as_tensors(tmp_path):
    arrays = {"f32": np.arange(6, dtype=np.float32).reshape(2, 3), "fortran": np.asfortranarray(np.eye(3)),
              "strided": np.arange(10, dtype=np.int64)[::3], "big_endian": np.array([1.5, 2.5], dtype=">f4"),
              "empty": np.zeros((0, 4), np.float32), "scalar": np.array(3, np.int32), "bool": np.array([True])}
    path = tmp_path / "m.pt"
    _write(path, {"arrays": arrays, "item": np.float64(0.25), "count": np.int64(3)})
    loaded = torch.load(path, weights_only=True)
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded["arrays"][name].numpy(), array, err_msg=name)
        assert loaded["arrays"][name].shape == array.shape, name
    assert loaded["arrays"]["big_endian"].dtype == torch.float32
    assert loaded["item"] == 0.25 and type(loaded["item"]) is float and loaded["count"] == 3


def test_every_member_starts_on_an_aligned_offset(tmp_path):
    path = tmp_path / "m.pt"
    _write(path, {"a": np.ones(3, np.float32), "b": torch.ones(5, dtype=torch.float16), "name": "x" * 37})
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # every CRC holds
        for info in archive.infolist():
            name_len, extra_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little"), \
                int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
            assert (info.header_offset + 30 + name_len + extra_len) % torch_format.ALIGNMENT == 0, info.filename


@pytest.mark.parametrize("value", [{1, 2}, Path("x"), b"bytes", torch.device("cpu"), np.array(["a"])])
def test_what_is_not_plain_data_is_refused(value):
    with pytest.raises(TypeError, match="checkpoint"):
        torch_format.write(io.BytesIO(), {"x": value})


def test_numpy_weights_are_written_without_importing_torch(tmp_path):
    path = tmp_path / "m.pt"
    code = ("import sys, numpy as np; from dlcli import checkpoint; "
            "checkpoint.save(sys.argv[1], {'state_dict': {'w': np.arange(6.0).reshape(2, 3)}}); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert torch.load(path, weights_only=True)["state_dict"]["w"].sum() == 15
