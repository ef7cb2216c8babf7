"""Benchmark: dlcli's MTCNN against facenet-pytorch's, both with the original weights.

Converts facenet-pytorch's own pnet/rnet/onet.pt with `dlcli convert mtcnn`'s converter, runs both
detectors on the same composed photos (36x36 Caltech web faces, upscaled to 60-150 px, pasted onto
face-free background photos at known places; a fixed seed), matches their faces, and reports the
IoU of each matched pair and the time per photo of each (median of several runs, one photo per
call, alternating so machine noise hits both alike). Appends rows to docs/benchmarks.md.

    pip install --no-deps facenet-pytorch==2.6.0 tqdm requests
    OMP_NUM_THREADS=1 python bench/mtcnn_vs_facenet.py

facenet-pytorch imports torchvision only for `ops.boxes.batched_nms` (its pyramid and crops use
torch's own `interpolate(mode="area")`) and `transforms.functional` (face extraction, unused
here). No torchvision wheel matches this CPU torch, so `import_facenet` provides a plain-loop
batched_nms with torchvision's semantics, checked against a brute-force reference first.

`--border stretch` crops boxes that cross the image border as facenet-pytorch does (the part inside
the image, stretched); the default `pad` reads the part outside as black, as the original MTCNN.

facenet-pytorch reports boxes in the original code's 1-based inclusive pixels; dlcli's are 0-based
with exclusive x2/y2, so facenet's x1 and y1 are shifted by -1 before comparing.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib
import os
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
FACES = Path(os.environ.get("DLCLI_DATA_DIR", ROOT.parent / "shared" / "datasets")) / "faces_train"


# ---------------------------------------------------------------- facenet-pytorch without torchvision


def reference_batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, threshold: float):
    """torchvision.ops.batched_nms as a plain loop: per group, by descending score, drop every box
    whose IoU (areas (x2-x1)*(y2-y1)) with a kept box of its group is > threshold."""
    b, s, g = boxes.tolist(), scores.tolist(), idxs.tolist()
    order = sorted(range(len(b)), key=lambda i: -s[i])
    kept: list[int] = []
    for i in order:
        if all(g[k] != g[i] or _iou(b[k], b[i]) <= threshold for k in kept):
            kept.append(i)
    return torch.as_tensor(kept, dtype=torch.long)


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def check_stand_in(seed: int = 0) -> None:
    """The stand-in agrees with dlcli's vectorised batched_nms on random boxes (two implementations
    written separately; random float scores, so no ties)."""
    from dlcli.nn.boxes import batched_nms

    gen = torch.Generator().manual_seed(seed)
    for _ in range(20):
        n = int(torch.randint(1, 120, (1,), generator=gen))
        xy = torch.rand(n, 2, generator=gen) * 100
        boxes = torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=gen) * 40], 1)
        scores, groups = torch.rand(n, generator=gen), torch.randint(0, 3, (n,), generator=gen)
        for threshold in (0.3, 0.5, 0.7):
            ours = batched_nms(boxes, scores, groups, threshold).tolist()
            assert ours == reference_batched_nms(boxes, scores, groups, threshold).tolist()


def import_facenet():
    """facenet_pytorch.models.mtcnn, imported over stand-ins for the torchvision parts it names.

    The stand-in modules are removed from sys.modules again afterwards (facenet keeps its own
    references), so nothing else in the process mistakes them for torchvision."""
    names = ["torchvision", "torchvision.ops", "torchvision.ops.boxes", "torchvision.transforms",
             "torchvision.transforms.functional"]
    saved = {name: sys.modules.get(name) for name in names}
    fake = {name: types.ModuleType(name) for name in names}
    fake["torchvision.ops.boxes"].batched_nms = reference_batched_nms
    fake["torchvision.ops"].boxes = fake["torchvision.ops.boxes"]
    fake["torchvision.transforms.functional"].to_tensor = _to_tensor
    fake["torchvision.transforms"].functional = fake["torchvision.transforms.functional"]
    fake["torchvision"].ops, fake["torchvision"].transforms = fake["torchvision.ops"], fake["torchvision.transforms"]
    sys.modules.update(fake)
    try:
        return importlib.import_module("facenet_pytorch.models.mtcnn")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _to_tensor(picture) -> torch.Tensor:
    array = np.asarray(picture, dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous() / (255 if array.dtype == np.uint8 else 1)


def facenet_weights() -> list[Path]:
    import importlib.util

    spec = importlib.util.find_spec("facenet_pytorch")
    folder = Path(spec.origin).parent / "data"
    return [folder / f"{net}.pt" for net in ("pnet", "rnet", "onet")]


def both_detectors(min_face: float = 20):
    """(dlcli MTCNN with converted weights, facenet-pytorch MTCNN), both in eval mode on the CPU."""
    from dlcli.convert.mtcnn import convert_mtcnn
    from dlcli.models.mtcnn import MTCNN

    ours = MTCNN().eval()
    ours.load_state_dict(convert_mtcnn(facenet_weights())["state_dict"])
    peer = import_facenet().MTCNN(min_face_size=min_face, keep_all=True, select_largest=False, device="cpu")
    return ours, peer.eval()


def peer_faces(peer, image: np.ndarray) -> list[dict]:
    """facenet-pytorch's faces in dlcli's record shape and coordinates."""
    boxes, probs, points = peer.detect(image, landmarks=True)
    if boxes is None:
        return []
    return [{"box": [b[0] - 1, b[1] - 1, b[2], b[3]], "score": float(p), "landmarks": pts.tolist()}
            for b, p, pts in zip(boxes.tolist(), probs, points)]


# ---------------------------------------------------------------- photos


def compose_photos(n: int = 20, seed: int = 0, size=(640, 480)) -> list[tuple[np.ndarray, list[list[int]]]]:
    """(RGB uint8 photo, pasted face squares [x1, y1, x2, y2]) pairs: 1-4 faces of 60-150 px each."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    faces = np.load(FACES / "caltech_webfaces_36x36_gray.npz")["faces"]
    backgrounds = sorted((FACES / "backgrounds").glob("*.jpg"))
    large = [p for p in backgrounds if min(Image.open(p).size) >= 300]
    photos = []
    for _ in range(n):
        with Image.open(large[rng.integers(len(large))]) as bg:
            canvas = _cover(bg.convert("RGB"), size)
        placed: list[list[int]] = []
        for _ in range(int(rng.integers(1, 5))):
            side = int(rng.integers(60, 151))
            for _ in range(50):  # a free place, not overlapping the faces already pasted
                x, y = int(rng.integers(0, size[0] - side)), int(rng.integers(0, size[1] - side))
                box = [x, y, x + side, y + side]
                if all(_iou(box, other) == 0 for other in placed):
                    face = Image.fromarray(faces[rng.integers(len(faces))]).convert("RGB")
                    canvas.paste(face.resize((side, side), Image.Resampling.BICUBIC), (x, y))
                    placed.append(box)
                    break
        photos.append((np.array(canvas), placed))
    return photos


def _cover(picture, size):
    """Scaled and centre-cropped to fill `size`."""
    from PIL import Image, ImageOps

    return ImageOps.fit(picture, size, Image.Resampling.BICUBIC)


# ---------------------------------------------------------------- comparison


def match(ours: list[dict], theirs: list[dict]) -> tuple[list[float], int, int]:
    """Greedy one-to-one matching by IoU (>= 0.3): (IoUs of matched pairs, unmatched ours, unmatched theirs)."""
    pairs = sorted(((_iou(a["box"], b["box"]), i, j) for i, a in enumerate(ours) for j, b in enumerate(theirs)),
                   reverse=True)
    used_a, used_b, ious = set(), set(), []
    for value, i, j in pairs:
        if value >= 0.3 and i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            ious.append(value)
    return ious, len(ours) - len(used_a), len(theirs) - len(used_b)


def found_pasted(faces: list[dict], pasted: list[list[int]]) -> int:
    return sum(any(_iou(f["box"], box) >= 0.4 for f in faces) for box in pasted)


def timings(ours, peer, photos, repeats: int) -> tuple[float, float]:
    """Median ms per photo of each detector (one photo per call), alternating the two."""
    tensors = [torch.from_numpy(p) for p, _ in photos]
    spent: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        start = time.perf_counter()
        for t in tensors:
            ours.detect([t])
        spent[0].append(time.perf_counter() - start)
        start = time.perf_counter()
        for p, _ in photos:
            peer.detect(p)
        spent[1].append(time.perf_counter() - start)
    return (1000 * statistics.median(spent[0]) / len(photos), 1000 * statistics.median(spent[1]) / len(photos))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--border", choices=("pad", "stretch"), default="pad",
                        help="dlcli's crops across the image border: pad (the original MTCNN), stretch (facenet)")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    check_stand_in()
    ours, peer = both_detectors()
    ours.detect = functools.partial(ours.detect, border=args.border)
    photos = compose_photos(args.photos, args.seed)
    ious, only_ours, only_theirs, hits = [], 0, 0, [0, 0]
    for photo, pasted in photos:
        mine, theirs = ours.detect([torch.from_numpy(photo)])[0], peer_faces(peer, photo)
        matched, a, b = match(mine, theirs)
        ious += matched
        only_ours, only_theirs = only_ours + a, only_theirs + b
        hits[0] += found_pasted(mine, pasted)
        hits[1] += found_pasted(theirs, pasted)
    ms_ours, ms_peer = timings(ours, peer, photos, args.repeats)
    n_pasted = sum(len(p) for _, p in photos)
    print(f"faces matched {len(ious)}, only dlcli {only_ours}, only facenet {only_theirs}; IoU min "
          f"{min(ious):.4f} mean {statistics.mean(ious):.4f}; pasted faces found: dlcli {hits[0]}/{n_pasted}, "
          f"facenet {hits[1]}/{n_pasted}")
    print(f"ms per photo: dlcli {ms_ours:.1f}, facenet-pytorch {ms_peer:.1f}; speed ratio {ms_peer / ms_ours:.2f}x")
    today = datetime.date.today().isoformat()
    command = (f"`OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python bench/mtcnn_vs_facenet.py "
               f"--border {args.border}`")
    row = (f"| {today} | {len(photos)} composed 640x480 photos, {n_pasted} pasted faces, min face 20, "
           f"border {args.border} | "
           f"{os.cpu_count()} cores, {torch.get_num_threads()} thread | {len(ious)} matched, {only_ours} only dlcli, "
           f"{only_theirs} only facenet | {min(ious):.3f} / {statistics.mean(ious):.3f} | {ms_ours:.1f} ms | "
           f"{ms_peer:.1f} ms | {ms_peer / ms_ours:.2f}x | {command} |")
    print(row)
    if not args.no_append:
        from _report import add_row

        add_row("MTCNN against facenet-pytorch", row,
                intro="Both with the original weights (facenet-pytorch's pnet/rnet/onet.pt, converted by dlcli). "
                "Target (issue 5): the same boxes (IoU >= 0.95 per face) at >= 1.0x facenet-pytorch's speed.",
                columns="| date | photos | machine | faces | IoU min / mean | dlcli per photo | facenet per photo "
                "| speed | command |")


if __name__ == "__main__":
    main()
