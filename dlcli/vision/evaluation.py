"""A face detector scored on annotated photos (`dlcli evaluate` for detect_faces checkpoints)."""

from __future__ import annotations

from collections.abc import Sequence

from dlcli.errors import DataError
from dlcli.metrics import detection_report
from dlcli.vision.annotations import Annotation
from dlcli.vision.images import load_image


def evaluate_detector(model, task, annotations: Sequence[Annotation], iou: float = 0.5, **options) -> dict:
    """detection_report over every annotated photo, run with the task's inference options (the
    checkpoint's, overridden by `options` that are not None). An unreadable photo is a DataError
    naming its annotation's file:line."""
    cfg = task.options(**options)
    kwargs = task.detect_options(cfg)
    detections = []
    size = cfg["batch_size"]
    for start in range(0, len(annotations), size):
        images = [_load(annotation) for annotation in annotations[start:start + size]]
        found = model.detect(images, **kwargs)
        detections += [[(face["box"], face["score"]) for face in faces] for faces in found]
    return detection_report(detections, annotations, iou)


def _load(annotation: Annotation):
    try:
        return load_image(annotation.image)
    except DataError as exc:
        where = f"{annotation.source}: " if annotation.source else ""
        raise DataError(f"{where}{exc.message}", exc.hint or "fix the path in the annotation file") from None
