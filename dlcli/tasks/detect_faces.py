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

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from dlcli.device import unwrapped
from dlcli.errors import DataError, RecipeError
from dlcli.recipe import bounded, checkpoint_ref, choice, data_path
from dlcli.tasks import DataSection, PredictSection, Task

CROP_SIZE = 160
STAGES = {"pnet": 12, "rnet": 24, "onet": 48}  # net -> input side
LOSS_WEIGHTS = {"pnet": (1.0, 0.5, 0.0), "rnet": (1.0, 0.5, 0.0), "onet": (1.0, 0.5, 1.0)}  # face, box, landmarks
OHEM_KEEP = 0.7
FORMATS = ("crops", "jsonl", "wider")
EVAL_BATCH = 1024
# Images are scaled down to this longer side before detection (`--max-side`; 0: never). Memory grows
# with the pixels detected on: a 4096 x 4096 image is about one batch's worth (mtcnn.BATCH_PIXELS).
MAX_SIDE = 4096


@dataclass(frozen=True)
class FaceData(DataSection):
    format: str = choice("crops", FORMATS)  # crops: a sample list beside its .zip; jsonl, wider: annotated photos
    stage: str | None = choice(None, tuple(STAGES))  # the net this recipe trains
    init: str | None = checkpoint_ref()  # the detector (checkpoint or shipped name) whose nets this run starts from
    extra_train: list[str] = data_path(default_factory=list)  # more crop lists, resized to the stage's input
    recrop: int = bounded(0, ge=0)  # windows tried around the face of each crop at least twice the stage's size
    backgrounds: str | None = data_path()  # a folder of face-free photos: random negative crops from each
    background_negatives: int = bounded(30, ge=0)  # crops per background photo
    dev_fraction: float = bounded(0.0, ge=0, lt=1)  # without data.dev: hold out this share of the training samples
    dev_every: int = bounded(0, ge=0)  # annotated photos: every n-th by sorted image name is a dev photo (0: none)
    negative_ratio: float = bounded(0.0, ge=0)  # keep at most this many negatives per positive (0: all)
    augment: bool = True  # random mirror images and colour jitter while training
    cache_dir: str | None = None  # samples made from annotated photos; default ~/.cache/dlcli/samples


@dataclass(frozen=True)
class FacePredict(PredictSection):
    """Inference defaults. dlcli's own nets were trained on black-padded crops ("pad"); converted
    original weights look at crops crossing the image border as facenet-pytorch does ("stretch")."""

    batch_size: int = bounded(8, ge=1)  # images read and detected together
    min_face: float = bounded(20, gt=0)
    thresholds: list[float] = bounded(default_factory=lambda: [0.6, 0.7, 0.7], ge=0, le=1)
    factor: float = bounded(0.709, gt=0, lt=1)
    nms: list[float] = bounded(default_factory=lambda: [0.5, 0.7, 0.7, 0.7], ge=0, le=1)
    border: str = choice("pad", ("pad", "stretch"))


class DetectFacesTask(Task):
    command = "dlcli detect-faces"
    name = "detect_faces"
    data_section = FaceData
    predict_section = FacePredict
    vocabs = ()
    input_kind = "path"
    # on dev crops; the first is the default
    metrics = {"loss": False, "accuracy": True, "recall": True, "box_error": False, "landmark_error": False}
    evaluate_options = frozenset({"iou", "dev_every", "ignore_under"})
    model_positional = 0  # the builder takes no data-derived sizes

    def __init__(self, stage: str | None = None, stages: int = 3):
        self.stage = stage
        self.stages = stages  # nets trained so far, used by detect
        self.splits: dict = {}
        self.augment = False
        self.init_state: dict | None = None
        self.notes: list[str] = []

    # ------------------------------------------------------------ construction

    @classmethod
    def check_recipe(cls, recipe) -> None:
        cfg = recipe.data
        if cfg.stage not in STAGES:
            raise RecipeError(f"data.stage: name the net this recipe trains: {', '.join(STAGES)} (got {cfg.stage!r})")
        if cfg.stage != "pnet" and not cfg.init:
            raise RecipeError(f"data.init: training {cfg.stage} needs the checkpoint of the earlier stages",
                              "train the pnet recipe first and name its output here")
        if not 0 <= cfg.dev_fraction < 1:
            raise RecipeError(f"data.dev_fraction: {cfg.dev_fraction} is not in [0, 1)")
        if cfg.dev_every:
            if cfg.format == "crops":
                raise RecipeError("data.dev_every: holds out annotated photos; data.train is a crop list",
                                  "set data.format to jsonl or wider, or use data.dev_fraction")
            if cfg.dev or cfg.dev_fraction:
                twice = "data.dev" if cfg.dev else "data.dev_fraction"
                raise RecipeError(f"data.dev_every: the dev split is named twice ({twice} is set too)",
                                  "keep one of them")
            if cfg.dev_every < 2:
                raise RecipeError(f"data.dev_every: {cfg.dev_every} would hold out every photo",
                                  "10 holds out a tenth")

    @staticmethod
    def read(path: Path, cfg):
        """A crop list (.tsv) as a CropSet; anything else as annotated photos."""
        from dlcli.vision.annotations import read_annotations
        from dlcli.vision.crops import read_crop_list

        if Path(path).suffix.lower() == ".tsv":
            return read_crop_list(path)
        return read_annotations(path, cfg.format if cfg.format in ("jsonl", "wider") else "auto")

    @classmethod
    def from_records(cls, recipe, vocabs, train, dev, init=None) -> DetectFacesTask:
        """`init`: the loaded detector of the earlier stages (data.init), which proposes and mines
        the windows of R-Net's and O-Net's samples."""
        from dlcli.tasks import face_samples
        from dlcli.vision.annotations import split_every

        cfg = recipe.data
        if cfg.dev_every:
            train, dev = split_every(train, cfg.dev_every)
        stages = list(STAGES).index(cfg.stage) + 1
        task = cls(cfg.stage, stages)
        task.augment = cfg.augment
        if init is not None:
            if init.data["task"] != cls.name:
                raise DataError(f"data.init: {init.path} is a {init.data['task']} model, not a face detector")
            task.init_state = init.model.state_dict()
        train_set, dev_set = face_samples.stage_crops(cfg, train, dev, STAGES[cfg.stage], init)
        task.splits["train"] = train_set
        if dev_set is not None:
            task.splits["dev"] = dev_set
        return task

    @classmethod
    def from_checkpoint(cls, data: dict) -> DetectFacesTask:
        state = data.get("task_state") or {}
        return cls(state.get("stage"), int(state.get("stages", 3)))

    def payload(self) -> dict:
        return {"task_state": {"stage": self.stage, "stages": self.stages}}

    def model_sizes(self) -> tuple:
        return ()

    def describe(self) -> str:
        counts = ", ".join(f"{n:,} {k}" for k, n in self.splits["train"].counts().items())
        return f"{self.stage} ({STAGES[self.stage]}x{STAGES[self.stage]} crops: {counts})"

    def prepare_model(self, model) -> None:
        """Start from the earlier stages' weights; only this stage's net learns."""
        if self.init_state is not None:
            model.load_state_dict(self.init_state)
        for name in STAGES:
            model.get_submodule(name).requires_grad_(name == self.stage)

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

        model = unwrapped(net)
        face, box, points = stage_losses(model.get_submodule(self.stage), batch, OHEM_KEEP)
        w_face, w_box, w_points = LOSS_WEIGHTS[self.stage]
        return w_face * face + w_box * box + w_points * points

    def evaluate(self, model, records=None, options: dict | None = None) -> dict:
        """Crop metrics on the dev split or a crop list; AP and P/R on annotated photos, with the
        `predict` options, `iou` (the overlap a detection needs to count as a hit, 0.5), `dev_every`
        (score only the dev photos of data.dev_every) and `ignore_under` (ignore smaller faces)."""
        from dlcli.tasks.face_samples import crop_metrics
        from dlcli.vision.crops import CropSet

        if records is None or isinstance(records, CropSet):
            crops = self.splits["dev"] if records is None else records.resized(STAGES[self.stage or "onet"])
            return crop_metrics(model.get_submodule(self.stage or "onet"), crops, LOSS_WEIGHTS[self.stage or "onet"])
        from dlcli.vision.annotations import ignore_under, split_every
        from dlcli.vision.evaluation import evaluate_detector

        options = {**_defaults(FacePredict), **(options or {})}
        iou = options.get("iou", 0.5)
        if not 0 < iou <= 1:
            raise RecipeError(f"--iou must be above 0 and at most 1, not {iou}")
        every, under = options.get("dev_every"), options.get("ignore_under")
        if every is not None:
            if every < 2:
                raise RecipeError(f"--dev-every must be at least 2, not {every}")
            records = split_every(records, every)[1]
        if under is not None:
            if under < 0:
                raise RecipeError(f"--ignore-under must not be negative, not {under}")
            records = ignore_under(records, under)
        return evaluate_detector(model, self.detect_options(options), records, iou)

    # ------------------------------------------------------------ inference

    def check_options(self, options: dict) -> None:
        if not 0 < options["factor"] < 1:
            raise RecipeError(f"--factor: {options['factor']} is not between 0 and 1",
                              "0.709 is the usual step; larger is slower and finds a few more faces")
        thresholds = options["thresholds"]
        if len(thresholds) != 3 or not all(0 <= v <= 1 for v in thresholds):
            raise RecipeError(f"--thresholds: {thresholds} is not three numbers between 0 and 1",
                              "give one per net, P-Net, R-Net and O-Net, e.g. 0.6,0.7,0.7")
        max_side = options.get("max_side", MAX_SIDE)
        if isinstance(max_side, bool) or not isinstance(max_side, int) or not (max_side == 0 or max_side >= 12):
            raise RecipeError(f"--max-side: {max_side!r} is not a whole number of pixels of at least 12, or 0",
                              f"0 detects at full size; the default, {MAX_SIDE}, bounds the memory a big image takes")

    def detect_options(self, options: dict) -> dict:
        """model.detect's keyword arguments from resolved options."""
        return {"min_face": options["min_face"], "thresholds": tuple(options["thresholds"]),
                "factor": options["factor"], "nms": tuple(options["nms"]), "batch_size": options["batch_size"],
                "border": options["border"], "stages": self.stages}

    def predict(self, model, ids: list, paths: list[str], options: dict) -> list[dict]:
        """Records for image paths, in input order: {"image", "width", "height", "faces": [{"box",
        "score", "landmarks"}]}, or {"image", "error"} for a file that cannot be read. Options
        `draw_dir` and `crop_dir` (with `crop_size`) also write pictures of what was found."""
        records = self._detect_batch(model, paths, options)
        draw_dir, crop_dir = options.get("draw_dir"), options.get("crop_dir")
        for record, photo in records:
            if photo is not None and (draw_dir or crop_dir):
                _write_pictures(record, photo, draw_dir, crop_dir, options.get("crop_size", CROP_SIZE))
        return [record for record, _ in records]

    def _detect_batch(self, model, paths: list[str], options: dict) -> list[tuple[dict, object]]:
        """Option `max_side` (default MAX_SIDE, 0: none): images whose longer side is larger are
        scaled down to it for detection; boxes and landmarks are mapped back to the file's pixels."""
        from dlcli.vision.images import load_photo

        decoded = []
        for path in paths:
            try:
                decoded.append(load_photo(path, options.get("max_side", MAX_SIDE)))
            except DataError as exc:
                decoded.append(exc)
        good = [photo.pixels for photo in decoded if not isinstance(photo, DataError)]
        found = iter(model.detect(good, **self.detect_options(options)))
        out = []
        for path, photo in zip(paths, decoded):
            if isinstance(photo, DataError):
                out.append(({"image": path, "error": photo.message}, None))
                continue
            faces = [_face_record(face, *photo.scale) for face in next(found)]
            out.append(({"image": path, "width": photo.width, "height": photo.height, "faces": faces}, photo))
        return out


def _defaults(section: type) -> dict:
    return dataclasses.asdict(section())


def _face_record(face: dict, sx: float = 1.0, sy: float = 1.0) -> dict:
    """A face as its record holds it; (sx, sy): file pixels per pixel of the image detected on."""
    x1, y1, x2, y2 = face["box"]
    return {"box": [round(x1 * sx, 2), round(y1 * sy, 2), round(x2 * sx, 2), round(y2 * sy, 2)],
            "score": round(face["score"], 6),
            "landmarks": [[round(x * sx, 2), round(y * sy, 2)] for x, y in face["landmarks"]]}


def _write_pictures(record: dict, photo, draw_dir: Path | None, crop_dir: Path | None, crop_size: int) -> None:
    """<stem>.png with boxes drawn into draw_dir; <stem>_<i>.png square face crops into crop_dir,
    from the image at its full size (decoded again if it was scaled down for detection)."""
    from dlcli.vision.images import draw_faces, face_crop, load_image, to_pil

    image = photo.pixels if photo.scale == (1.0, 1.0) else load_image(record["image"])
    picture, stem = to_pil(image), Path(record["image"]).stem
    if draw_dir:
        draw_dir.mkdir(parents=True, exist_ok=True)
        draw_faces(picture, record["faces"]).save(draw_dir / f"{stem}.png")
    if crop_dir:
        crop_dir.mkdir(parents=True, exist_ok=True)
        for i, face in enumerate(record["faces"]):
            face_crop(picture, face["box"], crop_size).save(crop_dir / f"{stem}_{i}.png")
