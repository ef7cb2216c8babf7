"""Box overlap and greedy non-maximum suppression, vectorised in torch.

Boxes are (x1, y1, x2, y2) with x2/y2 exclusive, so a box's area is (x2 - x1) * (y2 - y1), as in
torchvision.ops. Inverted boxes (x2 < x1) count as empty. Callers holding inclusive pixel boxes
(the original MTCNN's convention, area (x2 - x1 + 1) * (y2 - y1 + 1)) add 1 to x2 and y2 first.
"""

from __future__ import annotations

import torch

# Candidates compared at once: memory stays O(BLOCK * (BLOCK + kept)) however many boxes come in.
BLOCK = 2048


def area(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 4) -> (N,); empty for degenerate or inverted boxes."""
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def overlap(a: torch.Tensor, b: torch.Tensor, mode: str = "union") -> torch.Tensor:
    """(N, 4), (M, 4) -> (N, M): intersection over union ("union") or over the smaller area ("min").

    A zero denominator (both boxes empty) gives 0, never NaN.
    """
    if mode not in ("union", "min"):
        raise ValueError(f"overlap mode must be 'union' or 'min', not {mode!r}")
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])  # (N, M, 2)
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])  # (N, M, 2)
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    area_a, area_b = area(a)[:, None], area(b)[None, :]
    if mode == "union":
        denominator = area_a + area_b - inter
    else:
        denominator = torch.minimum(area_a, area_b)
    return torch.where(denominator > 0, inter / denominator.clamp(min=torch.finfo(inter.dtype).tiny), 0.0)


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every pair: (N, 4), (M, 4) -> (N, M)."""
    return overlap(a, b, "union")


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, mode: str = "union") -> torch.Tensor:
    """Greedy NMS: indices of the kept boxes, by descending score (ties: the earlier box first).

    A box is dropped when its overlap with a kept, higher-scoring box is > `threshold`.
    """
    return batched_nms(boxes, scores, None, threshold, mode)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor | None, threshold: float,
                mode: str = "union") -> torch.Tensor:
    """NMS within each group (e.g. image or pyramid scale), never across: (N, 4), (N,), (N,) -> kept."""
    n = boxes.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    boxes = boxes[order]
    if not boxes.is_floating_point():
        boxes = boxes.float()
    groups = groups[order] if groups is not None else None
    kept: list[torch.Tensor] = []  # positions in `order`
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        alive = torch.ones(stop - start, dtype=torch.bool, device=boxes.device)
        if kept:
            previous = torch.cat(kept)
            alive &= ~_suppresses(boxes, groups, previous, start, stop, threshold, mode).any(0)
        within = _suppresses(boxes, groups, torch.arange(start, stop, device=boxes.device), start, stop,
                             threshold, mode)
        kept.append(start + _greedy(within, alive))
    return order[torch.cat(kept)]


def _suppresses(boxes, groups, rows: torch.Tensor, start: int, stop: int, threshold: float, mode: str):
    """(len(rows), stop - start) bool: box `rows[i]` would suppress box `start + j`."""
    over = overlap(boxes[rows], boxes[start:stop], mode) > threshold
    if groups is not None:
        over &= groups[rows][:, None] == groups[start:stop][None, :]
    return over


def _greedy(over: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """The greedy pass over one block, in score order: keep a live box, drop what it overlaps.

    A Python loop over NumPy rows: each step is one small vector OR, and only kept boxes cost one.
    """
    over_np, alive_np = over.cpu().numpy(), alive.cpu().numpy().copy()
    keep = []
    for i in range(len(alive_np)):
        if alive_np[i]:
            keep.append(i)
            alive_np &= ~over_np[i]
    return torch.as_tensor(keep, dtype=torch.long, device=over.device)
