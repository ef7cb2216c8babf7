"""The original MTCNN weights (Zhang et al. 2016) as a dlcli checkpoint payload.

Two layouts of the same Caffe-trained weights are read, as users have them:

- facenet-pytorch's state dicts `pnet.pt`, `rnet.pt`, `onet.pt` (read with `weights_only=True`);
- the TensorFlow port's `det1.npy`, `det2.npy`, `det3.npy` (davidsandberg/facenet): a pickled dict
  of layer name -> {"weights", "biases"} or {"alpha"}. NumPy stores such object arrays as a pickle,
  and a pickle can run code; np.load(allow_pickle=True) would run it. These files are read with
  a restricted unpickler that can build NumPy arrays and nothing else, and the result must be a
  dict of dicts of arrays.

The Caffe nets were trained on transposed images (x before y, from the original MATLAB code), so
the TF kernels (kh, kw, in, out) are read as (out, in, kw, kh), as facenet-pytorch did, and the
dense layers after the last conv consume its output flattened in (x, y, channel) order. dlcli's
nets flatten in torch's (channel, y, x) order instead; `_reorder_dense` permutes those inputs.
Files are recognised by their content, not their names; a folder holding them may be given.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import torch

from dlcli.errors import DataError

NETS = ("pnet", "rnet", "onet")
FILE_NAMES = ("pnet.pt", "rnet.pt", "onet.pt", "det1.npy", "det2.npy", "det3.npy")

# facenet-pytorch layer name -> dlcli's, per net (the output heads are renamed; the rest is the same).
HEADS = {
    "pnet": {"conv4_1": "score", "conv4_2": "box"},
    "rnet": {"dense5_1": "score", "dense5_2": "box"},
    "onet": {"dense6_1": "score", "dense6_2": "box", "dense6_3": "landmarks"},
}
BODY = {
    "pnet": ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3"],
    "rnet": ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "dense4", "prelu4"],
    "onet": ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4", "prelu4", "dense5", "prelu5"],
}
# The dense layer reading the last conv's output: (its name, channels, side of the square map).
FIRST_DENSE = {"rnet": ("dense4", 64, 3), "onet": ("dense5", 128, 3)}
# TF port layer name -> facenet-pytorch's.
NPY_LAYERS = {
    "pnet": {"conv1": "conv1", "PReLU1": "prelu1", "conv2": "conv2", "PReLU2": "prelu2", "conv3": "conv3",
             "PReLU3": "prelu3", "conv4-1": "conv4_1", "conv4-2": "conv4_2"},
    "rnet": {"conv1": "conv1", "prelu1": "prelu1", "conv2": "conv2", "prelu2": "prelu2", "conv3": "conv3",
             "prelu3": "prelu3", "conv4": "dense4", "prelu4": "prelu4", "conv5-1": "dense5_1",
             "conv5-2": "dense5_2"},
    "onet": {"conv1": "conv1", "prelu1": "prelu1", "conv2": "conv2", "prelu2": "prelu2", "conv3": "conv3",
             "prelu3": "prelu3", "conv4": "conv4", "prelu4": "prelu4", "conv5": "dense5", "prelu5": "prelu5",
             "conv6-1": "dense6_1", "conv6-2": "dense6_2", "conv6-3": "dense6_3"},
}


def facenet_keys(net: str) -> set[str]:
    layers = BODY[net] + list(HEADS[net])
    return {f"{layer}.weight" for layer in layers} | {f"{layer}.bias" for layer in layers if "prelu" not in layer}


def convert_mtcnn(paths: list[Path]) -> dict:
    """Read one weight file per net (any supported layout) -> a dlcli checkpoint payload."""
    from dlcli.models.mtcnn import MTCNN
    from dlcli.tasks.detect_faces import FacePredict

    found: dict[str, tuple[Path, dict]] = {}
    for path in expand(paths):
        net, state = read_weights(path)
        if net in found:
            raise DataError(f"{path}: holds the {net} weights, as does {found[net][0]}", "give one file per net")
        found[net] = (path, state)
    missing = [net for net in NETS if net not in found]
    if missing:
        raise DataError(f"no weights for {', '.join(missing)} among {', '.join(str(p) for p in paths)}",
                        "give pnet.pt, rnet.pt and onet.pt, or det1.npy, det2.npy and det3.npy")
    state = {f"{net}.{key}": value for net in NETS for key, value in to_dlcli(net, found[net][1]).items()}
    try:
        MTCNN().load_state_dict(state)
    except RuntimeError as exc:
        raise DataError(f"the weights do not fit MTCNN's layers: {exc}") from None
    # the original nets look at crops crossing the image border as facenet-pytorch does
    original_predict = dataclasses.asdict(FacePredict(border="stretch"))
    return {
        "task": "detect_faces",
        "recipe": {"task": "detect_faces", "model": {"type": "mtcnn"}, "predict": original_predict},
        "model": {"type": "mtcnn", "kwargs": {}},
        "state_dict": state,
        "metrics": {},
        "converted_from": [found[net][0].name for net in NETS],
    }


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for the weight files it holds."""
    out = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = [path / name for name in FILE_NAMES if (path / name).is_file()]
            if not inside:
                raise DataError(f"{path}: holds none of {', '.join(FILE_NAMES)}")
            out += inside
        elif path.is_file():
            out.append(path)
        else:
            raise DataError(f"weight file not found: {path.resolve()}")
    return out


def read_weights(path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """(net name, state dict in facenet-pytorch's layout) from either kind of file."""
    with open(path, "rb") as fh:
        is_npy = fh.read(6) == b"\x93NUMPY"
    state = _from_npy(path, read_npy_dict(path)) if is_npy else _read_pt(path)
    for net in NETS:
        if set(state) == facenet_keys(net):
            return net, state
    raise DataError(f"{path}: not P-Net, R-Net or O-Net weights (layers: {', '.join(sorted(state))[:300]})")


def _read_pt(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise DataError(f"{path}: refused to load: the file holds objects that are not plain data") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: not a readable torch or .npy weight file: {str(exc)[:200]}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path}: not a state dict of tensors")
    return state


def _from_npy(path: Path, layers: dict[str, dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """The TF port's layers in facenet-pytorch's names and tensor layouts."""
    net = next((n for n in NETS if set(layers) == set(NPY_LAYERS[n])), None)
    if net is None:
        raise DataError(f"{path}: not det1/det2/det3 MTCNN weights (layers: {', '.join(sorted(layers))[:300]})")
    state = {}
    for tf_name, name in NPY_LAYERS[net].items():
        params = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in layers[tf_name].items()}
        if "alpha" in params:  # PReLU
            state[f"{name}.weight"] = params["alpha"].reshape(-1)
            continue
        if {"weights", "biases"} - set(params):
            raise DataError(f"{path}: layer {tf_name} lacks weights or biases")
        weight = params["weights"]
        # conv (kh, kw, in, out) -> (out, in, kw, kh): the kernel swaps x and y; dense (in, out) -> (out, in)
        state[f"{name}.weight"] = weight.permute(3, 2, 1, 0) if weight.dim() == 4 else weight.t()
        state[f"{name}.bias"] = params["biases"].reshape(-1)
    return state


def to_dlcli(net: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """facenet-pytorch's layout -> dlcli's: rename the heads, reorder the first dense layer's inputs."""
    out = {}
    for key, value in state.items():
        layer, param = key.rsplit(".", 1)
        out[f"{HEADS[net].get(layer, layer)}.{param}"] = value.float().contiguous().clone()
    if net in FIRST_DENSE:
        layer, channels, side = FIRST_DENSE[net]
        out[f"{layer}.weight"] = _reorder_dense(out[f"{layer}.weight"], channels, side)
    return out


def _reorder_dense(weight: torch.Tensor, channels: int, side: int) -> torch.Tensor:
    """(out, x * y * c) inputs ordered (x, y, c), as the original flattens -> ordered (c, y, x)."""
    out_features = weight.shape[0]
    if weight.shape[1] != channels * side * side:
        raise DataError(f"dense layer has {weight.shape[1]} inputs, expected {channels * side * side}")
    return weight.reshape(out_features, side, side, channels).permute(0, 3, 2, 1).reshape(out_features, -1).clone()


# ---------------------------------------------------------------- .npy without running code


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays and plain containers only: any other global is refused."""

    def find_class(self, module: str, name: str):
        allowed = _allowed_globals()
        if (module, name) in allowed:
            return allowed[(module, name)]
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def _allowed_globals() -> dict:
    # The array rebuilder of the NumPy that is running; pickles name it by either module path
    # (numpy.core before NumPy 2, numpy._core since). Python 3 pickles of protocol 2 spell bytes
    # as _codecs.encode(text, "latin1").
    import codecs

    reconstruct = np.empty(0).__reduce__()[0]
    return {("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): codecs.encode}


def read_npy_dict(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """A .npy file holding a pickled dict of dicts of arrays, read without running code."""
    from numpy.lib import format as npy

    try:
        with open(path, "rb") as fh:
            version = npy.read_magic(fh)
            read_header = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}.get(version)
            if read_header is None:
                raise DataError(f"{path}: .npy format version {version} is not supported")
            shape, _, dtype = read_header(fh)
            if dtype != np.dtype(object) or shape != ():
                raise DataError(f"{path}: holds a {dtype} array of shape {shape}, not a dict of layers")
            # latin1: the widely shared files were pickled by Python 2, whose byte strings this decodes
            value = _ArrayUnpickler(fh, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: refused to load: {exc}; only NumPy arrays are allowed in a weight file") from None
    except (ValueError, EOFError, OSError, AttributeError, TypeError) as exc:
        raise DataError(f"{path}: not a readable .npy weight file: {str(exc)[:200]}") from None
    return _check_layers(path, value)


def _check_layers(path: Path, value) -> dict[str, dict[str, np.ndarray]]:
    if isinstance(value, np.ndarray) and value.dtype == object and value.shape == ():
        value = value.item()
    if not isinstance(value, dict):
        raise DataError(f"{path}: holds a {type(value).__name__}, not a dict of layers")
    layers = {}
    for layer, params in value.items():
        if not isinstance(params, dict) or not all(
                isinstance(v, np.ndarray) and v.dtype.kind in "fiu" for v in params.values()):
            raise DataError(f"{path}: layer {layer!r} is not a dict of numeric arrays")
        layers[_text(layer)] = {_text(k): v for k, v in params.items()}
    return layers


def _text(key) -> str:
    return key.decode("latin1") if isinstance(key, bytes) else str(key)
