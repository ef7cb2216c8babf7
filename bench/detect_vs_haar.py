"""Benchmark: dlcli face detectors against OpenCV's Haar cascade on annotated whole photos.

Detectors, each run one photo per call on the same photos:

- a dlcli face model (`--model`, default the shipped `mtcnn`; a row is skipped with a message when
  the name or path cannot be resolved), with its checkpoint's inference options;
- the original MTCNN weights (facenet-pytorch's pnet/rnet/onet.pt) converted by
  dlcli.convert.mtcnn, with dlcli's defaults;
- facenet-pytorch's MTCNN (the same original weights, its own code and defaults), the speed peer;
  skipped with a message when facenet-pytorch is not installed;
- OpenCV's `haarcascade_frontalface_default.xml`, detectMultiScale's defaults (scale 1.1, 3
  neighbours) on the grey image. Its score is the last stage's sum (`levelWeights` of
  `detectMultiScale3(..., outputRejectLevels=True)`); the script checks that this call finds the
  same boxes as plain detectMultiScale.

Reports AP at IoU 0.5 and 0.3 (dlcli.metrics.detection_report: VOC all-point), precision and
recall at each detector's own thresholds, the median ms per photo, and how the boxes of found
faces sit on the annotated ones (`box_fit`). For the dlcli rows the AP is also recomputed through
dlcli.vision.evaluation (batched, as `dlcli evaluate` runs); a warning says if the two differ.
Without `--annotations` the dev set of scripts/make_faces_dev.py is built into a temporary folder
(needs faces_train under $DLCLI_DATA_DIR or ../shared/datasets).

    pip install --no-deps facenet-pytorch==2.6.0 && pip install opencv-python-headless==4.14.0.94
    OMP_NUM_THREADS=1 python bench/detect_vs_haar.py
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CASCADE = "haarcascade_frontalface_default.xml"


def dlcli_detector(model, task, options: dict):
    """photo (H, W, 3) uint8 -> [(box, score)], one photo per call, with the checkpoint's options."""
    kwargs = {**task.detect_options(options), "batch_size": 1}

    def detect(photo: np.ndarray):
        faces = model.detect([torch.from_numpy(photo)], **kwargs)[0]
        return [(face["box"], face["score"]) for face in faces]

    return detect


def shipped_model(name: str):
    """(model, task, predict options) of a dlcli checkpoint, or None with a message when it cannot be loaded."""
    from dlcli import api
    from dlcli.errors import DlcliError

    try:
        loaded = api.load_model(name)
    except DlcliError as exc:
        print(f"skipping dlcli model {name!r}: {exc.message}", file=sys.stderr)
        return None
    if loaded.data["task"] != "detect_faces":
        print(f"skipping dlcli model {name!r}: a {loaded.data['task']} model, not a face detector", file=sys.stderr)
        return None
    return loaded.model, loaded.task, loaded.predict_defaults


def original_mtcnn():
    """(model, task, predict options) of the original weights as `dlcli convert mtcnn` makes them, or None."""
    from dlcli.convert.mtcnn import convert_mtcnn
    from dlcli.models.mtcnn import MTCNN
    from dlcli.tasks.detect_faces import DetectFacesTask

    try:
        from mtcnn_vs_facenet import facenet_weights

        payload = convert_mtcnn(facenet_weights())
    except (ImportError, AttributeError, OSError) as exc:
        print(f"skipping the original MTCNN: facenet-pytorch's weights not found ({exc})", file=sys.stderr)
        return None
    model = MTCNN().eval()
    model.load_state_dict(payload["state_dict"])
    return model, DetectFacesTask.from_checkpoint(payload), payload["recipe"]["predict"]


def facenet_detector():
    """facenet-pytorch's MTCNN (min face 20, its default thresholds) as a detector, or None."""
    try:
        from mtcnn_vs_facenet import import_facenet, peer_faces

        peer = import_facenet().MTCNN(min_face_size=20, keep_all=True, select_largest=False, device="cpu").eval()
    except (ImportError, AttributeError, OSError) as exc:
        print(f"skipping facenet-pytorch: {exc}", file=sys.stderr)
        return None
    return lambda photo: [(face["box"], face["score"]) for face in peer_faces(peer, photo)]


def haar_detector(threads: int):
    """The Haar cascade as a detector, and a counter of photos where the scored call found other
    boxes than plain detectMultiScale (expected to stay 0)."""
    import cv2

    cv2.setNumThreads(threads)
    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, CASCADE))
    if cascade.empty():
        raise SystemExit(f"OpenCV could not load {CASCADE}")
    mismatches = [0]

    def detect(photo: np.ndarray):
        grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
        rects, _, weights = cascade.detectMultiScale3(grey, outputRejectLevels=True)
        return [([x, y, x + w, y + h], float(s)) for (x, y, w, h), s in zip(np.reshape(rects, (-1, 4)).tolist(),
                                                                           np.ravel(weights).tolist())]

    def check(photo: np.ndarray, found) -> None:
        plain = cascade.detectMultiScale(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))
        if sorted(map(tuple, np.reshape(plain, (-1, 4)).tolist())) != sorted(
                (b[0], b[1], b[2] - b[0], b[3] - b[1]) for b, _ in found):
            mismatches[0] += 1

    return detect, check, mismatches


def run(detect, photos: list[np.ndarray]) -> tuple[list, float]:
    """(detections per photo, median ms per photo)."""
    found, spent = [], []
    for photo in photos:
        start = time.perf_counter()
        found.append(detect(photo))
        spent.append(time.perf_counter() - start)
    return found, 1000 * statistics.median(spent)


def box_fit(found, annotations) -> tuple[float, float, float]:
    """How a detector's boxes sit on the annotated faces it finds (best IoU >= 0.3): medians of
    that IoU and of its box's width and height over the face box's. Boxes drawn to another
    convention (e.g. forehead to chin inside a looser square) show here, not as misses."""
    from dlcli.nn.boxes import iou

    ious, widths, heights = [], [], []
    for faces, annotation in zip(found, annotations):
        truth = torch.as_tensor(annotation.boxes[~annotation.ignore], dtype=torch.float64).reshape(-1, 4)
        if not faces or not len(truth):
            continue
        boxes = torch.tensor([box for box, _ in faces], dtype=torch.float64)
        best, index = iou(boxes, truth).max(0)  # per face: the detection overlapping it most
        for value, i, face in zip(best.tolist(), index.tolist(), truth.tolist()):
            if value >= 0.3:
                ious.append(value)
                widths.append((boxes[i, 2] - boxes[i, 0]).item() / (face[2] - face[0]))
                heights.append((boxes[i, 3] - boxes[i, 1]).item() / (face[3] - face[1]))
    if not ious:
        return float("nan"), float("nan"), float("nan")
    return statistics.median(ious), statistics.median(widths), statistics.median(heights)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, help="annotation file [default: build the dev set]")
    parser.add_argument("--model", default="mtcnn", help="a dlcli face checkpoint or shipped name")
    parser.add_argument("--photos", type=int, default=200, help="dev set size when it is built")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dev-every", type=int, help="score only every N-th annotated photo by sorted name "
                        "(the dev photos of a recipe's data.dev_every N)")
    parser.add_argument("--ignore-under", type=float, help="faces narrower or shorter than this many pixels "
                        "count neither as found nor as missed")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from dlcli.metrics import detection_report
    from dlcli.vision.annotations import ignore_under, read_annotations, split_every
    from dlcli.vision.evaluation import evaluate_detector
    from dlcli.vision.images import load_image

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as scratch:
        if args.annotations:
            path, data = args.annotations, str(args.annotations)
        else:
            sys.path.insert(0, str(ROOT / "scripts"))
            from make_faces_dev import build_dev_set

            path = build_dev_set(scratch, args.photos, args.seed)
            data = f"dev set of scripts/make_faces_dev.py (--photos {args.photos} --seed {args.seed})"
        annotations = read_annotations(path)
        if args.dev_every:
            annotations = split_every(annotations, args.dev_every)[1]
            data += f", every {args.dev_every}th photo"
        if args.ignore_under:
            annotations = ignore_under(annotations, args.ignore_under)
            data += f", faces under {args.ignore_under:g} px ignored"
        photos = [load_image(a.image).numpy() for a in annotations]

        detectors = []
        for label, loaded in ((f"dlcli {args.model}", shipped_model(args.model)),
                              ("dlcli, original MTCNN weights", original_mtcnn())):
            if loaded is not None:
                detectors.append((label, dlcli_detector(*loaded), loaded))
        facenet = facenet_detector()
        if facenet is not None:
            detectors.append(("facenet-pytorch MTCNN", facenet, None))
        haar, check, mismatches = haar_detector(threads)
        detectors.append(("OpenCV Haar frontalface_default", haar, None))

        rows = []
        for label, detect, loaded in detectors:
            found, ms = run(detect, photos)
            report = detection_report(found, annotations, iou=0.3)
            if loaded is not None:  # the batched library path, as `dlcli evaluate` runs it
                model, task, options = loaded
                library = evaluate_detector(model, task.detect_options(options), annotations, iou=0.3)
                if abs(library["ap"] - report["ap"]) > 1e-3 or abs(library["ap50"] - report["ap50"]) > 1e-3:
                    print(f"warning: {label}: batched evaluation gives AP {library['ap50']:.4f} / {library['ap']:.4f}",
                          file=sys.stderr)
            elif label.startswith("OpenCV"):
                for photo, faces in zip(photos, found):
                    check(photo, faces)
            rows.append((label, report, ms, box_fit(found, annotations)))
    if mismatches[0]:
        print(f"warning: on {mismatches[0]} photos detectMultiScale3 found other boxes than detectMultiScale",
              file=sys.stderr)
    report_rows(rows, annotations, data, threads, args)


def report_rows(rows, annotations, data: str, threads: int, args) -> None:
    haar_ms = rows[-1][2]
    n_faces = sum(a.n_faces for a in annotations)
    print(f"{'detector':34} {'AP@0.5':>7} {'AP@0.3':>7} {'prec':>6} {'recall':>6} {'ms/photo':>9} "
          f"{'vs Haar':>8}  box fit: IoU, w x h")
    for label, r, ms, (fit, w, h) in rows:
        print(f"{label:34} {r['ap50']:7.4f} {r['ap']:7.4f} {r['precision']:6.3f} {r['recall']:6.3f} {ms:9.1f} "
              f"{haar_ms / ms:7.2f}x  {fit:.2f}, {w:.2f} x {h:.2f}")
    today = datetime.date.today().isoformat()
    command = f"`OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python bench/detect_vs_haar.py"
    command += (f" --annotations {args.annotations}" if args.annotations else
                f" --model {args.model} --photos {args.photos} --seed {args.seed}")
    if args.annotations and args.model != "mtcnn":
        command += f" --model {args.model}"
    command += f" --dev-every {args.dev_every}" if args.dev_every else ""
    command += f" --ignore-under {args.ignore_under:g}" if args.ignore_under else ""
    command += "`"
    lines = []
    for label, r, ms, (fit, w, h) in rows:
        note = " (score: levelWeights)" if label.startswith("OpenCV") else ""
        lines.append(f"| {today} | {data}: {len(annotations)} photos, {n_faces} faces | {os.cpu_count()} cores, "
                     f"{threads} thread | {label}{note} | {r['ap50']:.4f} | {r['ap']:.4f} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {fit:.2f}; {w:.2f} x {h:.2f} | {ms:.1f} ms | {haar_ms / ms:.2f}x | "
                     f"{command} |")
    for line in lines:
        print(line)
    if not args.no_append:
        from _report import add_row

        for line in lines:
            add_row("Face detection against OpenCV's Haar cascade", line,
                    intro="AP (VOC all-point) at IoU 0.5 and 0.3, precision and recall at each detector's own "
                    "thresholds, median time per photo (one photo per call) and speed relative to the Haar "
                    "cascade, on the same photos in one run. The Haar cascade ranks its boxes by the last stage's "
                    "sum (levelWeights). Box fit: over the faces a detector finds (IoU >= 0.3), the median IoU "
                    "and its box's width and height relative to the annotated box; the dev set annotates the "
                    "whole pasted face crop, so a detector drawing a tighter face box can lose AP at 0.5 "
                    "without missing faces.",
                    columns="| date | data | machine | detector | AP@0.5 | AP@0.3 | precision | recall | box fit: "
                    "IoU; w x h | per photo | speed vs Haar | command |")

if __name__ == "__main__":
    main()
