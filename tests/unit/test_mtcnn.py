"""MTCNN: net shapes, P-Net's fully convolutional map, the weight converter's layouts, the cascade."""

from __future__ import annotations

import importlib.util
import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import FACENET_SHAPES, REPO, RunsCodeOnLoad

from dlcli import api, checkpoint
from dlcli.convert import mtcnn as convert
from dlcli.errors import CheckpointError, DataError
from dlcli.models.mtcnn import MTCNN, ONet, PNet, RNet

NPY_NAMES = {"pnet": "det1", "rnet": "det2", "onet": "det3"}


def fabricated_state(net: str, seed: int) -> dict[str, torch.Tensor]:
    """Random weights in facenet-pytorch's names and shapes."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for layer, shape in FACENET_SHAPES[net].items():
        state[f"{layer}.weight"] = torch.randn(shape, generator=gen) * (0.25 if "prelu" in layer else 0.3)
        if "prelu" not in layer:
            state[f"{layer}.bias"] = torch.randn(shape[0], generator=gen) * 0.1
    return state


def fabricated_npy(net: str, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Random weights as the TF port stores them: conv (kh, kw, in, out) over transposed images,
    dense (in, out) with inputs in (x, y, channel) order, PReLU alpha."""
    rng = np.random.default_rng(seed)
    out = {}
    for tf_name, name in convert.NPY_LAYERS[net].items():
        shape = FACENET_SHAPES[net][name]
        if "prelu" in name:
            out[tf_name] = {"alpha": rng.normal(0, 0.25, shape).astype(np.float32)}
            continue
        tf_shape = (shape[2], shape[3], shape[1], shape[0]) if len(shape) == 4 else (shape[1], shape[0])
        out[tf_name] = {"weights": rng.normal(0, 0.3, tf_shape).astype(np.float32),
                        "biases": rng.normal(0, 0.1, shape[0]).astype(np.float32)}
    return out


def write_pt(folder, seed: int = 0):
    paths = []
    for i, net in enumerate(convert.NETS):
        torch.save(fabricated_state(net, seed + i), folder / f"{net}.pt")
        paths.append(folder / f"{net}.pt")
    return paths


def write_npy(folder, seed: int = 0):
    layers = {net: fabricated_npy(net, seed + i) for i, net in enumerate(convert.NETS)}
    paths = []
    for net, value in layers.items():
        np.save(folder / f"{NPY_NAMES[net]}.npy", value, allow_pickle=True)
        paths.append(folder / f"{NPY_NAMES[net]}.npy")
    return paths, layers


def loaded(payload: dict) -> MTCNN:
    model = MTCNN().eval()
    model.load_state_dict(payload["state_dict"])
    return model


# ---------------------------------------------------------------- nets


@pytest.mark.parametrize(("height", "width"), [(12, 12), (13, 12), (24, 31), (50, 37)])
def test_pnet_map_size(height, width):
    scores, offsets = PNet()(torch.randn(2, 3, height, width))

    def side(n):
        return math.ceil((n - 2) / 2) - 4

    assert scores.shape == (2, 2, side(height), side(width)) and offsets.shape == (2, 4, side(height), side(width))


@pytest.mark.parametrize("shape", [(1, 2, 6, 8), (2, 3, 7, 9), (1, 1, 1, 5)])
def test_strided_max_pool_is_torchs_ceil_mode_pool(shape):
    from dlcli.models.mtcnn import max_pool_2x2

    x = torch.randn(shape)
    assert torch.equal(max_pool_2x2(x), F.max_pool2d(x, 2, 2, ceil_mode=True))


def test_pnet_is_fully_convolutional():
    torch.manual_seed(0)
    net = PNet().eval()
    image = torch.randn(1, 3, 41, 36)
    scores, offsets = net(image)
    h, w = scores.shape[2:]
    for i, j in [(0, 0), (3, 5), (h - 1, w - 1), (h // 2, 0)]:
        cell_scores, cell_offsets = net(image[:, :, 2 * i:2 * i + 12, 2 * j:2 * j + 12])
        assert cell_scores.shape[2:] == (1, 1)
        assert torch.allclose(cell_scores[0, :, 0, 0], scores[0, :, i, j], atol=1e-5)
        assert torch.allclose(cell_offsets[0, :, 0, 0], offsets[0, :, i, j], atol=1e-5)


@pytest.mark.parametrize("batch", [1, 5])
def test_rnet_and_onet_shapes(batch):
    scores, offsets = RNet()(torch.randn(batch, 3, 24, 24))
    assert scores.shape == (batch, 2) and offsets.shape == (batch, 4)
    scores, offsets, points = ONet()(torch.randn(batch, 3, 48, 48))
    assert scores.shape == (batch, 2) and offsets.shape == (batch, 4) and points.shape == (batch, 10)


def test_nets_train_and_round_trip_through_a_checkpoint(tmp_path):
    torch.manual_seed(1)
    model = MTCNN()
    crops = torch.randn(4, 3, 48, 48)
    scores, offsets, points = model.onet(crops)
    loss = F.cross_entropy(scores, torch.tensor([0, 1, 1, 0])) + offsets.pow(2).mean() + points.pow(2).mean()
    for net, size in ((model.pnet, 12), (model.rnet, 24)):
        loss = loss + sum(out.pow(2).sum() for out in net(torch.randn(2, 3, size, size)))
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    checkpoint.save(tmp_path / "m.pt", {"task": "detect_faces", "recipe": {}, "model": {"type": "mtcnn", "kwargs": {}},
                                        "state_dict": model.state_dict(), "metrics": {}})
    again = api.load_model(tmp_path / "m.pt").model
    model.eval()
    for ours, theirs in zip(model.onet(crops), again.onet(crops)):
        assert torch.equal(ours, theirs)


def test_a_checkpoint_naming_an_unknown_model_is_refused(tmp_path):
    checkpoint.save(tmp_path / "m.pt", {"task": "detect_faces", "recipe": {}, "model": {"type": "retinaface",
                                        "kwargs": {}}, "state_dict": {}, "metrics": {}})
    with pytest.raises(CheckpointError, match="retinaface"):
        api.load_model(tmp_path / "m.pt")


# ---------------------------------------------------------------- converter


def reference_rnet(state: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """R-Net as the original lays it out: the dense layer reads the conv output as (x, y, channel)."""
    def conv(h, name):
        return F.prelu(F.conv2d(h, state[f"{name}.weight"], state[f"{name}.bias"]),
                       state[f"prelu{name[-1]}.weight"])

    h = F.max_pool2d(conv(x, "conv1"), 3, 2, ceil_mode=True)
    h = F.max_pool2d(conv(h, "conv2"), 3, 2, ceil_mode=True)
    h = conv(h, "conv3").permute(0, 3, 2, 1).reshape(len(x), -1)  # (B, W * H * C)
    h = F.prelu(F.linear(h, state["dense4.weight"], state["dense4.bias"]), state["prelu4.weight"])
    return (F.linear(h, state["dense5_1.weight"], state["dense5_1.bias"]),
            F.linear(h, state["dense5_2.weight"], state["dense5_2.bias"]))


def test_facenet_layout_is_renamed_and_dense_inputs_reordered(tmp_path):
    paths = write_pt(tmp_path, seed=3)
    payload = convert.convert_mtcnn(list(reversed(paths)))  # recognised by content, in any order
    model = loaded(payload)
    pnet, rnet, onet = (fabricated_state(net, 3 + i) for i, net in enumerate(convert.NETS))
    assert torch.equal(model.pnet.conv1.weight, pnet["conv1.weight"])
    assert torch.equal(model.pnet.box.bias, pnet["conv4_2.bias"])
    assert torch.equal(model.onet.landmarks.weight, onet["dense6_3.weight"])
    assert not torch.equal(model.rnet.dense4.weight, rnet["dense4.weight"])  # reordered, so a real test below
    x = torch.randn(3, 3, 24, 24)
    for ours, expected in zip(model.rnet(x), reference_rnet(rnet, x)):
        assert torch.allclose(ours, expected, atol=1e-5)
    # O-Net's dense5 by hand: the conv4 output flattened (x, y, channel), as the original reads it
    features = torch.randn(2, 128, 3, 3)
    expected = features.permute(0, 3, 2, 1).reshape(2, -1) @ onet["dense5.weight"].t() + onet["dense5.bias"]
    assert torch.allclose(model.onet.dense5(features.flatten(1)), expected, atol=1e-5)
    assert payload["task"] == "detect_faces" and payload["model"] == {"type": "mtcnn", "kwargs": {}}
    assert payload["converted_from"] == ["pnet.pt", "rnet.pt", "onet.pt"]


def test_npy_layout_transposes_kernels_and_reorders_dense_inputs(tmp_path):
    _, layers = write_npy(tmp_path, seed=4)
    model = loaded(convert.convert_mtcnn([tmp_path]))  # a folder stands for its weight files
    det1, det2 = layers["pnet"], layers["rnet"]
    # the TF kernel applied to the transposed image, transposed back == dlcli's conv on the image
    image = torch.randn(1, 3, 17, 23)
    kernel = torch.from_numpy(det1["conv1"]["weights"]).permute(3, 2, 0, 1)  # (out, in, kh, kw) over (x, y)
    expected = F.conv2d(image.transpose(2, 3), kernel, torch.from_numpy(det1["conv1"]["biases"])).transpose(2, 3)
    assert torch.allclose(model.pnet.conv1(image), expected, atol=1e-5)
    assert torch.equal(model.pnet.prelu1.weight, torch.from_numpy(det1["PReLU1"]["alpha"]))
    # R-Net's first dense layer: TF flattens its (B, x, y, C) tensor
    features = torch.randn(2, 64, 3, 3)
    tf_input = features.permute(0, 3, 2, 1).reshape(2, -1)
    expected = tf_input @ torch.from_numpy(det2["conv4"]["weights"]) + torch.from_numpy(det2["conv4"]["biases"])
    assert torch.allclose(model.rnet.dense4(features.flatten(1)), expected, atol=1e-5)
    assert torch.equal(model.rnet.box.weight, torch.from_numpy(det2["conv5-2"]["weights"]).t())


@pytest.mark.parametrize("protocol", [2, 4])
def test_npy_pickled_with_other_protocols(tmp_path, protocol):
    import pickle

    layers = fabricated_npy("onet", 1)
    with open(tmp_path / "det3.npy", "wb") as fh:  # what np.save writes, with another pickle protocol
        np.lib.format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump(np.array(layers, dtype=object), fh, protocol=protocol)
    net, state = convert.read_weights(tmp_path / "det3.npy")
    assert net == "onet"
    assert torch.equal(state["dense6_3.weight"], torch.from_numpy(layers["conv6-3"]["weights"]).t())


def test_npy_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    layers = fabricated_npy("pnet", 0)
    layers["conv1"]["weights"] = RunsCodeOnLoad(marker)
    np.save(tmp_path / "det1.npy", layers, allow_pickle=True)
    with pytest.raises(DataError, match=r"det1\.npy: refused to load: refused global (io|builtins)\.open"):
        convert.read_weights(tmp_path / "det1.npy")
    assert not marker.exists()


def test_npy_of_the_wrong_shape_is_refused(tmp_path):
    np.save(tmp_path / "list.npy", np.array([{"conv1": [1, 2]}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="not a dict of layers"):
        convert.read_npy_dict(tmp_path / "list.npy")
    np.save(tmp_path / "lists.npy", {"conv1": {"weights": [1.0, 2.0]}}, allow_pickle=True)
    with pytest.raises(DataError, match="'conv1' is not a dict of numeric arrays"):
        convert.read_npy_dict(tmp_path / "lists.npy")
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(DataError, match="not a dict of layers"):
        convert.read_npy_dict(tmp_path / "plain.npy")


def test_missing_duplicate_and_foreign_files(tmp_path):
    paths = write_pt(tmp_path)
    with pytest.raises(DataError, match="no weights for onet"):
        convert.convert_mtcnn(paths[:2])
    with pytest.raises(DataError, match="holds the pnet weights, as does"):
        convert.convert_mtcnn(paths + [paths[0]])
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(DataError, match=r"other\.pt: not P-Net, R-Net or O-Net weights"):
        convert.convert_mtcnn(paths + [tmp_path / "other.pt"])
    state = fabricated_state("pnet", 0)
    state["conv1.weight"] = torch.zeros(10, 3, 5, 5)
    torch.save(state, tmp_path / "pnet.pt")
    with pytest.raises(DataError, match="do not fit MTCNN's layers"):
        convert.convert_mtcnn(paths)


# ---------------------------------------------------------------- the cascade


def random_images(seed: int, sizes) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (h, w, 3), generator=gen, dtype=torch.uint8) for h, w in sizes]


def same_faces(a: list[dict], b: list[dict]) -> bool:
    """Equal up to float noise (a batched convolution may sum in another order)."""
    def flat(faces):
        return torch.tensor([f["box"] + [f["score"]] + sum(f["landmarks"], []) for f in faces]).reshape(len(faces), -1)

    return len(a) == len(b) and torch.allclose(flat(a), flat(b), atol=1e-3)


def test_cascade_runs_end_to_end_on_random_weights(monkeypatch):
    torch.manual_seed(0)
    model = MTCNN().eval()
    images = random_images(0, [(48, 64), (60, 50), (48, 64)])
    found = model.detect(images, thresholds=(0.0, 0.0, 0.0), min_face=16)
    assert len(found) == 3 and all(found)  # every threshold passed: each image keeps some boxes
    for faces in found:
        scores = [f["score"] for f in faces]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
        for face in faces:
            assert len(face["box"]) == 4 and all(math.isfinite(v) for v in face["box"])
            assert len(face["landmarks"]) == 5 and all(len(p) == 2 for p in face["landmarks"])
    # same-size images batched together give what each gives alone
    assert same_faces(model.detect(images[:1], thresholds=(0.0, 0.0, 0.0), min_face=16)[0], found[0])
    one_by_one = model.detect(images, thresholds=(0.0, 0.0, 0.0), min_face=16, batch_size=1)
    assert all(same_faces(a, b) for a, b in zip(one_by_one, found))
    monkeypatch.setattr("dlcli.models.mtcnn.BATCH_PIXELS", 1)  # large images: one at a time whatever batch_size
    assert all(same_faces(a, b) for a, b in zip(model.detect(images, thresholds=(0.0, 0.0, 0.0), min_face=16), found))
    assert model.detect(images, thresholds=(0.0, 0.0, 1.0), min_face=16) == [[], [], []]
    assert model.detect(random_images(1, [(30, 30)]), min_face=40) == [[]]  # no pyramid level at all
    with pytest.raises(ValueError, match="border"):
        model.detect(images, border="wrap")


# ---------------------------------------------------------------- against facenet-pytorch


@pytest.mark.skipif(importlib.util.find_spec("facenet_pytorch") is None, reason="facenet-pytorch is not installed")
def test_same_boxes_as_facenet_pytorch(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    bench = __import__("mtcnn_vs_facenet")
    ours, peer = bench.both_detectors()
    stand_in = sys.modules.get("torchvision")
    assert stand_in is None or getattr(stand_in, "__file__", None)  # the stand-ins did not stay behind
    (photo, pasted), = bench.compose_photos(1, seed=3)
    theirs = bench.peer_faces(peer, photo)
    image = torch.from_numpy(photo)
    for border, least in (("stretch", 0.999), ("pad", 0.95)):
        mine = ours.detect([image], border=border)[0]
        ious, only_ours, only_theirs = bench.match(mine, theirs)
        assert (only_ours, only_theirs) == (0, 0) and len(ious) == len(theirs) >= len(pasted) - 1
        assert min(ious) >= least, (border, ious)
