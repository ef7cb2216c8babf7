"""Face detection: train MTCNN's nets one stage at a time, and detect faces in image files.

A recipe trains one net (`data.stage`: pnet, rnet or onet) on square crops of that net's input
size: the standard sample lists (`format: crops`), or samples made from annotated photos
(`format: jsonl | wider`: random windows around the faces for P-Net; for R-Net and O-Net the
windows the earlier, already trained stages propose, labelled by their overlap with the faces).
`data.init` names the checkpoint of the earlier stages; the new checkpoint holds all the nets
trained so far and detects with them.

Losses as in Zhang et al. (2016): face/non-face cross-entropy over positives and negatives with
online hard example mining (the hardest 70% of a batch), squared error of the box offsets on
positives and part faces, and (O-Net) of the landmarks on landmark crops; weights 1 / 0.5 / 1
for O-Net, 1 / 0.5 for the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from dlcli.errors import DataError, RecipeError

# Inference defaults. Converted original weights look at crops crossing the image border as
# facenet-pytorch does ("stretch"); dlcli's own nets were trained on black-padded crops ("pad").
PREDICT_DEFAULTS = {"min_face": 20, "thresholds": [0.6, 0.7, 0.7], "factor": 0.709, "nms": [0.5, 0.7, 0.7, 0.7],
                    "batch_size": 8, "border": "stretch"}
CROP_SIZE = 160
STAGES = {"pnet": 12, "rnet": 24, "onet": 48}  # net -> input side
LOSS_WEIGHTS = {"pnet": (1.0, 0.5, 0.0), "rnet": (1.0, 0.5, 0.0), "onet": (1.0, 0.5, 1.0)}  # face, box, landmarks
OHEM_KEEP = 0.7
FORMATS = ("crops", "jsonl", "wider")
EVAL_BATCH = 1024


class DetectFacesTask:
    name = "detect_faces"
    default_metric = "loss"
    metrics = ("loss", "accuracy", "recall", "box_error", "landmark_error")  # on dev crops
    model_positional = 0  # the builder takes no data-derived sizes

    def __init__(self, predict: dict | None = None, stage: str | None = None, stages: int = 3):
        self.predict = {**PREDICT_DEFAULTS, **(predict or {})}
        self.stage = stage
        self.stages = stages  # nets trained so far, used by detect
        self.splits: dict = {}
        self.augment = False
        self.init_state: dict | None = None
        self.notes: list[str] = []

    # ------------------------------------------------------------ construction

    @classmethod
    def check_recipe(cls, recipe) -> None:
        cls.check_data(recipe.data)
        if recipe.model.type != "mtcnn":
            raise RecipeError(f"model.type: face detection trains mtcnn, not {recipe.model.type!r}")

    @classmethod
    def check_data(cls, cfg) -> None:
        if cfg.stage not in STAGES:
            raise RecipeError(f"data.stage: name the net this recipe trains: {', '.join(STAGES)} (got {cfg.stage!r})")
        if cfg.format not in FORMATS:
            raise RecipeError(f"data.format: face detection reads {', '.join(FORMATS)}, not {cfg.format!r}",
                              "crops: a sample list beside its .zip; jsonl or wider: annotated photos")
        if cfg.stage != "pnet" and not cfg.init:
            raise RecipeError(f"data.init: training {cfg.stage} needs the checkpoint of the earlier stages",
                              "train the pnet recipe first and name its output here")
        if not 0 <= cfg.dev_fraction < 1:
            raise RecipeError(f"data.dev_fraction: {cfg.dev_fraction} is not in [0, 1)")

    @staticmethod
    def read(path: Path, cfg):
        """A crop list (.tsv) as a CropSet; anything else as annotated photos."""
        from dlcli.vision.annotations import read_annotations
        from dlcli.vision.crops import read_crop_list

        if Path(path).suffix.lower() == ".tsv":
            return read_crop_list(path)
        return read_annotations(path, cfg.format if cfg.format in ("jsonl", "wider") else "auto")

    @classmethod
    def from_records(cls, vocab_builder, vocab_kwargs: dict, cfg, train, dev) -> DetectFacesTask:
        from dlcli.tasks import face_samples

        stages = list(STAGES).index(cfg.stage) + 1
        task = cls({"border": "pad"}, cfg.stage, stages)
        task.augment = cfg.augment
        detector = None
        if cfg.init:
            detector, task.init_state = face_samples.load_detector(cfg.init)
            task.predict.update({k: v for k, v in detector.task.predict.items() if k != "border"})
        train_set, dev_set = face_samples.stage_crops(cfg, train, dev, STAGES[cfg.stage], detector)
        task.splits["train"] = train_set
        if dev_set is not None:
            task.splits["dev"] = dev_set
        return task

    @classmethod
    def from_checkpoint(cls, data: dict) -> DetectFacesTask:
        state = data.get("task_state") or {}
        predict = state.get("predict", data.get("recipe", {}).get("predict"))
        return cls(predict, state.get("stage"), int(state.get("stages", 3)))

    def payload(self) -> dict:
        return {"task_state": {"stage": self.stage, "stages": self.stages, "predict": self.predict}}

    def model_sizes(self) -> tuple:
        return ()

    def describe(self) -> str:
        counts = ", ".join(f"{n:,} {k}" for k, n in self.splits["train"].counts().items())
        return f"{self.stage} ({STAGES[self.stage]}x{STAGES[self.stage]} crops: {counts})"

    def init_model(self, model) -> None:
        """Start from the earlier stages' weights; only this stage's net learns."""
        if self.init_state is not None:
            model.load_state_dict(self.init_state)
        for name in STAGES:
            getattr(model, name).requires_grad_(name == self.stage)

    # ------------------------------------------------------------ training

    @property
    def has_dev(self) -> bool:
        return "dev" in self.splits

    @property
    def num_train(self) -> int:
        return len(self.splits["train"])

    def train_batches(self, batch_size: int, generator):
        import torch

        order = torch.randperm(self.num_train, generator=generator).tolist()
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

    def collate(self, indices: list[int]) -> dict:
        from dlcli.tasks.face_samples import augment, to_batch

        batch = to_batch(self.splits["train"].select(indices))
        return augment(batch) if self.augment else batch

    def loss(self, net, batch: dict):
        from dlcli.tasks.face_samples import stage_losses

        model = getattr(net, "module", net)
        face, box, points = stage_losses(getattr(model, self.stage), batch, OHEM_KEEP)
        w_face, w_box, w_points = LOSS_WEIGHTS[self.stage]
        return w_face * face + w_box * box + w_points * points

    def evaluate(self, model, records=None, threshold: float | None = None, iou: float | None = None) -> dict:
        """Crop metrics on the dev split or a crop list; AP and P/R on annotated photos."""
        from dlcli.tasks.face_samples import crop_metrics
        from dlcli.vision.crops import CropSet

        if records is None or isinstance(records, CropSet):
            crops = self.splits["dev"] if records is None else records.resized(STAGES[self.stage or "onet"])
            return crop_metrics(getattr(model, self.stage or "onet"), crops, LOSS_WEIGHTS[self.stage or "onet"])
        from dlcli.vision.evaluation import evaluate_detector

        return evaluate_detector(model, self, records, 0.5 if iou is None else iou)

    # ------------------------------------------------------------ inference

    def options(self, **given) -> dict:
        """The checkpoint's inference defaults, overridden by every option given (not None)."""
        return {**self.predict, **{k: v for k, v in given.items() if v is not None}}

    def detect_options(self, cfg: dict) -> dict:
        """model.detect's keyword arguments from resolved options."""
        return {"min_face": cfg["min_face"], "thresholds": tuple(cfg["thresholds"]), "factor": cfg["factor"],
                "nms": tuple(cfg["nms"]), "batch_size": cfg["batch_size"], "border": cfg["border"],
                "stages": self.stages}

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
        found = iter(model.detect(good, **self.detect_options(cfg)))
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
