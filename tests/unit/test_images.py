"""Image decoding (strict, to 8-bit RGB), the pyramid scales and the batched area crops."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dlcli.errors import DataError
from dlcli.vision import images as V


def pattern(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(h * 1000 + w)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb_png_round_trips(tmp_path):
    pixels = pattern(20, 30)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    loaded = V.load_image(tmp_path / "a.png")
    assert loaded.dtype == torch.uint8 and loaded.shape == (20, 30, 3)
    assert np.array_equal(loaded.numpy(), pixels)


def test_grey_palette_and_alpha_become_rgb(tmp_path):
    grey = pattern(16, 16)[..., 0]
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    loaded = V.load_image(tmp_path / "grey.png").numpy()
    assert all(np.array_equal(loaded[..., c], grey) for c in range(3))

    rgba = np.dstack([pattern(16, 16), np.full((16, 16), 7, np.uint8)])  # nearly transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    assert np.array_equal(V.load_image(tmp_path / "alpha.png").numpy(), rgba[..., :3])  # alpha dropped

    palette = Image.new("P", (14, 12))
    palette.putpalette([0, 0, 0, 250, 10, 20] + [0] * 762)
    palette.paste(1, (0, 0, 7, 12))
    palette.save(tmp_path / "palette.gif")
    loaded = V.load_image(tmp_path / "palette.gif").numpy()
    assert loaded[0, 0].tolist() == [250, 10, 20] and loaded[0, 13].tolist() == [0, 0, 0]


def test_cmyk_is_converted(tmp_path):
    cmyk = Image.new("CMYK", (20, 20), (0, 255, 255, 0))  # full magenta + yellow: red
    cmyk.save(tmp_path / "cmyk.tif")
    loaded = V.load_image(tmp_path / "cmyk.tif").numpy()
    assert loaded.shape == (20, 20, 3) and loaded[5, 5].tolist() == [255, 0, 0]


@pytest.mark.parametrize(("dtype", "suffix"), [(np.uint16, "png"), (np.int32, "tif")])
def test_sixteen_bit_is_scaled_not_clipped(tmp_path, dtype, suffix):
    values = np.array([[0, 257 * 10, 32896, 65535] * 4] * 16, dtype=dtype)
    path = tmp_path / f"deep.{suffix}"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode in ("I;16", "I")
    loaded = V.load_image(path).numpy()
    assert loaded[0, :4, 0].tolist() == [0, 10, 128, 255]


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)  # wide; a white mark in the top-left corner
    pixels[:4, :4] = 255
    picture = Image.fromarray(pixels)
    exif = picture.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    picture.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    loaded = V.load_image(tmp_path / "rotated.jpg").numpy()
    assert loaded.shape == (40, 20, 3)  # tall once upright
    assert loaded[1, -2].mean() > 200 and loaded[1, 1].mean() < 50  # the mark went to the top-right


def test_not_an_image(tmp_path):
    (tmp_path / "notes.jpg").write_text("hello", encoding="utf-8")
    with pytest.raises(DataError, match=r"notes\.jpg: not an image"):
        V.load_image(tmp_path / "notes.jpg")
    with pytest.raises(DataError, match="image not found"):
        V.load_image(tmp_path / "missing.png")
    with pytest.raises(DataError, match="is a directory"):
        V.load_image(tmp_path)


def test_truncated_jpeg(tmp_path):
    Image.fromarray(pattern(64, 64)).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.jpg: damaged or truncated image"):
        V.load_image(tmp_path / "cut.jpg")


def test_too_small(tmp_path):
    Image.fromarray(pattern(11, 40)).save(tmp_path / "thin.png")
    with pytest.raises(DataError, match=r"thin\.png: image is 40x11 pixels; .* at least 12"):
        V.load_image(tmp_path / "thin.png")
    Image.fromarray(pattern(12, 12)).save(tmp_path / "ok.png")
    assert V.load_image(tmp_path / "ok.png").shape == (12, 12, 3)


@pytest.mark.parametrize("side", [40, 100])  # over the limit (Pillow warns), over twice it (Pillow raises)
def test_decompression_bombs_are_refused(tmp_path, monkeypatch, side):
    Image.fromarray(pattern(side, side)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError, match=r"bomb\.png: refused: .*decompression-bomb limit of 1,000 pixels"):
        V.load_image(tmp_path / "bomb.png")


def test_scales():
    found = V.scales(640, 480, min_face=20, factor=0.709)
    assert found[0] == pytest.approx(0.6)
    assert all(b == pytest.approx(a * 0.709) for a, b in zip(found, found[1:]))
    assert 480 * found[-1] >= 12 > 480 * found[-1] * 0.709
    assert len(V.scales(640, 480, min_face=40)) < len(found)
    assert V.scales(30, 30, min_face=40) == []  # the image is smaller than the smallest face sought


def test_crop_resize_is_area_interpolation_of_the_zero_padded_crop():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 30, 40, generator=gen) * 255
    integral = V.integral_images(images)
    boxes = torch.tensor([[0, 0, 40, 30], [5, 3, 29, 27], [-6, -4, 14, 16], [30, 20, 47, 35], [10, 10, 13, 12],
                          [-3, 25, 1, 33]])
    index = torch.tensor([0, 1, 1, 0, 1, 0])
    for size in (24, 7):
        crops = V.crop_resize(integral, index, boxes, size)
        assert crops.shape == (len(boxes), 3, size, size) and crops.dtype == torch.float32
        for crop, (x1, y1, x2, y2), i in zip(crops, boxes.tolist(), index.tolist()):
            padded = torch.zeros(3, y2 - y1, x2 - x1)
            sx, sy, ex, ey = max(x1, 0), max(y1, 0), min(x2, 40), min(y2, 30)
            padded[:, sy - y1:ey - y1, sx - x1:ex - x1] = images[i, :, sy:ey, sx:ex]
            expected = F.interpolate(padded[None], size=(size, size), mode="area")[0]
            assert torch.allclose(crop, expected, atol=1e-3), (x1, y1, x2, y2)


def test_pictures_for_people():
    picture = Image.fromarray(np.full((60, 80, 3), 128, np.uint8))
    face = {"box": [10.0, 10.0, 40.0, 50.0], "score": 0.9, "landmarks": [[20.0, 25.0]] * 5}
    drawn = np.asarray(V.draw_faces(picture, [face]))
    assert drawn[10, 20].tolist() == [0, 255, 0] and drawn[25, 20].tolist() == [255, 0, 0]
    assert np.asarray(picture)[10, 20].tolist() == [128, 128, 128]  # the original is untouched
    crop = V.face_crop(picture, [70.0, 40.0, 90.0, 70.0], size=32)  # runs off the right and bottom edges
    assert crop.size == (32, 32)
    assert np.asarray(crop)[0, 0].tolist() == [128, 128, 128] and np.asarray(crop)[-1, -1].tolist() == [0, 0, 0]


def test_load_photo_scales_down_to_max_side(tmp_path):
    pixels = np.kron(pattern(30, 40), np.ones((10, 10, 1), np.uint8))  # 300 x 400 of 10 px blocks
    Image.fromarray(pixels).save(tmp_path / "a.png")
    Image.fromarray(pixels).save(tmp_path / "a.jpg", quality=95)
    same = V.load_photo(tmp_path / "a.png", max_side=400)
    assert same.pixels.shape == (300, 400, 3) and same.scale == (1.0, 1.0)
    small = V.load_photo(tmp_path / "a.png", max_side=100)
    assert small.pixels.shape == (75, 100, 3) and (small.width, small.height) == (400, 300)
    assert small.scale == (4.0, 4.0)
    box = np.asarray(Image.fromarray(pixels).resize((100, 75), Image.Resampling.BOX))
    assert np.array_equal(small.pixels.numpy(), box)
    drafted = V.load_photo(tmp_path / "a.jpg", max_side=100)  # decoded at 1/2 size, then area-averaged
    assert drafted.pixels.shape == (75, 100, 3) and (drafted.width, drafted.height) == (400, 300)
    assert np.abs(drafted.pixels.numpy().astype(int) - box).mean() < 6


def test_load_photo_scales_the_upright_image(tmp_path):
    pixels = np.zeros((200, 400, 3), np.uint8)  # wide; a white mark in the top-left corner
    pixels[:40, :40] = 255
    picture = Image.fromarray(pixels)
    exif = picture.getexif()
    exif[0x0112] = 6
    picture.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    photo = V.load_photo(tmp_path / "rotated.jpg", max_side=100)
    assert (photo.width, photo.height) == (200, 400) and photo.pixels.shape == (100, 50, 3)
    assert photo.pixels[2, -3].float().mean() > 200 and photo.pixels[2, 2].float().mean() < 50


def test_paths_that_are_no_image_file(tmp_path):
    os.mkfifo(tmp_path / "fifo.png")  # opening it would wait for a writer forever
    with pytest.raises(DataError, match="not a regular file"):
        V.load_image(tmp_path / "fifo.png")
    with pytest.raises(DataError, match="NUL byte"):
        V.load_image("a\0b.png")
    with pytest.raises(DataError, match="cannot open: File name too long"):
        V.load_image("x" * 5000)
    odd = os.fsdecode(b"caf\xe9\n.png")
    with pytest.raises(DataError, match=r"^caf\\xe9\\x0a\.png: image not found"):
        V.load_image(odd)


def test_integral_images_are_running_sums():
    images = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8).float()
    sums = V.integral_images(images)
    assert sums.shape == (2, 6, 8, 3) and sums.dtype == torch.float64
    expected = F.pad(images.permute(0, 2, 3, 1).double().cumsum(1).cumsum(2), (0, 0, 1, 0, 1, 0))
    assert torch.equal(sums, expected)
