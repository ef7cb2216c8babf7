"""MTCNN training samples: square face / part-face / non-face / landmark crops of one size with
their targets, read from the standard sample format or made from annotated photos
(dlcli/vision/samples.py), and cached as .npz.

Targets follow the MTCNN convention. For a crop window of side w taken from a photo, the box
target is (gt_x1 - x1, gt_y1 - y1, gt_x2 - x2, gt_y2 - y2) / w, so it does not change when the
crop is resized; landmarks are (x, y) fractions of the crop, left eye, right eye, nose, left and
right mouth corner as seen in the image.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dlcli.errors import DataError

NEG, POS, PART, LANDMARK = 0, 1, 2, 3
KINDS = {"neg": NEG, "pos": POS, "part": PART, "landmark": LANDMARK}


@dataclass
class CropSet:
    images: np.ndarray  # (N, S, S, 3) uint8 RGB
    kinds: np.ndarray  # (N,) int8: NEG, POS, PART or LANDMARK
    boxes: np.ndarray  # (N, 4) float32 box targets, zero where there is none (neg, landmark), NaN where
    # a face's box is unknown (face crops that only teach the face score)
    landmarks: np.ndarray  # (N, 5, 2) float32 landmark targets, zero where there are none

    def __len__(self) -> int:
        return len(self.kinds)

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def counts(self) -> dict[str, int]:
        return {name: int((self.kinds == kind).sum()) for name, kind in KINDS.items()}

    def select(self, index) -> CropSet:
        return CropSet(self.images[index], self.kinds[index], self.boxes[index], self.landmarks[index])

    @staticmethod
    def cat(parts: list[CropSet]) -> CropSet:
        return CropSet(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                         ("images", "kinds", "boxes", "landmarks")))

    @staticmethod
    def empty(size: int) -> CropSet:
        return CropSet(np.zeros((0, size, size, 3), np.uint8), np.zeros(0, np.int8), np.zeros((0, 4), np.float32),
                       np.zeros((0, 5, 2), np.float32))

    def resized(self, size: int) -> CropSet:
        """The same samples at another side length (targets are fractions, so they stay)."""
        if size == self.size:
            return self
        images = np.stack([np.asarray(Image.fromarray(x).resize((size, size), Image.BILINEAR, reducing_gap=None))
                           for x in self.images]) if len(self) else np.zeros((0, size, size, 3), np.uint8)
        return CropSet(images, self.kinds, self.boxes, self.landmarks)

    def save(self, path: Path) -> None:
        """Atomically, so an interrupted run never leaves a half-written cache file."""
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, images=self.images, kinds=self.kinds, boxes=self.boxes, landmarks=self.landmarks)
        tmp.replace(path)

    @staticmethod
    def load(path: Path) -> CropSet:
        with np.load(path, allow_pickle=False) as data:
            return CropSet(data["images"], data["kinds"], data["boxes"], data["landmarks"])


def read_face_crops(path: str | Path) -> CropSet:
    """Face crops without box targets, from an .npz holding `faces` (N, H, W) grey or (N, H, W, 3)
    RGB uint8 and optionally `split`: only rows marked "train" are read then (the others are kept
    for dev sets). They count as positives for the face score only (box targets NaN)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            faces = data["faces"]
            keep = data["split"] == "train" if "split" in data else np.ones(len(faces), bool)
    except FileNotFoundError:
        raise DataError(f"face crops not found: {path.resolve()}") from None
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(f"{path}: not an .npz of face crops with a 'faces' array: {exc}") from None
    faces = faces[keep]
    if faces.ndim == 3:
        faces = np.repeat(faces[..., None], 3, axis=3)
    if faces.ndim != 4 or faces.shape[3] != 3 or faces.shape[1] != faces.shape[2] or faces.dtype != np.uint8:
        raise DataError(f"{path}: 'faces' must be square uint8 crops, (N, S, S) or (N, S, S, 3); got "
                        f"{faces.shape} {faces.dtype}")
    n = len(faces)
    return CropSet(faces, np.full(n, POS, np.int8), np.full((n, 4), np.nan, np.float32),
                   np.zeros((n, 5, 2), np.float32))


def read_crops(path: str | Path) -> CropSet:
    """A sample list (.tsv beside its .zip) or face crops (.npz)."""
    return read_face_crops(path) if Path(path).suffix.lower() == ".npz" else read_crop_list(path)


def read_crop_list(path: str | Path) -> CropSet:
    """The standard sample format: a TSV `member kind values...` beside a zip of S x S JPEGs of the
    same name (`mtcnn_crops_12.tsv` + `mtcnn_crops_12.zip`). Errors name file:line."""
    path = Path(path)
    archive = path.with_suffix(".zip")
    if not archive.exists():
        raise DataError(f"{path}: the crops archive {archive.resolve()} is missing",
                        "the list and its .zip of crops must sit side by side")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"crop list not found: {path.resolve()}") from None
    images, kinds, boxes, points = [], [], [], []
    size = None
    with zipfile.ZipFile(archive) as zf:
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.startswith("#"):
                continue
            member, kind, values = _parse_line(path, number, line)
            try:
                with Image.open(io.BytesIO(zf.read(member))) as image:
                    pixels = np.asarray(image.convert("RGB"))
            except KeyError:
                raise DataError(f"{path}:{number}: {member} is not in {archive.name}") from None
            except OSError as exc:
                raise DataError(f"{path}:{number}: {member} is not a readable image: {exc}") from None
            size = size or pixels.shape[0]
            if pixels.shape[:2] != (size, size):
                raise DataError(f"{path}:{number}: {member} is {pixels.shape[1]}x{pixels.shape[0]}; every crop "
                                f"must be {size}x{size} like the first")
            images.append(pixels)
            kinds.append(kind)
            boxes.append(values if kind in (POS, PART) else [0.0] * 4)
            points.append(values if kind == LANDMARK else [0.0] * 10)
    if not kinds:
        raise DataError(f"{path}: no crops listed")
    return CropSet(np.stack(images), np.array(kinds, np.int8), np.array(boxes, np.float32),
                   np.array(points, np.float32).reshape(-1, 5, 2))


def _parse_line(path: Path, number: int, line: str) -> tuple[str, int, list[float]]:
    fields = line.rstrip("\n").split("\t")
    if len(fields) < 2 or fields[1] not in KINDS:
        raise DataError(f"{path}:{number}: expected 'member<TAB>kind<TAB>values', kind one of "
                        f"{', '.join(KINDS)}")
    kind = KINDS[fields[1]]
    want = {NEG: 0, POS: 4, PART: 4, LANDMARK: 10}[kind]
    try:
        values = [float(v) for v in fields[2:]]
    except ValueError:
        raise DataError(f"{path}:{number}: targets must be numbers") from None
    if len(values) != want:
        raise DataError(f"{path}:{number}: a {fields[1]} crop has {want} target values, not {len(values)}")
    return fields[0], kind, values
