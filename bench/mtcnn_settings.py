"""Benchmark: MTCNN inference settings (stage thresholds, NMS overlaps, min_face) on dev photos.

Each setting in the grid (every --thresholds x every --nms) runs the whole cascade over the same
photos, one photo per call. Reports AP at IoU 0.5 and 0.3 (dlcli.metrics.detection_report), precision
and recall at the setting's thresholds, detections per photo and the median ms per photo, best
AP@0.5 first. The settings a recipe ships are then picked from this table, on dev photos only.

    DLCLI_DATA_DIR=../shared/datasets OMP_NUM_THREADS=1 python bench/mtcnn_settings.py \\
        --model runs/mtcnn_wider.pt --annotations ../shared/datasets/faces_wider_train/annotations.jsonl \\
        --dev-every 10 --ignore-under 20 --thresholds 0.6,0.7,0.7 0.5,0.6,0.7 --nms 0.5,0.7,0.7,0.7
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

import torch
from detect_vs_haar import dlcli_detector, run


def numbers(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a dlcli face checkpoint or shipped name")
    parser.add_argument("--annotations", type=Path, required=True)
    parser.add_argument("--dev-every", type=int, help="score only every N-th photo by sorted name")
    parser.add_argument("--ignore-under", type=float, help="faces narrower or shorter than this are ignored")
    parser.add_argument("--thresholds", type=numbers, nargs="+", help="P-Net,R-Net,O-Net score thresholds "
                        "[default: the checkpoint's]")
    parser.add_argument("--nms", type=numbers, nargs="+", help="the four NMS overlaps [default: the checkpoint's]")
    parser.add_argument("--min-face", type=float, nargs="+", help="[default: the checkpoint's]")
    args = parser.parse_args()

    from dlcli import api
    from dlcli.metrics import detection_report
    from dlcli.vision.annotations import ignore_under, read_annotations, split_every
    from dlcli.vision.images import load_image

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    loaded = api.load_model(args.model)
    defaults = loaded.predict_defaults
    annotations = read_annotations(args.annotations)
    if args.dev_every:
        annotations = split_every(annotations, args.dev_every)[1]
    if args.ignore_under:
        annotations = ignore_under(annotations, args.ignore_under)
    photos = [load_image(a.image).numpy() for a in annotations]

    rows = []
    grid = itertools.product(args.thresholds or [tuple(defaults["thresholds"])], args.nms or [tuple(defaults["nms"])],
                             args.min_face or [defaults["min_face"]])
    for thresholds, nms, min_face in grid:
        detect = dlcli_detector(loaded.model, loaded.task, {**defaults, "thresholds": thresholds, "nms": nms,
                                                            "min_face": min_face})
        found, ms = run(detect, photos)
        report = detection_report(found, annotations, iou=0.3)
        rows.append((thresholds, nms, min_face, report, ms))
        print(f"{thresholds} {nms} {min_face:g}: AP@0.5 {report['ap50']:.4f}", file=sys.stderr)

    n_faces = sum(a.n_faces for a in annotations)
    print(f"{args.model} on {len(annotations)} photos, {n_faces} faces, {threads} thread(s)")
    print("| thresholds | nms | min_face | AP@0.5 | AP@0.3 | precision | recall | boxes per photo | ms per photo |")
    print("|---|---|---|---|---|---|---|---|---|")
    for thresholds, nms, min_face, r, ms in sorted(rows, key=lambda row: -row[3]["ap50"]):
        print(f"| {','.join(f'{v:g}' for v in thresholds)} | {','.join(f'{v:g}' for v in nms)} | {min_face:g} | "
              f"{r['ap50']:.4f} | {r['ap']:.4f} | {r['precision']:.3f} | {r['recall']:.3f} | "
              f"{r['n_detections'] / len(annotations):.1f} | {ms:.1f} |")


if __name__ == "__main__":
    main()
