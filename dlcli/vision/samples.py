"""MTCNN training samples made from annotated whole photos, after Zhang et al. (2016): random
non-face windows, windows shifted around each face (face or part-face by IoU, plus landmark crops
where the photo has landmarks), and the windows an earlier cascade stage proposes ("mined").

Results are `CropSet`s, targets as dlcli/vision/crops.py describes. Windows are integer squares
(x, y, side) covering image[y:y + side, x:x + side]; boxes are 0-based with exclusive x2/y2.
`generate` runs one of the makers over many photos in cached, resumable shards.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from dlcli.errors import DataError
from dlcli.nn.boxes import iou
from dlcli.vision.annotations import Annotation
from dlcli.vision.crops import LANDMARK, NEG, PART, POS, CropSet
from dlcli.vision.images import MIN_SIDE, load_image

NEG_IOU, PART_IOU, POS_IOU = 0.3, 0.4, 0.65  # the paper's thresholds
TRIES = 5  # random negatives drawn per one wanted: most land on background, so a few tries suffice


class Plan(NamedTuple):
    """Windows to cut and their labels, before any pixels are touched."""

    windows: np.ndarray  # (N, 3) int64 x, y, side
    kinds: np.ndarray  # (N,) int8
    boxes: np.ndarray  # (N, 4) float32
    landmarks: np.ndarray  # (N, 5, 2) float32

    @staticmethod
    def of(windows: np.ndarray, kind: int, boxes: np.ndarray | None = None,
           landmarks: np.ndarray | None = None) -> Plan:
        n = len(windows)
        return Plan(np.asarray(windows, np.int64).reshape(n, 3), np.full(n, kind, np.int8),
                    np.zeros((n, 4), np.float32) if boxes is None else boxes.astype(np.float32),
                    np.zeros((n, 5, 2), np.float32) if landmarks is None else landmarks.astype(np.float32))

    @staticmethod
    def cat(parts: list[Plan]) -> Plan:
        parts = parts or [Plan.of(np.zeros((0, 3)), NEG)]
        return Plan(*(np.concatenate(arrays) for arrays in zip(*parts)))


# ---------------------------------------------------------------- geometry


def square(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) -> (N, 4) float64: the square with each box's centre and longer side."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    size = boxes[:, 2:] - boxes[:, :2]  # (N, 2) w, h
    side = size.max(1, keepdims=True)
    top_left = boxes[:, :2] + (size - side) / 2
    return np.concatenate([top_left, top_left + side], 1)


def window_boxes(windows: np.ndarray) -> np.ndarray:
    """(N, 3) x, y, side -> (N, 4) float64 boxes."""
    windows = np.asarray(windows, np.float64).reshape(-1, 3)
    return np.concatenate([windows[:, :2], windows[:, :2] + windows[:, 2:]], 1)


def _iou(windows: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, 3) windows, (M, 4) boxes -> (N, M) IoU, in float64 so thresholds are not blurred."""
    a = torch.from_numpy(window_boxes(windows))
    b = torch.from_numpy(np.asarray(boxes, np.float64).reshape(-1, 4))
    return iou(a, b).numpy()


def _best(windows: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each window's highest IoU with `boxes` (0 when there are none) and that box's index."""
    overlaps = _iou(windows, boxes)
    if overlaps.shape[1] == 0:
        return np.zeros(len(windows)), np.zeros(len(windows), np.int64)
    which = overlaps.argmax(1)
    return overlaps[np.arange(len(windows)), which], which


def _box_targets(windows: np.ndarray, gt: np.ndarray) -> np.ndarray:
    side = windows[:, 2:3].astype(np.float64)
    return (gt - window_boxes(windows)) / side


def _labelled(windows: np.ndarray, faces: np.ndarray) -> list[Plan]:
    """POS / PART by the best IoU with a face, box targets towards that face; the rest dropped."""
    best, which = _best(windows, faces)
    out = []
    for kind, keep in ((POS, best >= POS_IOU), (PART, (best >= PART_IOU) & (best < POS_IOU))):
        out.append(Plan.of(windows[keep], kind, _box_targets(windows[keep], faces[which[keep]])))
    return out


# ---------------------------------------------------------------- random windows


def _random_negatives(rng: np.random.Generator, height: int, width: int, count: int, boxes: np.ndarray) -> Plan:
    top = min(height, width) // 2
    if count <= 0 or top < MIN_SIDE:
        return Plan.of(np.zeros((0, 3)), NEG)
    side = rng.integers(MIN_SIDE, top + 1, count * TRIES)
    x = rng.integers(0, width - side + 1)
    y = rng.integers(0, height - side + 1)
    windows = np.stack([x, y, side], 1)
    return Plan.of(windows[_best(windows, boxes)[0] < NEG_IOU][:count], NEG)


def _near_negatives(rng: np.random.Generator, height: int, width: int, count: int, face: np.ndarray,
                    boxes: np.ndarray) -> Plan:
    """Windows touching the face but overlapping it (and every other box) little: the hard
    background right next to faces that random windows rarely hit."""
    top = min(height, width) // 2
    if count <= 0 or top < MIN_SIDE:
        return Plan.of(np.zeros((0, 3)), NEG)
    x1, y1 = int(np.floor(face[0])), int(np.floor(face[1]))
    w, h = max(int(np.ceil(face[2] - x1)), 1), max(int(np.ceil(face[3] - y1)), 1)
    side = rng.integers(MIN_SIDE, top + 1, count * TRIES)
    x = np.maximum(x1 + rng.integers(np.maximum(-side, -x1), w), 0)
    y = np.maximum(y1 + rng.integers(np.maximum(-side, -y1), h), 0)
    windows = np.stack([x, y, side], 1)
    windows = windows[(x + side <= width) & (y + side <= height)]
    return Plan.of(windows[_best(windows, boxes)[0] < NEG_IOU][:count], NEG)


def _around(rng: np.random.Generator, height: int, width: int, count: int, face: np.ndarray) -> np.ndarray:
    """`count` squares of side 0.8 min(w, h) .. 1.25 max(w, h), centre shifted by up to 0.2 w / 0.2 h,
    moved inside the image (too big ones dropped); labels come from the IoU afterwards."""
    w, h = face[2] - face[0], face[3] - face[1]
    low = max(int(0.8 * min(w, h)), 1)
    side = rng.integers(low, max(int(np.ceil(1.25 * max(w, h))), low) + 1, count)
    cx = (face[0] + face[2]) / 2 + rng.uniform(-0.2, 0.2, count) * w
    cy = (face[1] + face[3]) / 2 + rng.uniform(-0.2, 0.2, count) * h
    x, y = np.floor(cx - side / 2 + 0.5).astype(np.int64), np.floor(cy - side / 2 + 0.5).astype(np.int64)
    fits = (side <= width) & (side <= height)
    side, x, y = side[fits], x[fits], y[fits]
    return np.stack([np.clip(x, 0, width - side), np.clip(y, 0, height - side), side], 1)


def _landmark_windows(rng: np.random.Generator, height: int, width: int, count: int, face: np.ndarray,
                      points: np.ndarray) -> Plan:
    windows = _around(rng, height, width, count, face)
    relative = (points[None] - windows[:, None, :2]) / windows[:, None, 2:]  # (N, 5, 2)
    inside = ((relative >= 0) & (relative <= 1)).all((1, 2))
    keep = inside & (_iou(windows, face[None])[:, 0] >= POS_IOU)
    return Plan.of(windows[keep], LANDMARK, landmarks=relative[keep])


def _random_plan(annotation: Annotation, height: int, width: int, rng: np.random.Generator, *, negatives: int,
                 near_negatives: int, around: int, min_face: int) -> Plan:
    boxes = np.asarray(annotation.boxes, np.float64).reshape(-1, 4)
    ignore = np.asarray(annotation.ignore, bool)
    faces = boxes[~ignore]
    big = (boxes[:, 2:] - boxes[:, :2] >= min_face).all(1)
    points = annotation.landmarks
    parts = [_random_negatives(rng, height, width, negatives, boxes)]
    for i in np.flatnonzero(~ignore & big):
        parts.append(_near_negatives(rng, height, width, near_negatives, boxes[i], boxes))
        parts.extend(_labelled(_around(rng, height, width, around, boxes[i]), faces))
        if points is not None and np.isfinite(points[i]).all():
            parts.append(_landmark_windows(rng, height, width, around, boxes[i], points[i].astype(np.float64)))
    return Plan.cat(parts)


def random_samples(annotation: Annotation, image: np.ndarray, size: int, rng: np.random.Generator, *,
                   negatives: int = 50, near_negatives: int = 5, around: int = 20, min_face: int = 12) -> CropSet:
    """One photo's samples for training a net from scratch (P-Net, or any stage without a cascade):
    up to `negatives` random background windows (IoU < 0.3 with every box, ignored ones included),
    up to `near_negatives` background windows beside each face, and `around` tries per face for
    POS / PART windows and for LANDMARK windows (those holding all five points at IoU >= 0.65).
    Faces ignored or under `min_face` on a side get no windows of their own."""
    height, width = image.shape[:2]
    plan = _random_plan(annotation, height, width, rng, negatives=negatives, near_negatives=near_negatives,
                        around=around, min_face=min_face)
    return _cut(image, plan, size)


# ---------------------------------------------------------------- mined windows


def _mined_plan(annotation: Annotation, height: int, width: int, candidates: np.ndarray) -> Plan:
    squares = square(candidates)
    x, y = np.floor(squares[:, 0] + 0.5), np.floor(squares[:, 1] + 0.5)
    side = np.floor(squares[:, 2] - squares[:, 0] + 0.5)
    windows = np.stack([x, y, side], 1).astype(np.int64)
    # a window with no pixel of the photo would be an all-black crop, no use even as a negative
    seen = (side >= 1) & (x < width) & (y < height) & (x + side > 0) & (y + side > 0)
    windows = windows[seen]
    boxes = np.asarray(annotation.boxes, np.float64).reshape(-1, 4)
    ignore = np.asarray(annotation.ignore, bool)
    best = _best(windows, boxes[~ignore])[0]
    # an unlabelled face is no negative: keep such windows out of the training set altogether
    near_ignored = _best(windows, boxes[ignore])[0] >= NEG_IOU
    negatives = Plan.of(windows[(best < NEG_IOU) & ~near_ignored], NEG)
    return Plan.cat([*_labelled(windows, boxes[~ignore]), negatives])


def mined_samples(annotation: Annotation, image: np.ndarray, candidates: np.ndarray, size: int) -> CropSet:
    """One photo's samples from the boxes earlier cascade stages proposed on it (for R-Net / O-Net):
    each made square as the cascade does, then POS (IoU >= 0.65 with a face), PART (0.4 .. 0.65) or
    NEG (< 0.3 with every face and every ignored box); anything else is dropped. Parts of a window
    outside the photo are black, as the cascade sees them."""
    height, width = image.shape[:2]
    return _cut(image, _mined_plan(annotation, height, width, candidates), size)


# ---------------------------------------------------------------- pixels


def crop(image: np.ndarray, window: np.ndarray, size: int) -> np.ndarray:
    """image[y:y + side, x:x + side] (black outside the image) resized to (size, size, 3), bilinear."""
    x, y, side = (int(v) for v in window)
    height, width = image.shape[:2]
    if x >= 0 and y >= 0 and x + side <= width and y + side <= height:
        patch = image[y:y + side, x:x + side]
    else:
        patch = np.zeros((side, side, 3), np.uint8)
        top, left = max(y, 0), max(x, 0)
        bottom, right = min(y + side, height), min(x + side, width)
        if bottom > top and right > left:
            patch[top - y:bottom - y, left - x:right - x] = image[top:bottom, left:right]
    picture = Image.fromarray(np.ascontiguousarray(patch), mode="RGB")
    return np.asarray(picture.resize((size, size), Image.BILINEAR, reducing_gap=None))


def _cut(image: np.ndarray, plan: Plan, size: int) -> CropSet:
    if not len(plan.kinds):
        return CropSet.empty(size)
    images = np.stack([crop(image, window, size) for window in plan.windows])
    return CropSet(images, plan.kinds, plan.boxes, plan.landmarks)


# ---------------------------------------------------------------- many photos, cached


def generate(annotations: list[Annotation], size: int, cache_dir: Path,
             make: Callable[[Annotation, np.ndarray, np.random.Generator], CropSet], *, seed: int = 0,
             shard: int = 100, progress: Callable[[int, int], None] | None = None) -> CropSet:
    """`make` over every photo, `shard` photos at a time, each shard saved to cache_dir as it
    finishes; shards already there are loaded instead, so a stopped run resumes. Shard k draws
    from its own rng (seed, k), so a resumed run yields exactly what an unbroken one would.
    `cache_dir` must identify the inputs and options (see `cache_key`), `shard` included."""
    if shard < 1:
        raise ValueError(f"shard must be at least 1, not {shard}")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    total = -(-len(annotations) // shard)
    parts = []
    for k in range(total):
        path = cache_dir / f"shard_{k:05d}.npz"
        part = _load_shard(path, size)
        if part is None:
            part = _make_shard(annotations[k * shard:(k + 1) * shard], size, make, np.random.default_rng([seed, k]))
            part.save(path)
        parts.append(part)
        if progress is not None:
            progress(k + 1, total)
    return CropSet.cat(parts) if parts else CropSet.empty(size)


def _load_shard(path: Path, size: int) -> CropSet | None:
    """A cached shard, or None when it is missing or unusable (it is then made again)."""
    if not path.exists():
        return None
    try:
        part = CropSet.load(path)
    except (OSError, ValueError, KeyError):
        return None
    return part if part.images.shape[1:] == (size, size, 3) else None


def _make_shard(annotations: list[Annotation], size: int, make, rng: np.random.Generator) -> CropSet:
    parts = []
    for annotation in annotations:
        try:
            pixels = load_image(annotation.image).numpy()
        except DataError as exc:
            where = f"{annotation.source}: " if annotation.source else ""
            raise DataError(where + exc.message, exc.hint) from None
        part = make(annotation, pixels, rng)
        if part.images.shape[1:] != (size, size, 3):
            raise ValueError(f"make returned {part.images.shape[1:]} crops; expected ({size}, {size}, 3)")
        parts.append(part)
    return CropSet.cat(parts) if parts else CropSet.empty(size)


def cache_key(*parts) -> str:
    """A short hash naming a cache for these inputs and options. Paths (also inside lists, dicts
    and dataclasses such as Annotation) count with their size and modification time, so an edited
    file gets a fresh cache; arrays by their contents; functions by their qualified name."""
    text = json.dumps([_describe(part) for part in parts], sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _describe(part):
    if isinstance(part, Path):
        try:
            stat = part.stat()
            return ["path", str(part.resolve()), stat.st_size, stat.st_mtime_ns]
        except OSError:
            return ["path", str(part.resolve()), None, None]
    if isinstance(part, np.ndarray):
        digest = hashlib.sha1(np.ascontiguousarray(part).tobytes()).hexdigest()
        return ["array", str(part.dtype), list(part.shape), digest]
    if dataclasses.is_dataclass(part) and not isinstance(part, type):
        return [type(part).__qualname__, {f.name: _describe(getattr(part, f.name)) for f in dataclasses.fields(part)}]
    if isinstance(part, dict):
        return {str(key): _describe(value) for key, value in part.items()}
    if isinstance(part, (list, tuple)):
        return [_describe(value) for value in part]
    if isinstance(part, functools.partial):
        return ["partial", _describe(part.func), _describe(part.args), _describe(part.keywords)]
    if callable(part) and hasattr(part, "__qualname__"):
        # repr() of a function holds its memory address, different in every run
        return ["callable", getattr(part, "__module__", ""), part.__qualname__]
    if part is None or isinstance(part, (bool, int, float, str)):
        return part
    return repr(part)
