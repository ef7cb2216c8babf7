"""A face detector scored on annotated photos (`dlcli evaluate` for detect_faces checkpoints)."""

from __future__ import annotations

from collections.abc import Sequence

from dlcli.errors import DataError
from dlcli.metrics import detection_report
from dlcli.vision.annotations import Annotation
from dlcli.vision.images import load_image


def evaluate_detector(model, detect_options: dict, annotations: Sequence[Annotation], iou: float = 0.5) -> dict:
    """detection_report over every annotated photo, detected with `model.detect(images,
    **detect_options)`. An unreadable photo is a DataError naming its annotation's file:line."""
    kwargs = detect_options
    detections = []
    size = kwargs["batch_size"]
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
