"""Images for the face detector: strict decoding to 8-bit RGB, the scale pyramid, batched crops,
and the pictures `dlcli detect-faces --draw/--crop` writes.

Resampling is "area" (box-filter) averaging everywhere the detector looks: the pyramid uses
`F.interpolate(mode="area")` (= adaptive average pooling), exactly as facenet-pytorch does, and
`crop_resize` computes the same adaptive-pooling windows from integral images, so a whole batch of
crops of different sizes is resampled in a few gathers instead of one interpolate call per crop.
The original MTCNN code uses OpenCV's INTER_AREA for both, which weighs fractional pixels at the
window edges; adaptive pooling rounds the window outwards. Neither antialiases beyond that.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from dlcli.errors import DataError

MIN_SIDE = 12  # P-Net's input cell: nothing smaller can hold a face
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


# ---------------------------------------------------------------- decoding


def load_image(path: str | Path) -> torch.Tensor:
    """Decode an image file to an RGB uint8 tensor (H, W, 3), upright as its EXIF orientation says.

    Strict: a damaged or truncated file is a DataError, never a half-grey picture. (This relies on
    Pillow's default `ImageFile.LOAD_TRUNCATED_IMAGES = False`; dlcli never changes it.)
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Over MAX_IMAGE_PIXELS Pillow only warns (over twice that it raises): refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                image = ImageOps.exif_transpose(image)
                rgb = to_rgb(image)
    except FileNotFoundError:
        raise DataError(f"{path}: image not found ({path.resolve()})") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an image") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image (or a format Pillow cannot read)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{path}: refused: the image is larger than Pillow's decompression-bomb limit of "
                        f"{Image.MAX_IMAGE_PIXELS:,} pixels") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated data, broken headers, bad EXIF
        raise DataError(f"{path}: damaged or truncated image: {exc}") from None
    width, height = rgb.size
    if min(width, height) < MIN_SIDE:
        raise DataError(f"{path}: image is {width}x{height} pixels; face detection needs at least "
                        f"{MIN_SIDE} on each side")
    return torch.from_numpy(np.array(rgb, dtype=np.uint8))  # (H, W, 3)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: grey, palette, alpha (dropped), CMYK, 16/32-bit integer grey."""
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT:
        # Pillow's own conversion clips at 255; scale the 16-bit range down instead ('I' is read as
        # 16-bit, the usual source of 32-bit integer images).
        values = np.asarray(image).astype(np.int64).clip(0, 65535)
        image = Image.fromarray(((values + 128) // 257).astype(np.uint8), mode="L")
    return image.convert("RGB")


# ---------------------------------------------------------------- pyramid and crops


def scales(width: int, height: int, min_face: float = 20, factor: float = 0.709) -> list[float]:
    """Pyramid scales: the smallest face sought (min_face px) maps onto P-Net's 12 px cell first,
    then each level shrinks by `factor` while the image's short side still covers a cell."""
    scale = MIN_SIDE / min_face
    side = min(width, height) * scale
    out = []
    while side >= MIN_SIDE:  # computed incrementally, as the reference implementations do
        out.append(scale)
        scale *= factor
        side *= factor
    return out


def level_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """A pyramid level's size: int(side * scale + 1), as facenet-pytorch (the original code's ceil
    differs only where side * scale is a whole number)."""
    return int(height * scale + 1), int(width * scale + 1)


def resize_area(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Box-filter resize of a batch (B, C, H, W) -> (B, C, h, w)."""
    return F.interpolate(images, size=size, mode="area")


def integral_images(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H + 1, W + 1, C) float64 running sums, zero first row and column."""
    sums = images.permute(0, 2, 3, 1).double().cumsum(1).cumsum(2)
    return F.pad(sums, (0, 0, 1, 0, 1, 0))


def crop_resize(integral: torch.Tensor, image_index: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crops resized to size x size by area averaging: (N,) image indices, (N, 4) integer boxes
    (x1, y1, x2, y2), x2/y2 exclusive, each at least 1 px wide -> (N, C, size, size) float32.

    Parts of a box outside its image read as zeros (the original MTCNN pads crops that way), and
    the result equals `F.interpolate(padded_crop, size, mode="area")` for each crop.
    """
    _, rows, cols, channels = integral.shape
    boxes = boxes.long()
    y0, y1 = _windows(boxes[:, 1], boxes[:, 3] - boxes[:, 1], size)  # (N, S) each
    x0, x1 = _windows(boxes[:, 0], boxes[:, 2] - boxes[:, 0], size)
    count = ((y1 - y0)[:, :, None] * (x1 - x0)[:, None, :]).unsqueeze(-1)  # (N, S, S, 1)
    # rows of the flattened (B * rows * cols, C) sums; clamping to the image reads zeros outside it
    base = image_index.long()[:, None, None] * rows * cols
    top, bottom = (base + y.clamp(0, rows - 1)[:, :, None] * cols for y in (y0, y1))  # (N, S, 1)
    left, right = (x.clamp(0, cols - 1)[:, None, :] for x in (x0, x1))  # (N, 1, S)
    flat = integral.reshape(-1, channels)

    def at(index: torch.Tensor) -> torch.Tensor:  # (N, S, S) -> (N, S, S, C)
        return flat.index_select(0, index.reshape(-1)).view(*index.shape, channels)

    total = at(bottom + right) - at(top + right) - at(bottom + left) + at(top + left)
    return (total / count).float().permute(0, 3, 1, 2)  # channels-last in memory


def _windows(start: torch.Tensor, length: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive-pooling windows [lo, hi) of `size` cells over each span (start, length)."""
    i = torch.arange(size, device=start.device)
    lo = start[:, None] + torch.div(i * length[:, None], size, rounding_mode="floor")
    hi = start[:, None] + torch.div((i + 1) * length[:, None] + size - 1, size, rounding_mode="floor")
    return lo, hi


# ---------------------------------------------------------------- pictures for people


def to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(image.cpu().numpy(), mode="RGB")


def draw_faces(image: Image.Image, faces: list[dict]) -> Image.Image:
    """A copy with each face's box (green) and landmarks (red) drawn on it."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    line = max(1, round(min(out.size) / 250))
    for face in faces:
        draw.rectangle([round(v) for v in face["box"]], outline=(0, 255, 0), width=line)
        r = 2 * line
        for x, y in face.get("landmarks") or ():
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 0, 0))
    return out


def face_crop(image: Image.Image, box: list[float], size: int = 160) -> Image.Image:
    """The square around a face box, resized to size x size; outside the image is black."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1, 1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    square = image.crop((left, top, left + round(side), top + round(side)))
    return square.resize((size, size), Image.Resampling.BICUBIC)
