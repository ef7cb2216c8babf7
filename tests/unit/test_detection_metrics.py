"""Detection AP, precision and recall (dlcli.metrics.detection_report): hand-worked cases and a
plain-loop reference on random data."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from dlcli.metrics import detection_report
from dlcli.vision.annotations import Annotation

A, B, C = [0, 0, 10, 10], [20, 20, 40, 40], [50, 0, 80, 30]
NOWHERE = [100, 100, 110, 110]


def annotation(boxes, ignore=None) -> Annotation:
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    ignore = np.zeros(len(boxes), dtype=bool) if ignore is None else np.asarray(ignore, dtype=bool)
    return Annotation(Path("photo.jpg"), boxes, ignore)


def test_a_perfect_detector():
    truth = [annotation([A, B]), annotation([C])]
    report = detection_report([[(A, 0.9), (B, 0.8)], [(C, 0.7)]], truth)
    assert report == {"ap": 1.0, "ap50": 1.0, "precision": 1.0, "recall": 1.0, "n_images": 2, "n_faces": 3,
                      "n_detections": 3, "iou": 0.5}


def test_a_false_alarm_ranked_above_the_hit_halves_ap():
    report = detection_report([[(NOWHERE, 0.9), (A, 0.8)]], [annotation([A])])
    # ranks: miss (P 0), hit (P 1/2, R 1) -> AP = 1 * 1/2
    assert report["ap"] == pytest.approx(0.5)
    assert report["precision"] == pytest.approx(0.5) and report["recall"] == 1.0


def test_the_precision_envelope():
    # ranks: hit, false alarm, hit -> P 1, 1/2, 2/3 at R 1/2, 1/2, 1; envelope 1, 2/3, 2/3
    report = detection_report([[(A, 0.9), (NOWHERE, 0.8), (B, 0.7)]], [annotation([A, B])])
    assert report["ap"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert report["precision"] == pytest.approx(2 / 3)


def test_ranking_is_over_all_images():
    # image 0's false alarm (0.9) outranks image 1's hit (0.5): P 0, 1/2, 2/3 at R 0, 1/2, 1;
    # the envelope lifts the 1/2 to 2/3
    truth = [annotation([A]), annotation([B])]
    report = detection_report([[(NOWHERE, 0.9), (A, 0.3)], [(B, 0.5)]], truth)
    assert report["ap"] == pytest.approx(2 / 3)
    # the same detections with the false alarm last: nothing above it is lost
    report = detection_report([[(NOWHERE, 0.1), (A, 0.3)], [(B, 0.5)]], truth)
    assert report["ap"] == pytest.approx(1.0) and report["precision"] == pytest.approx(2 / 3)


def test_ignored_boxes_are_neither_hits_nor_misses_nor_false_alarms():
    truth = [annotation([A, B], ignore=[False, True])]
    # two detections on the ignored box (one above the real hit) and a hit on A
    report = detection_report([[(B, 0.95), (A, 0.9), ([21, 20, 40, 40], 0.85)]], truth)
    assert report["n_faces"] == 1 and report["n_detections"] == 3
    assert report["ap"] == 1.0 and report["precision"] == 1.0 and report["recall"] == 1.0
    # missing the ignored box costs nothing
    assert detection_report([[(A, 0.9)]], truth)["recall"] == 1.0
    # a face next to an ignored box still counts when missed
    assert detection_report([[(B, 0.9)]], truth)["recall"] == 0.0


def test_a_detection_whose_best_box_is_ignored_is_neutral_even_if_a_face_overlaps():
    face, ignored = [0, 0, 10, 10], [2, 0, 12, 10]  # IoU with the detection: 8/12, 1
    report = detection_report([[(ignored, 0.9)]], [annotation([face, ignored], ignore=[False, True])])
    assert report["recall"] == 0.0 and report["precision"] == 0.0 and report["ap"] == 0.0


def test_empty_images():
    truth = [annotation([A]), annotation([]), annotation([B])]
    # image 1 has no faces, so its detection is a false alarm; image 2's face is missed
    report = detection_report([[(A, 0.9)], [(A, 0.8)], []], truth)
    assert report["n_faces"] == 2 and report["n_images"] == 3
    assert report["ap"] == pytest.approx(0.5)  # P 1 at R 1/2, then nothing more is found
    assert report["precision"] == pytest.approx(0.5) and report["recall"] == pytest.approx(0.5)


def test_nothing_found_and_nothing_to_find():
    assert detection_report([[]], [annotation([A])])["ap"] == 0.0
    report = detection_report([[], []], [annotation([]), annotation([])])
    assert report["ap"] == report["precision"] == report["recall"] == 0.0 and report["n_faces"] == 0


def test_a_second_detection_of_a_matched_face_is_a_false_alarm():
    report = detection_report([[(A, 0.9), ([0, 0, 10, 11], 0.8)]], [annotation([A])])
    assert report["precision"] == pytest.approx(0.5) and report["recall"] == 1.0
    assert report["ap"] == 1.0  # the duplicate ranks after the only face


def test_a_duplicate_falls_to_the_next_free_face_above_the_threshold():
    left, right = [0, 0, 10, 10], [2, 0, 12, 10]  # IoU 8/12 with each other
    report = detection_report([[(left, 0.9), (left, 0.8)]], [annotation([left, right])])
    assert report["precision"] == 1.0 and report["recall"] == 1.0


def test_the_iou_threshold():
    near = [0, 0, 10, 20]  # IoU with A: 100 / 200 = 0.5 exactly
    loose = [0, 0, 10, 25]  # IoU 0.4
    truth = [annotation([A]), annotation([A])]
    report = detection_report([[(near, 0.9)], [(loose, 0.8)]], truth, iou=0.3)
    assert report["iou"] == 0.3 and report["ap"] == 1.0 and report["recall"] == 1.0
    assert report["ap50"] == pytest.approx(0.5)  # at 0.5 only `near` is a hit (>=)
    strict = detection_report([[(near, 0.9)], [(loose, 0.8)]], truth, iou=0.7)
    assert strict["ap"] == 0.0 and strict["ap50"] == pytest.approx(0.5) and strict["precision"] == 0.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="2 detection lists for 1"):
        detection_report([[], []], [annotation([A])])
    with pytest.raises(ValueError, match="iou"):
        detection_report([[]], [annotation([A])], iou=0)


# ---------------------------------------------------------------- plain-loop reference


def ref_iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def ref_report(detections, truth, threshold):
    """Matching and VOC AP written out loop by loop, from the rules in the docstring."""
    ranked = sorted(((score, i, j, box) for i, found in enumerate(detections) for j, (box, score) in enumerate(found)),
                    key=lambda t: (-t[0], t[1], t[2]))
    taken = [[False] * len(boxes) for boxes, _ in truth]
    tp_flags = []
    for _, i, _, box in ranked:
        boxes, ignore = truth[i]
        best, best_iou = None, -1.0
        for g, gt in enumerate(boxes):
            if taken[i][g] and not ignore[g]:
                continue
            value = ref_iou(box, gt)
            if value > best_iou:
                best, best_iou = g, value
        if best is None or best_iou < threshold:
            tp_flags.append(False)
        elif ignore[best]:
            continue
        else:
            taken[i][best] = True
            tp_flags.append(True)
    n_faces = sum(not flag for _, ignore in truth for flag in ignore)
    tp = fp = 0
    recall, precision = [], []
    for hit in tp_flags:
        tp, fp = tp + hit, fp + (not hit)
        recall.append(tp / n_faces if n_faces else 0.0)
        precision.append(tp / (tp + fp))
    # VOC devkit's VOCap
    mrec, mpre = [0.0, *recall, 1.0], [0.0, *precision, 0.0]
    for k in range(len(mpre) - 2, -1, -1):
        mpre[k] = max(mpre[k], mpre[k + 1])
    ap = sum((mrec[k + 1] - mrec[k]) * mpre[k + 1] for k in range(len(mrec) - 1) if mrec[k + 1] != mrec[k])
    return (ap if n_faces else 0.0), (tp / (tp + fp) if tp + fp else 0.0), (tp / n_faces if n_faces else 0.0)


def random_box(rng: random.Random) -> list[float]:
    x, y, side = rng.uniform(0, 60), rng.uniform(0, 60), rng.uniform(4, 30)
    return [x, y, x + side * rng.uniform(0.7, 1.3), y + side]


@pytest.mark.parametrize("seed", range(30))
def test_against_a_plain_loop(seed):
    rng = random.Random(seed)
    detections, truth, annotations = [], [], []
    for _ in range(rng.randint(1, 6)):
        boxes = [random_box(rng) for _ in range(rng.randint(0, 5))]
        ignore = [rng.random() < 0.2 for _ in boxes]
        found = []
        for box in boxes:  # jittered copies (some twice) plus false alarms
            for _ in range(rng.choice([0, 1, 1, 2])):
                found.append(([v + rng.uniform(-4, 4) for v in box], rng.random()))
        found += [(random_box(rng), rng.random()) for _ in range(rng.randint(0, 3))]
        rng.shuffle(found)
        detections.append(found)
        truth.append((boxes, ignore))
        annotations.append(annotation(boxes, ignore) if boxes else annotation([]))
    for threshold in (0.3, 0.5, 0.7):
        report = detection_report(detections, annotations, iou=threshold)
        ap, precision, recall = ref_report(detections, truth, threshold)
        assert report["ap"] == pytest.approx(ap, abs=1e-9)
        assert report["precision"] == pytest.approx(precision, abs=1e-9)
        assert report["recall"] == pytest.approx(recall, abs=1e-9)
        assert report["ap50"] == pytest.approx(ref_report(detections, truth, 0.5)[0], abs=1e-9)
