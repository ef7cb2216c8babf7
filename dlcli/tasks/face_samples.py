"""The training side of face detection: sample sets for a stage, batches, augmentation, losses
and crop-level metrics. Used by DetectFacesTask (dlcli/tasks/detect_faces.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dlcli.errors import DataError
from dlcli.vision.crops import LANDMARK, NEG, PART, POS, CropSet

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MIRROR = [1, 0, 2, 4, 3]  # landmark order after a horizontal flip: the eyes and mouth corners swap
GREY = 0.2  # share of crops turned grey: grey photos are common in face benchmarks


# ---------------------------------------------------------------- sample sets


def background_split(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """Face-free photos of a folder, sorted by name, as (training, dev): every fifth one, starting
    with the first, is kept for dev sets (scripts/make_faces_dev.py pastes faces onto those)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data.backgrounds: {folder.resolve()} is not a folder of photos")
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise DataError(f"data.backgrounds: no photos in {folder.resolve()}")
    return [p for i, p in enumerate(photos) if i % 5], photos[::5]


def stage_crops(cfg, train, dev, size: int, detector) -> tuple[CropSet, CropSet | None]:
    """(training, dev) samples of a stage: the main file, the extra crop lists and random
    negatives from the background photos, each resized to `size`, plus re-cropped faces. Without
    data.dev, `dev_fraction` of every source is held out before any re-cropping, so no dev face
    has a re-cropped twin in training."""
    from dlcli.vision.crops import read_crops

    lists = [train] if isinstance(train, CropSet) else [as_crops(cfg, train, size, detector, "train")]
    lists += [read_crops(path) for path in cfg.extra_train]
    if cfg.backgrounds:
        lists.append(background_negatives(cfg, size, detector))
    held = []
    if dev is None and cfg.dev_fraction:
        pairs = [hold_out(crops, cfg.dev_fraction) for crops in lists]
        lists, held = [p[0] for p in pairs], [p[1].resized(size) for p in pairs]
    parts = [crops.resized(size) for crops in lists]
    if cfg.recrop:
        rng = np.random.default_rng(0)
        parts += [recrops(crops, size, cfg.recrop, rng) for crops in lists if crops.size >= 2 * size]
    crops = CropSet.cat(parts)
    if cfg.negative_ratio:
        crops = cap_negatives(crops, cfg.negative_ratio)
    if dev is not None:
        dev_set = as_crops(cfg, dev, size, detector, "dev")
    else:
        dev_set = CropSet.cat(held) if held else None
    return crops, dev_set


def cap_negatives(crops: CropSet, ratio: float) -> CropSet:
    """At most `ratio` negatives per positive (the paper trains on 3:1), a fixed random choice of
    them; every other sample stays, in order."""
    negatives = np.flatnonzero(crops.kinds == NEG)
    wanted = int(ratio * int((crops.kinds == POS).sum()))
    if len(negatives) <= wanted:
        return crops
    dropped = np.random.default_rng(0).permutation(negatives)[wanted:]
    return crops.select(np.setdiff1d(np.arange(len(crops)), dropped))


def recrops(crops: CropSet, size: int, tries: int, rng: np.random.Generator) -> CropSet:
    """New face and part-face windows inside larger face crops: each crop's box target says where
    its face is, so windows shifted and scaled around it get exact targets too. Multiplies the
    positives for the smaller nets (a 48 px crop holds many distinct 12 px views of its face)."""
    from dlcli.vision import samples
    from dlcli.vision.annotations import Annotation

    side = crops.size
    out = []
    for i in np.flatnonzero(((crops.kinds == POS) | (crops.kinds == PART)) & np.isfinite(crops.boxes).all(1)):
        dx1, dy1, dx2, dy2 = crops.boxes[i] * side
        face = np.array([[dx1, dy1, side + dx2, side + dy2]], np.float32)
        if (face[0, 2:] - face[0, :2] < 2 * size / 3).any():
            continue
        annotation = Annotation(Path("crop"), face, np.zeros(1, bool), None, "crop")
        out.append(samples.random_samples(annotation, crops.images[i], size, rng, negatives=0, near_negatives=0,
                                          around=tries, min_face=size))
    return CropSet.cat(out) if out else CropSet.empty(size)


def as_crops(cfg, records, size: int, detector, split: str) -> CropSet:
    """A crop list as it is (resized); annotated photos through sample generation (cached)."""
    if isinstance(records, CropSet):
        return records.resized(size)
    from dlcli.vision import samples

    source = Path(records[0].source.rsplit(":", 1)[0]) if records else Path(split)
    key = _cache_key(cfg, detector, source, size, cfg.dev_every)
    cache = _cache_root(cfg) / f"{cfg.stage}-{split}-{key}"
    return samples.generate(records, size, cache, _sampler(size, detector, negatives=50))


def background_negatives(cfg, size: int, detector) -> CropSet:
    """Random windows of the training backgrounds and, with earlier stages, the windows they
    still propose there: every one a negative, and the latter the hard ones."""
    from dlcli.vision import samples
    from dlcli.vision.annotations import Annotation

    photos, _ = background_split(cfg.backgrounds)
    empty = [Annotation(p, np.zeros((0, 4), np.float32), np.zeros(0, bool), None, str(p)) for p in photos]
    key = _cache_key(cfg, detector, photos, size, cfg.background_negatives)
    cache = _cache_root(cfg) / f"{cfg.stage}-backgrounds-{key}"
    return samples.generate(empty, size, cache, _sampler(size, detector, cfg.background_negatives))


def _sampler(size: int, detector, negatives: int):
    """make(annotation, image, rng) for samples.generate: P-Net's random windows, or for a later
    stage the windows the earlier ones propose, plus a few random ones (as the paper does, so a
    stage never lacks positives or landmarks)."""
    from dlcli.vision import samples

    if detector is None:
        return lambda annotation, image, rng: samples.random_samples(annotation, image, size, rng,
                                                                     negatives=negatives)
    options = detector.task.detect_options(detector.predict_defaults)

    def make(annotation, image, rng):
        faces = detector.model.detect([torch.from_numpy(image)], **options)[0]
        candidates = np.array([face["box"] for face in faces], np.float32).reshape(-1, 4)
        mined = samples.mined_samples(annotation, image, candidates, size)
        # a crowded or busy photo yields hundreds of negatives: keep a random `negatives` of them
        kept = np.flatnonzero(mined.kinds != NEG)
        extra = rng.permutation(np.flatnonzero(mined.kinds == NEG))[:negatives]
        return CropSet.cat([mined.select(np.sort(np.concatenate([kept, extra]))),
                            samples.random_samples(annotation, image, size, rng, negatives=max(1, negatives // 10))])
    return make


def _cache_key(cfg, detector, *parts) -> str:
    from dlcli.vision.samples import cache_key

    init = (detector.path, detector.predict_defaults) if detector else None
    return cache_key(*parts, cfg.stage, init)


def hold_out(crops: CropSet, fraction: float) -> tuple[CropSet, CropSet]:
    """A fixed random share of the samples as dev (the same for every run over the same data)."""
    order = np.random.default_rng(0).permutation(len(crops))
    n_dev = max(1, round(fraction * len(crops)))
    return crops.select(np.sort(order[n_dev:])), crops.select(np.sort(order[:n_dev]))


def _cache_root(cfg) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dlcli" / "samples"


# ---------------------------------------------------------------- batches


def to_batch(crops: CropSet) -> dict[str, torch.Tensor]:
    return {
        "images": torch.from_numpy(crops.images).permute(0, 3, 1, 2).float(),  # (B, 3, S, S) 0..255
        "kinds": torch.from_numpy(crops.kinds.astype(np.int64)),
        "boxes": torch.from_numpy(crops.boxes),  # (B, 4)
        "landmarks": torch.from_numpy(crops.landmarks),  # (B, 5, 2)
    }


def augment(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mirror half the crops (targets mirrored too), jitter brightness and contrast, and turn a
    fifth grey. Draws from torch's global generator, which AutogradStep seeds per step."""
    images, boxes, points = batch["images"].clone(), batch["boxes"].clone(), batch["landmarks"].clone()
    n = len(images)
    flip = torch.rand(n) < 0.5
    images[flip] = images[flip].flip(3)
    # box offsets: the left edge's offset is minus the old right edge's, and so on
    boxes[flip] = torch.stack([-boxes[flip, 2], boxes[flip, 1], -boxes[flip, 0], boxes[flip, 3]], 1)
    has_points = flip & (batch["kinds"] == LANDMARK)
    mirrored = points[has_points][:, MIRROR]
    mirrored[..., 0] = 1 - mirrored[..., 0]
    points[has_points] = mirrored
    brightness = torch.empty(n, 1, 1, 1).uniform_(0.75, 1.25)
    contrast = torch.empty(n, 1, 1, 1).uniform_(0.75, 1.25)
    mean = images.mean((1, 2, 3), keepdim=True)
    images = ((images - mean) * contrast + mean) * brightness
    grey = torch.rand(n) < GREY
    images[grey] = images[grey].mean(1, keepdim=True).expand(-1, 3, -1, -1)
    return {**batch, "images": images.clamp(0, 255), "boxes": boxes, "landmarks": points}


# ---------------------------------------------------------------- losses and metrics


def net_outputs(net, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(face logits (B, 2), box offsets (B, 4), landmarks (B, 10) or None) of any of the three nets."""
    from dlcli.models.mtcnn import normalise

    out = net(normalise(images))
    logits, boxes = out[0].flatten(1), out[1].flatten(1)  # P-Net's 1x1 maps -> vectors
    return logits, boxes, out[2] if len(out) > 2 else None


def stage_losses(net, batch: dict, keep: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(face cross-entropy over the hardest `keep` share, box squared error, landmark squared error)."""
    logits, boxes, points = net_outputs(net, batch["images"])
    kinds = batch["kinds"]
    zero = logits.sum() * 0
    labelled = (kinds == POS) | (kinds == NEG)
    face = zero
    if labelled.any():
        losses = F.cross_entropy(logits[labelled], (kinds[labelled] == POS).long(), reduction="none")
        face = losses.topk(max(1, int(keep * len(losses)))).values.mean()
    boxed = ((kinds == POS) | (kinds == PART)) & batch["boxes"].isfinite().all(1)
    box = ((boxes[boxed] - batch["boxes"][boxed]) ** 2).sum(1).mean() if boxed.any() else zero
    marked = kinds == LANDMARK
    landmark = zero
    if points is not None and marked.any():
        target = batch["landmarks"][marked].transpose(1, 2).flatten(1)  # (N, 10): x1..x5, y1..y5
        landmark = ((points[marked] - target) ** 2).sum(1).mean()
    return face, box, landmark


@torch.no_grad()
def crop_metrics(net, crops: CropSet, weights: tuple[float, float, float]) -> dict:
    """Dev metrics of one net: the weighted loss (no hard-example mining), face/non-face accuracy
    and face recall at 0.5, mean absolute box-offset error, mean landmark distance (crop fractions)."""
    net.eval()
    sums = {"face": 0.0, "box": 0.0, "landmark": 0.0, "correct": 0, "found": 0, "box_abs": 0.0, "dist": 0.0,
            "n_boxed": 0}
    counts = crops.counts()
    for start in range(0, len(crops), 1024):
        batch = to_batch(crops.select(slice(start, start + 1024)))
        logits, boxes, points = net_outputs(net, batch["images"])
        kinds = batch["kinds"]
        labelled = (kinds == POS) | (kinds == NEG)
        truth = (kinds[labelled] == POS).long()
        sums["face"] += float(F.cross_entropy(logits[labelled], truth, reduction="sum")) if labelled.any() else 0.0
        predicted = logits[labelled].argmax(1)
        sums["correct"] += int((predicted == truth).sum())
        sums["found"] += int((predicted[truth == 1] == 1).sum())
        boxed = ((kinds == POS) | (kinds == PART)) & batch["boxes"].isfinite().all(1)
        sums["n_boxed"] += int(boxed.sum())
        error = boxes[boxed] - batch["boxes"][boxed]
        sums["box"] += float((error ** 2).sum())
        sums["box_abs"] += float(error.abs().mean(1).sum())
        marked = kinds == LANDMARK
        if points is not None and marked.any():
            guess = points[marked].view(-1, 2, 5).transpose(1, 2)  # (N, 5, 2)
            gap = guess - batch["landmarks"][marked]
            sums["landmark"] += float((gap ** 2).sum())
            sums["dist"] += float(gap.norm(dim=2).mean(1).sum())
    n_labelled, n_boxed = counts["pos"] + counts["neg"], sums["n_boxed"]
    n_marked = counts["landmark"] if weights[2] else 0
    face = sums["face"] / max(1, n_labelled)
    box = sums["box"] / max(1, n_boxed)
    landmark = sums["landmark"] / max(1, n_marked)
    out = {"loss": weights[0] * face + weights[1] * box + weights[2] * landmark,
           "accuracy": sums["correct"] / max(1, n_labelled), "recall": sums["found"] / max(1, counts["pos"]),
           "box_error": sums["box_abs"] / max(1, n_boxed), "n": len(crops), **{f"n_{k}": v for k, v in counts.items()}}
    if n_marked:
        out["landmark_error"] = sums["dist"] / n_marked
    return out
