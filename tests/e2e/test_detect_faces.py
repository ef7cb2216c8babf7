"""`dlcli convert mtcnn` and `dlcli detect-faces` on fabricated weights and generated images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import FACENET_SHAPES, assert_fails, assert_ok
from PIL import Image

SCORE_HEADS = ("conv4_1", "dense5_1", "dense6_1")


def write_weights(folder, seed: int = 0) -> list:
    """facenet-pytorch-style pnet/rnet/onet.pt with random weights whose score heads say "face"
    everywhere, so the whole cascade has work to do; box offsets stay small."""
    gen = torch.Generator().manual_seed(seed)
    paths = []
    for net, shapes in FACENET_SHAPES.items():
        state = {}
        for layer, shape in shapes.items():
            state[f"{layer}.weight"] = torch.randn(shape, generator=gen) * (0.25 if "prelu" in layer else 0.05)
            if "prelu" not in layer:
                state[f"{layer}.bias"] = torch.tensor([-5.0, 5.0]) if layer in SCORE_HEADS else torch.zeros(shape[0])
        torch.save(state, folder / f"{net}.pt")
        paths.append(folder / f"{net}.pt")
    return paths


def converted_detector(root, seed: int = 0):
    """A checkpoint converted by `dlcli convert mtcnn` from write_weights' files."""
    from dlcli.cli import run

    write_weights(root, seed)
    assert run(["convert", "mtcnn", str(root / "pnet.pt"), str(root / "rnet.pt"), str(root / "onet.pt"),
                "--out", str(root / "mtcnn.pt")]) == 0
    return root / "mtcnn.pt"


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return converted_detector(tmp_path_factory.mktemp("mtcnn"))


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for name, (h, w) in (("first.png", (60, 80)), ("second.jpg", (72, 48)), ("third.png", (60, 80))):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / name)
        paths.append(tmp_path / name)
    (tmp_path / "broken.jpg").write_text("a text file, not a picture", encoding="utf-8")
    return paths


def test_convert_prints_a_summary(cli, tmp_path):
    write_weights(tmp_path)
    result = cli("convert", "mtcnn", tmp_path, "-o", tmp_path / "out.pt")
    assert_ok(result)
    summary = result.json()
    assert summary["task"] == "detect_faces" and summary["parameters"] == 495_850
    assert summary["converted_from"] == ["pnet.pt", "rnet.pt", "onet.pt"]
    info = cli("info", tmp_path / "out.pt").json()
    assert info["recipe"]["predict"]["thresholds"] == [0.6, 0.7, 0.7]


def test_detect_faces_records_in_input_order(cli, detector, photos):
    result = cli("detect-faces", *photos, "--model", detector, "--batch-size", "2")
    assert_ok(result)
    records = result.records()
    assert [r["image"] for r in records] == [str(p) for p in photos]
    assert [(r["width"], r["height"]) for r in records] == [(80, 60), (48, 72), (80, 60)]
    for record in records:
        assert set(record) == {"image", "width", "height", "faces"} and record["faces"]
        for face in record["faces"]:
            assert set(face) == {"box", "score", "landmarks"}
            assert len(face["box"]) == 4 and len(face["landmarks"]) == 5 and 0.7 < face["score"] <= 1
    # random pixels, so the two same-size images must not share their faces
    assert records[0]["faces"] != records[2]["faces"]


def test_a_bad_image_gives_an_error_record_and_exit_1(cli, detector, photos):
    broken = photos[0].parent / "broken.jpg"
    result = cli("detect-faces", photos[0], broken, photos[1], "--model", detector)
    assert result.code == 1
    records = result.records()
    assert len(records) == 3 and "faces" in records[0] and "faces" in records[2]
    assert records[1]["image"] == str(broken) and "broken.jpg: not an image" in records[1]["error"]
    assert set(records[1]) == {"image", "error"}
    assert "dlcli: error: 1 of 3 images could not be read" in result.err and "Traceback" not in result.err


def test_paths_from_stdin(cli, detector, photos):
    by_args = cli("detect-faces", *photos[:2], "--model", detector)
    stdin = "".join(f"{p}\n" for p in photos[:2]).encode() + b"\n"
    from_stdin = cli("detect-faces", "--model", detector, stdin=stdin)
    dash = cli("detect-faces", "-", "--model", detector, stdin=stdin)
    assert_ok(from_stdin)
    assert from_stdin.out == by_args.out == dash.out and len(from_stdin.lines) == 2


def test_draw_and_crop(cli, detector, photos, tmp_path):
    result = cli("detect-faces", photos[0], photos[1], "--model", detector, "--draw", tmp_path / "drawn",
                 "--crop", tmp_path / "crops", "--crop-size", "40")
    assert_ok(result)
    records = result.records()
    drawn = Image.open(tmp_path / "drawn" / "first.png")
    assert drawn.size == (80, 60)
    assert not np.array_equal(np.asarray(drawn.convert("RGB")), np.asarray(Image.open(photos[0]).convert("RGB")))
    crops = sorted(p.name for p in (tmp_path / "crops").iterdir())
    expected = sorted(f"{stem}_{i}.png" for stem, r in zip(("first", "second"), records)
                      for i in range(len(r["faces"])))
    assert crops == expected
    assert Image.open(tmp_path / "crops" / "second_0.png").size == (40, 40)


def test_options_override_the_checkpoint(cli, detector, photos):
    strict = cli("detect-faces", photos[0], "--model", detector, "--thresholds", "0.6,0.7,1.0")
    assert_ok(strict)
    assert strict.json()["faces"] == []
    fewer_scales = cli("detect-faces", photos[0], "--model", detector, "--min-face", "50", "--factor", "0.5")
    assert_ok(fewer_scales)
    default = cli("detect-faces", photos[0], "--model", detector)
    assert len(fewer_scales.json()["faces"]) < len(default.json()["faces"])


@pytest.mark.parametrize(("args", "message"), [
    (("--model", "{model}", "--thresholds", "0.6,0.7"), "--thresholds"),
    (("--model", "{model}", "--thresholds", "a,b,c"), "--thresholds"),
    (("--model", "{model}", "--factor", "1.5"), "--factor"),
    (("--model", "{model}", "x.png", "-"), "cannot be mixed"),
])
def test_usage_errors(cli, detector, photos, args, message):
    args = [a.replace("{model}", str(detector)) for a in args]
    assert_fails(cli("detect-faces", photos[0], *args) if "-" not in args else cli("detect-faces", *args), 2,
                 message)


def test_other_models_and_commands_refuse(cli, detector, trained, photos):
    assert_fails(cli("detect-faces", photos[0], "--model", trained), 1, "needs a detect_faces model")
    assert_fails(cli("classify", detector, stdin=b"hello\n"), 1, "needs a classify model")


def test_convert_errors(cli, tmp_path):
    paths = write_weights(tmp_path)
    assert_fails(cli("convert", "mtcnn", *paths[:2], "--out", tmp_path / "m.pt"), 1, "no weights for onet")
    assert_fails(cli("convert", "mtcn", *paths, "--out", tmp_path / "m.pt"), 2, "unknown kind", "did you mean 'mtcnn'")
    assert not (tmp_path / "m.pt").exists()
