"""Face detection training pieces: mirrored targets, hard example mining, held-out splits,
background splits, crop lists."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlcli.errors import DataError
from dlcli.tasks import face_samples
from dlcli.vision.crops import LANDMARK, NEG, PART, POS, CropSet


def one_crop_set(kind: int, box=(0.0, 0.0, 0.0, 0.0), points=None, side: int = 12) -> CropSet:
    image = np.zeros((1, side, side, 3), np.uint8)
    image[0, :, : side // 3] = 255  # a bright left third, so a mirror image is easy to see
    marks = np.zeros((1, 5, 2), np.float32) if points is None else np.array([points], np.float32)
    return CropSet(image, np.array([kind], np.int8), np.array([box], np.float32), marks)


def flipped(crops: CropSet) -> dict:
    torch.manual_seed(0)
    for _ in range(50):  # augment mirrors each crop with probability 1/2: retry until it does
        batch = face_samples.augment(face_samples.to_batch(crops))
        if batch["images"][0, :, :, -1].mean() > batch["images"][0, :, :, 0].mean():
            return batch
    raise AssertionError("never mirrored")


def test_mirroring_moves_the_face_box_with_the_image():
    # face at x 2..8 of a 12 px crop: targets (gt - window) / side, window = the whole crop
    crops = one_crop_set(POS, box=(2 / 12, 1 / 12, (8 - 12) / 12, (10 - 12) / 12))
    dx1, dy1, dx2, dy2 = flipped(crops)["boxes"][0].tolist()
    # mirrored face spans x 4..10, y unchanged
    assert dx1 * 12 == pytest.approx(4) and (12 + dx2 * 12) == pytest.approx(10)
    assert dy1 * 12 == pytest.approx(1) and (12 + dy2 * 12) == pytest.approx(10)


def test_mirroring_swaps_left_and_right_landmarks():
    points = [(0.3, 0.4), (0.7, 0.4), (0.5, 0.6), (0.35, 0.8), (0.65, 0.8)]
    out = flipped(one_crop_set(LANDMARK, points=points))["landmarks"][0].tolist()
    # the left eye of the mirrored face is the old right eye, mirrored: 1 - 0.7
    assert out[0] == pytest.approx([0.3, 0.4]) and out[1] == pytest.approx([0.7, 0.4])
    assert out[3] == pytest.approx([0.35, 0.8]) and out[2] == pytest.approx([0.5, 0.6])


def test_face_loss_keeps_only_the_hardest_examples():
    logits = torch.tensor([[4.0, -4.0], [-1.0, 1.0], [0.0, 0.0], [2.0, -2.0], [0.5, 0.5]])
    kinds = torch.tensor([NEG, POS, POS, POS, PART])

    class Net(torch.nn.Module):
        def forward(self, x):
            return logits, torch.zeros(len(x), 4)

    batch = {"images": torch.zeros(5, 3, 12, 12), "kinds": kinds, "boxes": torch.zeros(5, 4),
             "landmarks": torch.zeros(5, 5, 2)}
    face, box, landmark = face_samples.stage_losses(Net(), batch, keep=0.5)
    each = F.cross_entropy(logits[:4], torch.tensor([0, 1, 1, 1]), reduction="none")
    assert face == pytest.approx(float(each.topk(2).values.mean()))
    assert box == 0 and landmark == 0


def test_hold_out_is_fixed_and_disjoint():
    crops = CropSet(np.arange(20, dtype=np.uint8).repeat(12 * 12 * 3).reshape(20, 12, 12, 3),
                    np.zeros(20, np.int8), np.zeros((20, 4), np.float32), np.zeros((20, 5, 2), np.float32))
    train, dev = face_samples.hold_out(crops, 0.25)
    again, _ = face_samples.hold_out(crops, 0.25)
    assert len(dev) == 5 and len(train) == 15
    assert set(train.images[:, 0, 0, 0]) | set(dev.images[:, 0, 0, 0]) == set(range(20))
    assert np.array_equal(train.images, again.images)


def test_background_split_keeps_every_fifth_photo_for_dev(tmp_path):
    for i in range(12):
        (tmp_path / f"{i:02d}.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a photo", encoding="utf-8")
    train, dev = face_samples.background_split(tmp_path)
    assert [p.name for p in dev] == ["00.jpg", "05.jpg", "10.jpg"]
    assert len(train) == 9 and not set(train) & set(dev)
    with pytest.raises(DataError, match="not a folder"):
        face_samples.background_split(tmp_path / "missing")


def test_faces_without_a_box_teach_only_the_face_score():
    class Net(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(len(x), 2, requires_grad=True), torch.ones(len(x), 4)

    batch = {"images": torch.zeros(2, 3, 12, 12), "kinds": torch.tensor([POS, POS]),
             "boxes": torch.tensor([[0.0, 0.0, 0.0, 0.0], [float("nan")] * 4]), "landmarks": torch.zeros(2, 5, 2)}
    face, box, _ = face_samples.stage_losses(Net(), batch, keep=1.0)
    assert float(box.detach()) == pytest.approx(4.0)  # only the first crop's squared error (1 per coordinate)
    assert float(face.detach()) == pytest.approx(float(np.log(2)))


def test_cap_negatives_keeps_every_face_and_a_fixed_share_of_negatives():
    kinds = np.array([NEG] * 10 + [POS] * 2 + [PART] * 3 + [LANDMARK], np.int8)
    n = len(kinds)
    crops = CropSet(np.arange(n, dtype=np.uint8).repeat(12 * 12 * 3).reshape(n, 12, 12, 3), kinds,
                    np.zeros((n, 4), np.float32), np.zeros((n, 5, 2), np.float32))
    capped = face_samples.cap_negatives(crops, 3)
    assert capped.counts() == {"neg": 6, "pos": 2, "part": 3, "landmark": 1}
    kept = capped.images[:, 0, 0, 0]
    assert list(kept) == sorted(kept), "the order of the samples is kept"
    assert np.array_equal(kept, face_samples.cap_negatives(crops, 3).images[:, 0, 0, 0])
    assert len(face_samples.cap_negatives(crops, 5)) == n  # 10 negatives are within 5 per positive
