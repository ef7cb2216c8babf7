"""Evaluation metrics, returned as plain JSON-ready dicts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from dlcli.text.tagging import spans


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def classification_report(gold: Sequence[int], pred: Sequence[int], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 over labels present in gold or predictions, per-label P/R/F1, confusion."""
    k = len(labels)
    confusion = [[0] * k for _ in range(k)]  # rows: gold, columns: predicted
    for g, p in zip(gold, pred, strict=True):
        confusion[g][p] += 1
    n = len(gold)
    correct = sum(confusion[i][i] for i in range(k))
    per_label, f1s = {}, []
    for i, name in enumerate(labels):
        tp = confusion[i][i]
        support = sum(confusion[i])
        predicted = sum(row[i] for row in confusion)
        if support == 0 and predicted == 0:
            continue
        precision, recall, f1 = _prf(tp, predicted - tp, support - tp)
        per_label[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        f1s.append(f1)
    accuracy = correct / n if n else 0.0
    return {
        "accuracy": accuracy,
        "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
        "micro_f1": accuracy,  # one gold and one predicted label per example: micro-F1 = accuracy
        "n": n,
        "per_label": per_label,
        "confusion": {"labels": list(labels), "matrix": confusion},
    }


def multilabel_report(gold: Sequence[set[int]], pred: Sequence[set[int]], labels: Sequence[str]) -> dict:
    """Subset accuracy, micro/macro F1 and per-label P/R/F1 for multi-label predictions."""
    per_label, f1s = {}, []
    tp_all = fp_all = fn_all = 0
    for i, name in enumerate(labels):
        tp = sum(1 for g, p in zip(gold, pred) if i in g and i in p)
        fp = sum(1 for g, p in zip(gold, pred) if i not in g and i in p)
        fn = sum(1 for g, p in zip(gold, pred) if i in g and i not in p)
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
        if tp + fp + fn == 0:
            continue
        precision, recall, f1 = _prf(tp, fp, fn)
        per_label[name] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
        f1s.append(f1)
    precision, recall, micro_f1 = _prf(tp_all, fp_all, fn_all)
    n = len(gold)
    return {
        "accuracy": sum(1 for g, p in zip(gold, pred) if g == p) / n if n else 0.0,
        "micro_f1": micro_f1,
        "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
        "precision": precision,
        "recall": recall,
        "n": n,
        "per_label": per_label,
    }


def tagging_report(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], with_spans: bool = True) -> dict:
    """Token accuracy and, for span schemes, conlleval's micro P/R/F1 with per-type scores.

    Spans come from `dlcli.text.tagging.spans` (conlleval's chunk rules), so for a segmenter
    (untyped B/M/E/S tags) P/R/F1 are word-level segmentation scores.
    """
    tokens = correct = 0
    found, guessed, hit = Counter(), Counter(), Counter()
    for g, p in zip(gold, pred, strict=True):
        if len(g) != len(p):
            raise ValueError(f"a gold sentence has {len(g)} tags and its prediction {len(p)}")
        tokens += len(g)
        correct += sum(1 for a, b in zip(g, p) if a == b)
        if with_spans:
            gold_spans, pred_spans = set(spans(list(g))), set(spans(list(p)))
            found.update(kind for _, _, kind in gold_spans)
            guessed.update(kind for _, _, kind in pred_spans)
            hit.update(kind for _, _, kind in gold_spans & pred_spans)
    report = {"accuracy": correct / tokens if tokens else 0.0, "n": len(gold), "n_tokens": tokens}
    if with_spans:
        precision, recall, f1 = _prf(sum(hit.values()), sum(guessed.values()) - sum(hit.values()),
                                     sum(found.values()) - sum(hit.values()))
        per_type = {}
        for kind in sorted(set(found) | set(guessed)):
            p_, r_, f_ = _prf(hit[kind], guessed[kind] - hit[kind], found[kind] - hit[kind])
            per_type[kind] = {"precision": p_, "recall": r_, "f1": f_, "support": found[kind]}
        report.update(f1=f1, precision=precision, recall=recall, n_spans=sum(found.values()),
                      per_type=per_type)
    return report


def detection_report(detections: Sequence[Sequence[tuple[Sequence[float], float]]], annotations: Sequence,
                     iou: float = 0.5) -> dict:
    """Average precision, precision and recall of a face detector over annotated images.

    detections: per image, in the order of `annotations` (dlcli.vision.annotations.Annotation),
    a list of ([x1, y1, x2, y2], score), boxes 0-based with exclusive x2/y2.

    Matching is greedy over all images by descending score, as in PASCAL VOC: a detection takes the
    box of highest IoU among its image's free boxes (faces not matched yet, and every ignored box);
    at IoU >= `iou` it is a hit, or, if that box is ignored, neither a hit nor a false alarm (ignored
    boxes are never used up, so duplicates on them stay neutral too); otherwise a false alarm. Unlike
    VOC, a detection whose best face is taken may still match another free face above `iou`.
    Ignored boxes are never misses. AP is VOC's all-point interpolated one: the area under the
    precision envelope over the recall steps. precision and recall count every detection given,
    i.e. at the detector's own thresholds. With no faces at all, recall and AP are 0.
    """
    if len(detections) != len(annotations):
        raise ValueError(f"{len(detections)} detection lists for {len(annotations)} annotated images")
    if not 0 < iou <= 1:
        raise ValueError(f"iou must be in (0, 1], not {iou}")
    overlaps, order = _detection_overlaps(detections, annotations)
    ignore = [np.asarray(a.ignore, dtype=bool).reshape(-1) for a in annotations]
    n_faces = sum(int((~flags).sum()) for flags in ignore)
    report = {}
    for threshold in dict.fromkeys((iou, 0.5)):
        outcome = _match(overlaps, order, ignore, threshold)
        tp, fp = sum(o == 1 for o in outcome), sum(o == 0 for o in outcome)
        report[threshold] = (_average_precision(outcome, n_faces), tp, fp)
    ap, tp, fp = report[iou]
    return {"ap": ap, "ap50": report[0.5][0], "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / n_faces if n_faces else 0.0, "n_images": len(annotations), "n_faces": n_faces,
            "n_detections": len(order), "iou": iou}


def _detection_overlaps(detections, annotations):
    """(per image the (D, G) IoU array of its detections and boxes, every (image, detection) by
    descending score; ties keep image order, then the detector's order)."""
    import torch

    from dlcli.nn.boxes import iou as box_iou

    overlaps, ranked = [], []
    for i, (found, annotation) in enumerate(zip(detections, annotations)):
        boxes = torch.tensor([list(box) for box, _ in found], dtype=torch.float64).reshape(-1, 4)
        truth = torch.as_tensor(np.asarray(annotation.boxes), dtype=torch.float64).reshape(-1, 4)
        overlaps.append(box_iou(boxes, truth).numpy())  # (D, G)
        ranked += [(-float(score), i, j) for j, (_, score) in enumerate(found)]
    ranked.sort()
    return overlaps, [(i, j) for _, i, j in ranked]


def _match(overlaps, order, ignore, threshold: float) -> list[int]:
    """Per ranked detection: 1 hit, 0 false alarm, -1 on an ignored box."""
    taken = [np.zeros(len(flags), dtype=bool) for flags in ignore]
    outcome = []
    for i, j in order:
        free = ~taken[i] | ignore[i]
        if not free.any():
            outcome.append(0)
            continue
        candidates = np.where(free, overlaps[i][j], -1.0)
        best = int(candidates.argmax())
        if candidates[best] < threshold:
            outcome.append(0)
        elif ignore[i][best]:
            outcome.append(-1)
        else:
            taken[i][best] = True
            outcome.append(1)
    return outcome


def _average_precision(outcome: list[int], n_faces: int) -> float:
    """VOC all-point AP of ranked hits (1) and false alarms (0); neutral ones (-1) are skipped."""
    if not n_faces:
        return 0.0
    hits = [o for o in outcome if o >= 0]
    precision, recall, tp = [], [], 0
    for rank, hit in enumerate(hits, 1):
        tp += hit
        precision.append(tp / rank)
        recall.append(tp / n_faces)
    # the envelope: at each rank the best precision reachable at this recall or beyond
    for k in range(len(precision) - 2, -1, -1):
        precision[k] = max(precision[k], precision[k + 1])
    ap, previous = 0.0, 0.0
    for p, r in zip(precision, recall):
        ap += (r - previous) * p
        previous = r
    return ap
