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

import os
import stat
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, UnidentifiedImageError

from dlcli.errors import DataError
from dlcli.pathlists import display_path

MIN_SIDE = 12  # P-Net's input cell: nothing smaller can hold a face
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


# ---------------------------------------------------------------- decoding


@dataclass(frozen=True)
class Photo:
    """A decoded image file: the pixels the detector looks at, and the size of the upright image
    in the file, which may be larger (`load_photo(path, max_side)`)."""

    pixels: torch.Tensor  # (h, w, 3) uint8, upright
    width: int
    height: int

    @property
    def scale(self) -> tuple[float, float]:
        """File pixels per detector pixel, along x and y: 1.0 unless the image was scaled down."""
        return self.width / self.pixels.shape[1], self.height / self.pixels.shape[0]


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Decode an image file to an RGB uint8 tensor (H, W, 3), upright as its EXIF orientation says.

    Strict: a damaged or truncated file is a DataError, never a half-grey picture. (This relies on
    Pillow's default `ImageFile.LOAD_TRUNCATED_IMAGES = False`; dlcli never changes it.)
    """
    return load_photo(path).pixels


def load_photo(path: str | os.PathLike, max_side: int | None = None) -> Photo:
    """Decode an image file as `load_image` does; with `max_side`, scaled down by area averaging so
    that its longer side is at most `max_side` pixels (a JPEG is decoded at a reduced size to begin
    with, which bounds the memory and time big photos take). Anything that goes wrong with the file
    is a DataError naming it (shown with its undecodable bytes as \\xNN, see `display_path`)."""
    shown = display_path(path)
    try:
        with _open_regular(path, shown) as fh, warnings.catch_warnings():
            # Over MAX_IMAGE_PIXELS Pillow only warns (over twice that it raises): refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fh, formats=_formats()) as image:
                pixels, width, height = _decode(image, max_side)
    except DataError:
        raise
    except UnidentifiedImageError:
        raise DataError(f"{shown}: not an image (or a format Pillow cannot read)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{shown}: refused: the image is larger than Pillow's decompression-bomb limit of "
                        f"{Image.MAX_IMAGE_PIXELS:,} pixels") from None
    except MemoryError:
        raise DataError(f"{shown}: not enough memory to decode this image") from None
    except Exception as exc:  # truncated data, broken headers, bad EXIF, a decoder's own failure
        raise DataError(f"{shown}: damaged or truncated image: {_reason(exc)}") from None
    if min(width, height) < MIN_SIDE:
        raise DataError(f"{shown}: image is {width}x{height} pixels; face detection needs at least "
                        f"{MIN_SIDE} on each side")
    return Photo(pixels, width, height)


@contextmanager
def _open_regular(path: str | os.PathLike, shown: str):
    """The file opened for reading; anything but a regular file (a directory, a FIFO that would
    block, a device) or a path the system refuses is a DataError."""
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise DataError(f"{shown}: is a directory, not an image")
        if not stat.S_ISREG(mode):
            raise DataError(f"{shown}: not a regular file (a pipe, socket or device), not an image")
        fh = open(path, "rb")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        raise DataError(f"{shown}: image not found ({display_path(os.path.abspath(path))})") from None
    except ValueError:  # open() and stat() refuse a path holding a NUL byte
        raise DataError(f"{shown}: not a file name (it holds a NUL byte)") from None
    except OSError as exc:  # permission denied, name too long, a loop of links, ...
        raise DataError(f"{shown}: cannot open: {exc.strerror or exc}") from None
    with fh:
        yield fh


def _decode(image: Image.Image, max_side: int | None) -> tuple[torch.Tensor, int, int]:
    """(pixels (h, w, 3) upright, the upright width and height in the file)."""
    width, height = image.size
    orientation = image.getexif().get(_ORIENTATION, 1)
    target = _fitted((width, height), max_side)
    if target != (width, height) and image.format == "JPEG":
        image.draft("RGB", target)  # DCT scaling: decodes at 1/2, 1/4 or 1/8 of the size, no smaller than target
    image.load()
    rgb = to_rgb(image)
    if rgb.size != target:
        rgb = rgb.resize(target, Image.Resampling.BOX)
    method = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None  # a bad tag: as stored
    if method is not None:
        rgb = rgb.transpose(method)
        if method in _SWAPS_AXES:
            width, height = height, width
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)), width, height  # (h, w, 3)


def _fitted(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """`size` scaled down so that its longer side is `max_side`, or as it is when that fits."""
    longer = max(size)
    if not max_side or longer <= max_side:
        return size
    return tuple(max(1, round(side * max_side / longer)) for side in size)


def _reason(exc: Exception) -> str:
    """What a decoder said; for an error of another kind than Pillow's usual ones, also its type."""
    text = str(exc).strip()
    if text and isinstance(exc, (OSError, ValueError, SyntaxError)):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _formats() -> tuple[str, ...]:
    """Every format Pillow reads except EPS, which Pillow decodes by running Ghostscript on the file."""
    global _READABLE
    if _READABLE is None:
        Image.init()
        _READABLE = tuple(f for f in Image.OPEN if f != "EPS")
    return _READABLE


_READABLE: tuple[str, ...] | None = None
_ORIENTATION = 0x0112  # the EXIF tag
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
_SWAPS_AXES = (Image.Transpose.TRANSPOSE, Image.Transpose.ROTATE_270, Image.Transpose.TRANSVERSE,
               Image.Transpose.ROTATE_90)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: grey, palette, alpha (dropped), CMYK, 16/32-bit integer grey."""
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT:
        # Pillow's own conversion clips at 255; scale the 16-bit range down instead ('I' is read as
        # 16-bit, the usual source of 32-bit integer images).
        values = np.asarray(image).astype(np.int32).clip(0, 65535)
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
    """(B, C, H, W) -> (B, H + 1, W + 1, C) float64 running sums, zero first row and column.
    Summed in place: one array of 24 bytes a pixel (RGB), no temporary copies of it."""
    b, c, h, w = images.shape
    sums = images.new_zeros((b, h + 1, w + 1, c), dtype=torch.float64)
    sums[:, 1:, 1:] = images.permute(0, 2, 3, 1)
    return sums.cumsum_(1).cumsum_(2)


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
