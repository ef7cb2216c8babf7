"""Build a face-detection dev set: whole photos with known face boxes, for `dlcli evaluate`.

Faces of the Caltech web-face crops' `val` split (the `train` split is for training) are pasted
onto the held-out background photos (every fifth by sorted file name, as
dlcli.tasks.face_samples.background_split says; training uses only the others), so no pixel of the
dev set is seen in training.

Per photo: one background (upscaled 2x when a side is under 120 px), 1-4 faces of side 24 to
min(180, half the photo's shorter side), not overlapping each other, grey turned RGB, resized
bilinearly and blended in through a feathered edge (`--feather` px at most; 0 pastes hard edges)
so the paste border is no trivial cue. A face's box is the pasted square, 0-based with exclusive
x2/y2. Writes OUT/images/NNNN.jpg (JPEG quality 92) and OUT/annotations.jsonl (the format of
dlcli/vision/annotations.py; the extra keys "background" and "faces" name the sources and are
ignored by the reader). The same seed gives the same files. The dataset is research-only: keep
OUT out of the repository.

    OMP_NUM_THREADS=1 python scripts/make_faces_dev.py --out /tmp/faces_dev --photos 200
    dlcli evaluate mtcnn.pt /tmp/faces_dev/annotations.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from dlcli.tasks.face_samples import background_split

FACES_FILE = "caltech_webfaces_36x36_gray.npz"
SMALL_SIDE = 120  # backgrounds with a side under this are upscaled 2x first
MIN_FACE, MAX_FACE = 24, 180
PLACE_TRIES = 50


def default_data_dir() -> Path:
    return Path(os.environ.get("DLCLI_DATA_DIR") or "../shared/datasets")


def dev_backgrounds(faces_dir: Path) -> list[Path]:
    """The backgrounds training leaves alone (dlcli's one rule: every fifth by sorted name)."""
    return background_split(faces_dir / "backgrounds")[1]


def val_faces(faces_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(faces (N, 36, 36) uint8, their file names) of the `val` split."""
    with np.load(faces_dir / FACES_FILE) as data:
        keep = data["split"] == "val"
        return data["faces"][keep], data["names"][keep]


def build_dev_set(out: str | Path, photos: int = 200, seed: int = 0, data_dir: str | Path | None = None,
                  feather: int = 4) -> Path:
    """Write the dev set into `out`; returns the annotation file's path."""
    faces_dir = Path(data_dir or default_data_dir()) / "faces_train"
    if not (faces_dir / FACES_FILE).is_file():
        raise SystemExit(f"{faces_dir / FACES_FILE} not found: set --data-dir or DLCLI_DATA_DIR")
    backgrounds = dev_backgrounds(faces_dir)
    faces, names = val_faces(faces_dir)
    rng = np.random.default_rng(seed)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for number in range(photos):
        background = backgrounds[int(rng.integers(len(backgrounds)))]
        canvas = _background(background)
        boxes, used = [], []
        for _ in range(int(rng.integers(1, 5))):
            box = _place(rng, canvas.shape, boxes)
            if box is None:
                continue
            pick = int(rng.integers(len(faces)))
            _paste(canvas, faces[pick], box, feather)
            boxes.append(box)
            used.append(str(names[pick]))
        image = f"images/{number:04d}.jpg"
        Image.fromarray(canvas).save(out / image, quality=92)
        lines.append(json.dumps({"image": image, "boxes": boxes, "background": background.name, "faces": used}))
    path = out / "annotations.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _background(path: Path) -> np.ndarray:
    with Image.open(path) as picture:
        picture = picture.convert("RGB")
        if min(picture.size) < SMALL_SIDE:
            picture = picture.resize((picture.width * 2, picture.height * 2), Image.Resampling.BILINEAR)
        return np.array(picture)  # (H, W, 3) uint8


def _place(rng: np.random.Generator, shape: tuple, taken: list[list[int]]) -> list[int] | None:
    """A random square [x1, y1, x2, y2] inside the photo that overlaps no box in `taken`."""
    height, width = shape[:2]
    side = int(rng.integers(MIN_FACE, min(MAX_FACE, min(height, width) // 2) + 1))
    for _ in range(PLACE_TRIES):
        x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        box = [x, y, x + side, y + side]
        if all(box[2] <= o[0] or o[2] <= box[0] or box[3] <= o[1] or o[3] <= box[1] for o in taken):
            return box
    return None


def _paste(canvas: np.ndarray, face: np.ndarray, box: list[int], feather: int) -> None:
    x1, y1, x2, y2 = box
    side = x2 - x1
    grey = Image.fromarray(face).convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
    pixels = np.asarray(grey, dtype=np.float32)
    alpha = _feather_mask(side, min(feather, side // 6))[..., None]  # (S, S, 1)
    region = canvas[y1:y2, x1:x2].astype(np.float32)
    canvas[y1:y2, x1:x2] = np.rint(alpha * pixels + (1 - alpha) * region).astype(np.uint8)


def _feather_mask(side: int, width: int) -> np.ndarray:
    """(side, side) opacity: 1 inside, ramping down over `width` px towards every edge."""
    if width <= 0:
        return np.ones((side, side), dtype=np.float32)
    centre = np.arange(side, dtype=np.float32) + 0.5
    edge = np.minimum(centre, side - centre)  # distance of each pixel centre to the nearer edge
    ramp = np.clip(edge / width, 0, 1)
    return np.minimum(ramp[:, None], ramp[None, :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for images/ and annotations.jsonl")
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the datasets folder holding faces_train/ [default: $DLCLI_DATA_DIR, else "
                        "../shared/datasets]")
    parser.add_argument("--feather", type=int, default=4, help="blend width of the paste border in px (0: none)")
    args = parser.parse_args()
    path = build_dev_set(args.out, args.photos, args.seed, args.data_dir, args.feather)
    print(f"{path}: {args.photos} photos")


if __name__ == "__main__":
    main()
