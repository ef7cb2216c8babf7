"""MTCNN training samples from annotated photos: labels and targets against the IoU rules, crops,
and the cached, resumable generation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dlcli.errors import DataError
from dlcli.vision import samples as S
from dlcli.vision.annotations import Annotation
from dlcli.vision.crops import LANDMARK, NEG, PART, POS, CropSet

FACE = np.array([40, 30, 80, 70], np.float32)
IGNORED = np.array([110, 75, 140, 105], np.float32)
TINY = np.array([5, 100, 13, 108], np.float32)  # under min_face: no windows of its own
POINTS = np.array([[50, 42], [70, 42], [60, 52], [52, 62], [68, 62]], np.float32)


def photo(height: int = 120, width: int = 160, seed: int = 0) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 100, (height, width, 3), dtype=np.uint8)
    pixels[30:70, 40:80] = 230  # the "face"
    return pixels


def annotation(image=None, source: str = "faces.jsonl:1") -> Annotation:
    landmarks = np.full((3, 5, 2), np.nan, np.float32)
    landmarks[0] = POINTS
    return Annotation(image, np.stack([FACE, IGNORED, TINY]), np.array([False, True, False]), landmarks, source)


def coordinates(height: int, width: int) -> np.ndarray:
    """Each pixel says where it is: red = x, green = y (+ 1, so black means padding)."""
    ys, xs = np.mgrid[:height, :width]
    return np.dstack([xs + 1, ys + 1, np.full_like(xs, 255)]).astype(np.uint8)


def iou(box, boxes) -> np.ndarray:
    """A plain reference, one pair at a time."""
    out = []
    for other in np.asarray(boxes, np.float64).reshape(-1, 4):
        w = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
        h = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
        union = (box[2] - box[0]) * (box[3] - box[1]) + (other[2] - other[0]) * (other[3] - other[1]) - w * h
        out.append(w * h / union)
    return np.array(out)


def test_square_keeps_the_centre_and_takes_the_longer_side():
    assert np.allclose(S.square(np.array([[0, 0, 10, 4], [2, 2, 4, 8]])), [[0, -3, 10, 7], [0, 2, 6, 8]])


def test_random_windows_obey_the_iou_rules_and_targets_lead_back_to_the_face():
    plan = S._random_plan(annotation(), 120, 160, np.random.default_rng(1), negatives=50, near_negatives=5,
                          around=60, min_face=12)
    windows, kinds = plan.windows, plan.kinds
    boxes = S.window_boxes(windows)
    assert (windows[:, :2] >= 0).all() and (boxes[:, 2] <= 160).all() and (boxes[:, 3] <= 120).all()
    counts = {kind: int((kinds == kind).sum()) for kind in (NEG, POS, PART, LANDMARK)}
    assert counts[POS] > 0 and counts[PART] > 0 and counts[LANDMARK] > 0 and 50 <= counts[NEG] <= 55

    everything = np.stack([FACE, IGNORED, TINY])
    for window, box in zip(windows[kinds == NEG], boxes[kinds == NEG]):
        assert iou(box, everything).max() < 0.3 and window[2] >= 12
    for kind, low, high in ((POS, 0.65, 1.01), (PART, 0.4, 0.65)):
        for window, box, target in zip(windows[kinds == kind], boxes[kinds == kind], plan.boxes[kinds == kind]):
            gt = box + target * window[2]
            assert np.allclose(gt, FACE, atol=1e-3)  # only the big, non-ignored face has windows
            assert low <= iou(box, FACE)[0] < high
    for window, box, points in zip(windows[kinds == LANDMARK], boxes[kinds == LANDMARK],
                                   plan.landmarks[kinds == LANDMARK]):
        assert ((points >= 0) & (points <= 1)).all() and iou(box, FACE)[0] >= 0.65
        assert np.allclose(window[:2] + points * window[2], POINTS, atol=1e-3)
    assert not plan.landmarks[kinds != LANDMARK].any() and not plan.boxes[(kinds == NEG) | (kinds == LANDMARK)].any()


def test_landmark_windows_hold_every_point():
    ann = annotation()
    ann.landmarks[0, 3] = [41, 69]  # a mouth corner at the face box's corner: many windows miss it
    plan = S._random_plan(ann, 120, 160, np.random.default_rng(3), negatives=0, near_negatives=0, around=100,
                          min_face=12)
    points = plan.landmarks[plan.kinds == LANDMARK]
    assert len(points) > 0 and ((points >= 0) & (points <= 1)).all()


def test_random_samples_cuts_the_planned_windows():
    image = coordinates(120, 160)
    found = S.random_samples(annotation(), image, 12, np.random.default_rng(2))
    plan = S._random_plan(annotation(), 120, 160, np.random.default_rng(2), negatives=50, near_negatives=5,
                          around=20, min_face=12)
    assert found.images.shape == (len(plan.kinds), 12, 12, 3) and found.images.dtype == np.uint8
    assert np.array_equal(found.kinds, plan.kinds) and np.array_equal(found.boxes, plan.boxes)
    # a crop's mean position is its window's centre (red = x + 1, green = y + 1)
    centres = plan.windows[:, :2] + (plan.windows[:, 2:] - 1) / 2 + 1
    assert np.abs(found.images[..., :2].mean((1, 2)) - centres).max() < 1.0


def test_small_photos_and_photos_without_faces():
    empty = Annotation(None, np.zeros((0, 4), np.float32), np.zeros(0, bool))
    found = S.random_samples(empty, photo(), 12, np.random.default_rng(0), negatives=7)
    assert len(found) == 7 and (found.kinds == NEG).all()
    tiny = S.random_samples(empty, photo(20, 20), 12, np.random.default_rng(0))  # no room for a 12 px window
    assert len(tiny) == 0 and tiny.images.shape == (0, 12, 12, 3)


def test_mined_windows_are_labelled_by_iou_and_ignored_boxes_are_no_negatives():
    candidates = np.array([
        FACE,  # exactly the face
        [45, 30, 75, 70],  # narrower: squared, it is the face again
        [50, 30, 90, 70],  # IoU 0.6
        [58, 30, 98, 70],  # IoU 0.38: dropped
        [112, 77, 142, 107],  # on the ignored face: dropped
        [0, 0, 20, 20],  # background
        [200, 0, 230, 30],  # entirely outside the photo: dropped
    ], np.float32)
    plan = S._mined_plan(annotation(), 120, 160, candidates)
    assert list(plan.kinds) == [POS, POS, PART, NEG]
    assert np.allclose(plan.boxes[:2], 0) and np.allclose(plan.boxes[2], [-10 / 40, 0, -10 / 40, 0])
    assert np.array_equal(plan.windows[3], [0, 0, 20]) and not plan.boxes[3].any()


def test_mined_crops_pad_outside_the_photo_with_black():
    image = coordinates(120, 160)
    found = S.mined_samples(annotation(), image, np.array([[-10, -5, 30, 35], FACE]), 40)
    assert list(found.kinds) == [POS, NEG]
    neg = found.images[1]
    assert not neg[:5].any() and not neg[:, :10].any()
    assert np.array_equal(neg[5:, 10:], image[:35, :30])
    assert np.array_equal(found.images[0], image[30:70, 40:80])


def write_photos(folder, n: int) -> list[Annotation]:
    folder.mkdir()
    out = []
    for i in range(n):
        Image.fromarray(photo(seed=i)).save(folder / f"{i}.png")
        out.append(annotation(folder / f"{i}.png", f"faces.jsonl:{i + 1}"))
    return out


def make(annotation, image, rng) -> CropSet:
    return S.random_samples(annotation, image, 12, rng, negatives=4, near_negatives=2, around=6)


def same(a: CropSet, b: CropSet) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("images", "kinds", "boxes", "landmarks"))


def test_generate_caches_shards_and_resumes_identically(tmp_path):
    photos = write_photos(tmp_path / "photos", 5)
    cache = tmp_path / "cache"
    steps = []
    first = S.generate(photos, 12, cache, make, shard=2, progress=lambda done, total: steps.append((done, total)))
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert sorted(p.name for p in cache.iterdir()) == [f"shard_{k:05d}.npz" for k in range(3)]
    assert len(first) > 0 and (first.kinds == POS).any()

    def refuse(*_):
        raise AssertionError("should have come from the cache")

    assert same(S.generate(photos, 12, cache, refuse, shard=2), first)

    (cache / "shard_00001.npz").unlink()
    called = []

    def counting(annotation, image, rng):
        called.append(annotation.source)
        return make(annotation, image, rng)

    assert same(S.generate(photos, 12, cache, counting, shard=2), first)
    assert called == ["faces.jsonl:3", "faces.jsonl:4"]
    assert len(S.generate([], 12, tmp_path / "none", make)) == 0


def test_generate_names_the_annotation_line_of_an_unreadable_photo(tmp_path):
    photos = write_photos(tmp_path / "photos", 2)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    photos.append(annotation(tmp_path / "broken.png", "faces.jsonl:7"))
    with pytest.raises(DataError) as caught:
        S.generate(photos, 12, tmp_path / "cache", make, shard=2)
    assert caught.value.message.startswith("faces.jsonl:7: ") and "broken.png" in caught.value.message
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["shard_00000.npz"]


def test_cache_key_follows_file_contents_and_options(tmp_path):
    path = tmp_path / "faces.jsonl"
    path.write_text("{}\n")
    key = S.cache_key(path, 12, {"negatives": 50}, make)
    assert key == S.cache_key(path, 12, {"negatives": 50}, make) and len(key) == 16
    assert key != S.cache_key(path, 24, {"negatives": 50}, make)
    assert key != S.cache_key(path, 12, {"negatives": 40}, make)
    path.write_text("{}\n{}\n")
    assert key != S.cache_key(path, 12, {"negatives": 50}, make)
    assert S.cache_key(np.zeros(2000)) != S.cache_key(np.ones(2000) * 1e-9)
