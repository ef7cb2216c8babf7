"""IoU and NMS (dlcli.nn.boxes) against plain Python loops, and against torchvision when it imports."""

from __future__ import annotations

import random

import pytest
import torch

from dlcli.nn import boxes as B


def ref_overlap(a, b, mode="union") -> float:
    def area(r):
        return max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])

    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    denominator = area(a) + area(b) - inter if mode == "union" else min(area(a), area(b))
    return inter / denominator if denominator > 0 else 0.0


def ref_nms(boxes, scores, groups, threshold, mode="union") -> list[int]:
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    for i in order:
        if all(groups[k] != groups[i] or ref_overlap(boxes[k], boxes[i], mode) <= threshold for k in kept):
            kept.append(i)
    return kept


def random_boxes(rng: random.Random, n: int, ties: bool = False, degenerate: bool = False):
    boxes, scores, groups = [], [], []
    for _ in range(n):
        x, y = rng.uniform(-20, 100), rng.uniform(-20, 100)
        w, h = rng.uniform(1, 40), rng.uniform(1, 40)
        if degenerate and rng.random() < 0.2:
            w = rng.choice([0.0, -rng.uniform(1, 10)])  # empty or inverted
        boxes.append([x, y, x + w, y + h])
        scores.append(round(rng.random(), 1) if ties else rng.random())
        groups.append(rng.randrange(3))
    return boxes, scores, groups


def tensors(boxes, scores, groups):
    return (torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4), torch.tensor(scores, dtype=torch.float64),
            torch.tensor(groups))


@pytest.mark.parametrize("seed", range(12))
def test_iou_and_min_overlap_match_the_loop(seed):
    rng = random.Random(seed)
    a, _, _ = random_boxes(rng, rng.randint(1, 15), degenerate=True)
    b, _, _ = random_boxes(rng, rng.randint(1, 15), degenerate=True)
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    for mode in ("union", "min"):
        expected = torch.tensor([[ref_overlap(x, y, mode) for y in b] for x in a], dtype=torch.float64)
        assert torch.allclose(B.overlap(ta, tb, mode), expected, atol=1e-12)
    assert torch.equal(B.iou(ta, tb), B.overlap(ta, tb, "union"))
    assert not B.iou(ta, tb).isnan().any()


@pytest.mark.parametrize("seed", range(30))
def test_nms_matches_the_loop(seed):
    rng = random.Random(seed)
    boxes, scores, groups = random_boxes(rng, rng.randint(1, 80), ties=seed % 3 == 0, degenerate=seed % 2 == 0)
    tb, ts, tg = tensors(boxes, scores, groups)
    for mode in ("union", "min"):
        for threshold in (0.0, 0.3, 0.7):
            assert B.nms(tb, ts, threshold, mode).tolist() == ref_nms(boxes, scores, [0] * len(boxes), threshold, mode)
            assert B.batched_nms(tb, ts, tg, threshold, mode).tolist() == ref_nms(boxes, scores, groups, threshold,
                                                                                 mode)


def test_blocks_give_the_same_answer(monkeypatch):
    rng = random.Random(5)
    boxes, scores, groups = random_boxes(rng, 150, ties=True)
    tb, ts, tg = tensors(boxes, scores, groups)
    whole = B.batched_nms(tb, ts, tg, 0.4).tolist()
    monkeypatch.setattr(B, "BLOCK", 7)  # many blocks: suppression must carry across them
    assert B.batched_nms(tb, ts, tg, 0.4).tolist() == whole == ref_nms(boxes, scores, groups, 0.4)


def test_ties_keep_the_earlier_box_and_min_mode_drops_nested_boxes():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [2, 2, 5, 5]])
    scores = torch.tensor([0.5, 0.5, 0.4])
    assert B.nms(boxes, scores, 0.5).tolist() == [0, 2]  # the small box: IoU 0.09
    assert B.nms(boxes, scores, 0.5, "min").tolist() == [0]  # inside box 0: overlap 1 over its own area


def test_groups_never_suppress_each_other():
    boxes = torch.tensor([[0.0, 0, 10, 10]] * 3)
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert B.batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1]
    assert B.nms(boxes, scores, 0.5).tolist() == [0]


def test_empty_input():
    kept = B.nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert kept.dtype == torch.long and kept.shape == (0,)
    assert B.iou(torch.zeros(0, 4), torch.zeros(3, 4)).shape == (0, 3)
    with pytest.raises(ValueError, match="mode"):
        B.overlap(torch.zeros(1, 4), torch.zeros(1, 4), "max")


def test_against_torchvision():
    try:
        from torchvision import ops
    except Exception:  # not installed, or a build that does not match this torch
        pytest.skip("torchvision is not importable")
    rng = random.Random(11)
    for _ in range(10):
        boxes, scores, groups = random_boxes(rng, rng.randint(1, 100))
        tb, ts, tg = tensors(boxes, scores, groups)
        assert B.nms(tb, ts, 0.5).tolist() == ops.nms(tb, ts, 0.5).tolist()
        assert B.batched_nms(tb, ts, tg, 0.5).tolist() == ops.batched_nms(tb, ts, tg, 0.5).tolist()
        assert torch.allclose(B.iou(tb, tb), ops.box_iou(tb, tb))
