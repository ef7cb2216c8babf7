"""Face detection: rebuild an MTCNN checkpoint and detect faces in batches of image files.

Training from recipes is not available yet: the detector comes from the original weights
(`dlcli convert mtcnn`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from dlcli.errors import DataError, RecipeError

# Inference defaults, stored in converted checkpoints under recipe.predict.
PREDICT_DEFAULTS = {"min_face": 20, "thresholds": [0.6, 0.7, 0.7], "factor": 0.709, "nms": [0.5, 0.7, 0.7, 0.7],
                    "batch_size": 8}
CROP_SIZE = 160


class DetectFacesTask:
    name = "detect_faces"
    metrics: tuple[str, ...] = ()
    model_positional = 0  # the builder takes no data-derived sizes

    def __init__(self, predict: dict | None = None):
        self.predict = {**PREDICT_DEFAULTS, **(predict or {})}

    @classmethod
    def check_recipe(cls, recipe) -> None:
        raise RecipeError("task detect_faces: training a face detector from a recipe is not available yet",
                          "convert the original MTCNN weights instead: "
                          "dlcli convert mtcnn pnet.pt rnet.pt onet.pt --out mtcnn.pt")

    @classmethod
    def from_checkpoint(cls, data: dict) -> DetectFacesTask:
        return cls(data.get("recipe", {}).get("predict"))

    def model_sizes(self) -> tuple:
        return ()

    def options(self, **given) -> dict:
        """The checkpoint's inference defaults, overridden by every option given (not None)."""
        return {**self.predict, **{k: v for k, v in given.items() if v is not None}}

    def detect(self, model, images: Iterable[str], *, draw_dir: Path | None = None, crop_dir: Path | None = None,
               crop_size: int = CROP_SIZE, **options) -> Iterator[list[dict]]:
        """Records for image paths, in input order, a list per batch: {"image", "width", "height",
        "faces": [{"box", "score", "landmarks"}]}, or {"image", "error"} for a file that cannot be read."""
        cfg = self.options(**options)
        paths = iter(images)
        while batch := list(islice(paths, cfg["batch_size"])):
            records = self._detect_batch(model, batch, cfg)
            for record, decoded in records:
                if decoded is not None and (draw_dir or crop_dir):
                    _write_pictures(record, decoded, draw_dir, crop_dir, crop_size)
            yield [record for record, _ in records]

    def _detect_batch(self, model, paths: list[str], cfg: dict) -> list[tuple[dict, object]]:
        from dlcli.vision.images import load_image

        decoded = []
        for path in paths:
            try:
                decoded.append(load_image(path))
            except DataError as exc:
                decoded.append(exc)
        good = [image for image in decoded if not isinstance(image, DataError)]
        found = iter(model.detect(good, min_face=cfg["min_face"], thresholds=tuple(cfg["thresholds"]),
                                  factor=cfg["factor"], nms=tuple(cfg["nms"]), batch_size=cfg["batch_size"]))
        out = []
        for path, image in zip(paths, decoded):
            if isinstance(image, DataError):
                out.append(({"image": path, "error": image.message}, None))
                continue
            faces = [_face_record(face) for face in next(found)]
            out.append(({"image": path, "width": image.shape[1], "height": image.shape[0], "faces": faces}, image))
        return out


def _face_record(face: dict) -> dict:
    return {"box": [round(v, 2) for v in face["box"]], "score": round(face["score"], 6),
            "landmarks": [[round(x, 2), round(y, 2)] for x, y in face["landmarks"]]}


def _write_pictures(record: dict, image, draw_dir: Path | None, crop_dir: Path | None, crop_size: int) -> None:
    """<stem>.png with boxes drawn into draw_dir; <stem>_<i>.png square face crops into crop_dir."""
    from dlcli.vision.images import draw_faces, face_crop, to_pil

    picture, stem = to_pil(image), Path(record["image"]).stem
    if draw_dir:
        draw_dir.mkdir(parents=True, exist_ok=True)
        draw_faces(picture, record["faces"]).save(draw_dir / f"{stem}.png")
    if crop_dir:
        crop_dir.mkdir(parents=True, exist_ok=True)
        for i, face in enumerate(record["faces"]):
            face_crop(picture, face["box"], crop_size).save(crop_dir / f"{stem}_{i}.png")
