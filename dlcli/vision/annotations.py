"""Face annotations of whole photos, for training a detector from images and for `dlcli evaluate`.

Two formats, told apart by the file name (`.jsonl`/`.json` is JSON Lines, anything else WIDER FACE):

- JSON Lines, one photo per line: {"image": "photos/a.jpg", "boxes": [[x1, y1, x2, y2], ...],
  "landmarks": [[[x, y] x 5] or null per box] (optional), "ignore": [bool per box] (optional)}.
  Boxes are 0-based pixels with exclusive x2/y2, as `dlcli detect-faces` writes them.
- WIDER FACE's `wider_face_bbx_gt.txt`: an image path line, a face-count line, then one line per
  face `x y w h blur expression illumination invalid occlusion pose` (a photo with no faces has one
  line of zeros). Faces flagged invalid are kept as ignored boxes.

Image paths resolve relative to the annotation file's folder (for WIDER also its `images/` folder,
where the official archive keeps them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlcli.errors import DataError


@dataclass
class Annotation:
    image: Path
    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2
    ignore: np.ndarray  # (N,) bool: counts neither as a hit nor as a miss
    landmarks: np.ndarray | None = None  # (N, 5, 2) float32, NaN rows where a box has none
    source: str = ""  # "file:line", for messages

    @property
    def n_faces(self) -> int:
        return int((~self.ignore).sum())


def read_annotations(path: str | Path, fmt: str = "auto") -> list[Annotation]:
    """Every photo's annotation; a malformed line is a DataError naming file:line."""
    path = Path(path)
    if fmt == "auto":
        fmt = "jsonl" if path.suffix.lower() in (".jsonl", ".json") else "wider"
    if fmt not in ("jsonl", "wider"):
        raise DataError(f"{path}: unknown annotation format {fmt!r}", "use jsonl or wider")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"annotation file not found: {path.resolve()}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text: {exc}") from None
    lines = text.splitlines()
    found = _read_jsonl(path, lines) if fmt == "jsonl" else _read_wider(path, lines)
    if not found:
        raise DataError(f"{path}: no annotated images")
    return found


def _boxes(path: Path, line: int, raw, what: str = "boxes") -> np.ndarray:
    try:
        boxes = np.asarray(raw, dtype=np.float32).reshape(-1, 4)
    except (TypeError, ValueError):
        raise DataError(f"{path}:{line}: {what} must be a list of [x1, y1, x2, y2]") from None
    if not np.isfinite(boxes).all() or (boxes[:, 2:] <= boxes[:, :2]).any():
        raise DataError(f"{path}:{line}: every box needs finite x1 < x2 and y1 < y2")
    return boxes


def _read_jsonl(path: Path, lines: list[str]) -> list[Annotation]:
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
        if not isinstance(record, dict) or not isinstance(record.get("image"), str):
            raise DataError(f"{path}:{number}: each line needs an \"image\" path and a \"boxes\" list")
        boxes = _boxes(path, number, record.get("boxes", []))
        n = len(boxes)
        ignore = record.get("ignore", [False] * n)
        if not isinstance(ignore, list) or len(ignore) != n or not all(isinstance(x, bool) for x in ignore):
            raise DataError(f"{path}:{number}: \"ignore\" must be a list of {n} true/false values, one per box")
        landmarks = _landmarks(path, number, record.get("landmarks"), n)
        out.append(Annotation(path.parent / record["image"], boxes, np.array(ignore, dtype=bool), landmarks,
                              f"{path}:{number}"))
    return out


def _landmarks(path: Path, line: int, raw, n: int) -> np.ndarray | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != n:
        raise DataError(f"{path}:{line}: \"landmarks\" must hold one entry per box ({n}), null for none")
    points = np.full((n, 5, 2), np.nan, dtype=np.float32)
    for i, entry in enumerate(raw):
        if entry is None:
            continue
        try:
            points[i] = np.asarray(entry, dtype=np.float32).reshape(5, 2)
        except (TypeError, ValueError):
            raise DataError(f"{path}:{line}: landmarks of box {i + 1} must be five [x, y] points") from None
    return points


def _read_wider(path: Path, lines: list[str]) -> list[Annotation]:
    out, i = [], 0
    while i < len(lines):
        name = lines[i].strip()
        if not name:
            i += 1
            continue
        start = i + 1
        try:
            count = int(lines[i + 1])
        except (IndexError, ValueError):
            raise DataError(f"{path}:{i + 2}: expected the number of faces of {name}") from None
        rows = []
        for j in range(i + 2, i + 2 + max(count, 1)):
            try:
                rows.append([float(v) for v in lines[j].split()[:8]])
            except (IndexError, ValueError):
                raise DataError(f"{path}:{j + 1}: expected a face line 'x y w h blur expression illumination "
                                "invalid ...'") from None
            if len(rows[-1]) < 4:
                raise DataError(f"{path}:{j + 1}: a face line needs at least x y w h")
        i += 2 + max(count, 1)
        rows = rows[:count]
        xywh = np.array([r[:4] for r in rows], dtype=np.float32).reshape(-1, 4)
        invalid = np.array([len(r) > 7 and r[7] > 0 for r in rows], dtype=bool)
        # WIDER has boxes of zero width; they can only be ignored
        invalid |= (xywh[:, 2] <= 0) | (xywh[:, 3] <= 0)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + np.maximum(xywh[:, 2:], 1)], 1)
        image = path.parent / name
        if not image.exists() and (path.parent / "images" / name).exists():
            image = path.parent / "images" / name
        out.append(Annotation(image, boxes, invalid, None, f"{path}:{start}"))
    return out


def split_every(annotations: list[Annotation], every: int) -> tuple[list[Annotation], list[Annotation]]:
    """(the rest in file order, every `every`-th photo by sorted image name starting with the first):
    a fixed dev split of annotated photos that does not depend on the file's order."""
    if every < 2:
        raise ValueError(f"every must be at least 2, not {every}")
    order = sorted(range(len(annotations)), key=lambda i: (annotations[i].image.name, i))
    held = set(order[::every])
    return [a for i, a in enumerate(annotations) if i not in held], [annotations[i] for i in order[::every]]


def ignore_under(annotations: list[Annotation], side: float) -> list[Annotation]:
    """Copies in which faces narrower or shorter than `side` pixels are ignored: a detector searching
    for faces of at least that size (min_face) is then neither credited nor blamed for them."""
    out = []
    for a in annotations:
        size = a.boxes[:, 2:] - a.boxes[:, :2]
        small = (size < side).any(1)
        out.append(Annotation(a.image, a.boxes, a.ignore | small, a.landmarks, a.source))
    return out
