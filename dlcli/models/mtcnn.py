"""MTCNN face detector: three cascaded CNNs propose, refine and output face boxes with 5 landmarks.

Zhang, Zhang, Li and Qiao (2016), "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks". Layer shapes are those of the original (Caffe) weights, so converting them
(dlcli/convert/mtcnn.py) is a renaming plus one reordering of the dense layers' inputs: here the
dense layers read the conv output flattened in torch's own (C, H, W) order.

Inside the cascade, boxes follow the original code's convention, inclusive 1-based pixels (x1..x2
spans x2 - x1 + 1 pixels), since the weights' box regression was trained on it. `detect` reports
0-based boxes with exclusive x2/y2: the face's pixels are image[y1:y2, x1:x2].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dlcli.nn.boxes import batched_nms
from dlcli.vision.images import crop_resize, integral_images, level_size, resize_area, scales

STRIDE, CELL = 2, 12  # P-Net's map: one cell per 12x12 window, every 2 pixels
CROP_CHUNK = 1024  # R-/O-Net crops per forward pass, so memory stays flat on crowded images
BATCH_PIXELS = 16_000_000  # at most this many pixels per batch (the integral images take 24 bytes a pixel)


class PNet(nn.Module):
    """Proposal net, fully convolutional: a 12x12 window gives one cell of its (B, *, h, w) maps."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.score = nn.Conv2d(32, 2, 1)
        self.box = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = max_pool_2x2(self.prelu1(self.conv1(x)))  # (B, 10, ceil((H-2)/2), ceil((W-2)/2))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))  # (B, 32, h, w)
        return self.score(x), self.box(x)  # (B, 2, h, w) face logits, (B, 4, h, w) box offsets


class RNet(nn.Module):
    """Refinement net on 24x24 crops."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.score = nn.Linear(128, 2)
        self.box = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))  # (B, 28, 11, 11)
        x = self.pool2(self.prelu2(self.conv2(x)))  # (B, 48, 4, 4)
        x = self.prelu3(self.conv3(x)).flatten(1)  # (B, 64 * 3 * 3)
        x = self.prelu4(self.dense4(x))  # (B, 128)
        return self.score(x), self.box(x)  # (B, 2), (B, 4)


class ONet(nn.Module):
    """Output net on 48x48 crops: face score, box offsets and five landmarks (x1..x5, y1..y5)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.score = nn.Linear(256, 2)
        self.box = nn.Linear(256, 4)
        self.landmarks = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))  # (B, 32, 23, 23)
        x = self.pool2(self.prelu2(self.conv2(x)))  # (B, 64, 10, 10)
        x = self.pool3(self.prelu3(self.conv3(x)))  # (B, 64, 4, 4)
        x = self.prelu4(self.conv4(x)).flatten(1)  # (B, 128 * 3 * 3)
        x = self.prelu5(self.dense5(x))  # (B, 256)
        return self.score(x), self.box(x), self.landmarks(x)  # (B, 2), (B, 4), (B, 10)


@dataclass
class Candidates:
    """Face candidates of a batch of same-size images: N boxes with their scores and images."""

    boxes: torch.Tensor  # (N, 4) inclusive 1-based x1, y1, x2, y2
    scores: torch.Tensor  # (N,)
    image: torch.Tensor  # (N,) index in the batch
    offsets: torch.Tensor | None = None  # (N, 4) the last net's box regression
    landmarks: torch.Tensor | None = None  # (N, 5, 2) 0-based x, y

    def __len__(self) -> int:
        return self.boxes.shape[0]

    def select(self, index: torch.Tensor) -> Candidates:
        def pick(t):
            return None if t is None else t[index]

        return Candidates(self.boxes[index], self.scores[index], self.image[index], pick(self.offsets),
                          pick(self.landmarks))

    @staticmethod
    def cat(parts: list[Candidates]) -> Candidates:
        return Candidates(*(torch.cat([getattr(p, f) for p in parts]) for f in ("boxes", "scores", "image",
                                                                                  "offsets")))


class MTCNN(nn.Module):
    """The three nets and the cascade that runs them."""

    def __init__(self):
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()

    @torch.no_grad()
    def detect(self, images: list[torch.Tensor], min_face: float = 20, thresholds=(0.6, 0.7, 0.7),
               factor: float = 0.709, nms=(0.5, 0.7, 0.7, 0.7), batch_size: int = 8,
               border: str = "pad", stages: int = 3) -> list[list[dict]]:
        """Faces in RGB uint8 images (H, W, 3): per image a list of {"box", "score", "landmarks"},
        best first. Images of the same size go through the nets together, `batch_size` at a time
        (fewer for large images).

        nms: overlap thresholds for P-Net within a scale, P-Net across scales, R-Net, and O-Net
        (the last one over the smaller box's area, as the original code does).
        border: how R-Net and O-Net see a box that crosses the image border: "pad" (the original:
        the part outside reads as black) or "stretch" (facenet-pytorch: the part inside, stretched
        to the square input).
        stages: run only the first 1 or 2 nets (a detector still in training, or mining samples for
        the next net); their boxes come calibrated, not squared, and without landmarks.
        """
        if border not in ("pad", "stretch"):
            raise ValueError(f"border must be 'pad' or 'stretch', not {border!r}")
        results: list[list[dict]] = [[] for _ in images]
        by_size: dict[tuple, list[int]] = {}
        for i, image in enumerate(images):
            by_size.setdefault(tuple(image.shape), []).append(i)
        for (height, width, _), positions in by_size.items():
            step = max(1, min(batch_size, BATCH_PIXELS // (height * width)))
            for start in range(0, len(positions), step):
                chunk = positions[start:start + step]
                batch = torch.stack([images[i] for i in chunk])
                found = self._cascade(batch, min_face, thresholds, factor, nms, border, stages)
                for i, faces in zip(chunk, found):
                    results[i] = faces
        return results

    def _cascade(self, batch: torch.Tensor, min_face, thresholds, factor, nms, border, stages) -> list[list[dict]]:
        device = next(self.parameters()).device
        pixels = batch.to(device).permute(0, 3, 1, 2).float()  # (B, 3, H, W) in 0..255
        found = self._propose(pixels, min_face, factor, thresholds[0], nms[0], nms[1], square=stages > 1)
        if stages > 1:
            integral = integral_images(pixels)
            found = self._refine(integral, found, thresholds[1], nms[2], border, square=stages > 2)
            if stages > 2:
                found = self._output(integral, found, thresholds[2], nms[3], border)
        return _records(found, len(batch))

    def _propose(self, pixels, min_face, factor, threshold, nms_scale, nms_all, square=True) -> Candidates:
        """Stage 1: P-Net over the pyramid; NMS per scale, then across scales; calibrate; square."""
        _, _, height, width = pixels.shape
        per_scale = []
        for scale in scales(width, height, min_face, factor):
            level = normalise(resize_area(pixels, level_size(height, width, scale)))
            logits, offsets = self.pnet(level)
            found = _cells(logits, offsets, scale, threshold)
            per_scale.append(found.select(_nms(found, nms_scale)))
        if not per_scale:
            return _empty(pixels.device)
        found = Candidates.cat(per_scale)
        found = found.select(_nms(found, nms_all))
        boxes = _calibrate(found.boxes, found.offsets, 0)
        return Candidates(_square(boxes) if square else boxes, found.scores, found.image)

    def _refine(self, integral, found: Candidates, threshold, nms_threshold, border, square=True) -> Candidates:
        """Stage 2: R-Net on 24x24 crops; keep confident ones; NMS; calibrate; square."""
        found, crops = _crops(integral, found, 24, border)
        logits, offsets = _chunked(self.rnet, crops)
        scores = logits.softmax(1)[:, 1]
        keep = scores > threshold
        found = Candidates(found.boxes[keep], scores[keep], found.image[keep], offsets[keep])
        found = found.select(_nms(found, nms_threshold))
        boxes = _calibrate(found.boxes, found.offsets, 1)
        return Candidates(_square(boxes) if square else boxes, found.scores, found.image)

    def _output(self, integral, found: Candidates, threshold, nms_threshold, border) -> Candidates:
        """Stage 3: O-Net on 48x48 crops; landmarks; calibrate; NMS over the smaller area."""
        found, crops = _crops(integral, found, 48, border)
        logits, offsets, points = _chunked(self.onet, crops)
        scores = logits.softmax(1)[:, 1]
        keep = scores > threshold
        boxes = found.boxes[keep]
        size = boxes[:, 2:] - boxes[:, :2] + 1  # (N, 2) crop width, height
        # landmarks are fractions of the crop: (x1..x5, y1..y5) -> 0-based (N, 5, 2)
        points = points[keep].view(-1, 2, 5).transpose(1, 2) * size[:, None, :] + boxes[:, None, :2] - 1
        found = Candidates(_calibrate(boxes, offsets[keep], 1), scores[keep], found.image[keep], None, points)
        return found.select(_nms(found, nms_threshold, "min"))


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """nn.MaxPool2d(2, 2, ceil_mode=True) as the max of four strided views: on the large maps of
    the pyramid's first levels this is several times faster than torch's CPU max_pool2d."""
    x = F.pad(x, (0, x.shape[3] % 2, 0, x.shape[2] % 2), value=float("-inf"))
    return torch.maximum(torch.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2]),
                         torch.maximum(x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]))


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    """0..255 -> about -1..1, as the original weights expect."""
    return (pixels - 127.5) * 0.0078125


def _empty(device) -> Candidates:
    return Candidates(torch.zeros(0, 4, device=device), torch.zeros(0, device=device),
                      torch.zeros(0, dtype=torch.long, device=device), torch.zeros(0, 4, device=device))


def _cells(logits: torch.Tensor, offsets: torch.Tensor, scale: float, threshold: float) -> Candidates:
    """P-Net cells scoring >= threshold as boxes in image pixels."""
    probs = logits.softmax(1)[:, 1]  # (B, h, w)
    image, row, col = (probs >= threshold).nonzero(as_tuple=True)
    cell = torch.stack([col, row], 1).to(probs.dtype)  # (N, 2) x, y
    top_left = ((STRIDE * cell + 1) / scale).floor()
    bottom_right = ((STRIDE * cell + CELL) / scale).floor()
    return Candidates(torch.cat([top_left, bottom_right], 1), probs[image, row, col], image,
                      offsets[image, :, row, col])


def _nms(found: Candidates, threshold: float, mode: str = "union") -> torch.Tensor:
    """Per-image NMS. Areas as facenet-pytorch computes them, whose boxes dlcli reproduces: P-Net's
    and R-Net's NMS use torchvision's (x2 - x1) * (y2 - y1), the final "min" NMS the original's
    inclusive-pixel (x2 - x1 + 1) * (y2 - y1 + 1)."""
    boxes = found.boxes + found.boxes.new_tensor([0, 0, 1, 1]) if mode == "min" else found.boxes
    return batched_nms(boxes, found.scores, found.image, threshold, mode)


def _calibrate(boxes: torch.Tensor, offsets: torch.Tensor, extra: int) -> torch.Tensor:
    """Shift each edge by its offset times the box size (P-Net's size: x2 - x1; the others' + 1)."""
    size = (boxes[:, 2:] - boxes[:, :2] + extra).repeat(1, 2)  # (N, 4) w, h, w, h
    return boxes + offsets * size


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """The square with the box's centre and longer side."""
    size = boxes[:, 2:] - boxes[:, :2]  # (N, 2) w, h
    side = size.max(1, keepdim=True).values
    top_left = boxes[:, :2] + size * 0.5 - side * 0.5
    return torch.cat([top_left, top_left + side], 1)


def _crops(integral: torch.Tensor, found: Candidates, size: int, border: str) -> tuple[Candidates, torch.Tensor]:
    """Normalised size x size crops of the candidates' truncated boxes; boxes under a pixel wide
    (after clipping to the image, for border="stretch") are dropped."""
    corners = found.boxes.trunc()
    edges = torch.cat([corners[:, :2] - 1, corners[:, 2:]], 1)  # 0-based, exclusive ends
    if border == "stretch":
        _, rows, cols, _ = integral.shape
        edges = torch.maximum(torch.minimum(edges, edges.new_tensor([cols - 1, rows - 1] * 2)), edges.new_zeros(4))
    wide = (edges[:, 2:] > edges[:, :2]).all(1)
    found, edges = found.select(wide), edges[wide]
    return found, normalise(crop_resize(integral, found.image, edges, size))


def _chunked(net: nn.Module, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
    # channels-last: torch's CPU max pooling (3x3, stride 2) runs several times faster on it
    crops = crops.contiguous(memory_format=torch.channels_last)
    outputs = [net(crops[i:i + CROP_CHUNK]) for i in range(0, len(crops), CROP_CHUNK)]
    if not outputs:
        return tuple(t[:0] for t in net(crops.new_zeros(1, *crops.shape[1:])))
    return tuple(torch.cat(parts) for parts in zip(*outputs))


def _records(found: Candidates, n_images: int) -> list[list[dict]]:
    """Per image, its faces as plain floats: 0-based boxes with exclusive x2/y2."""
    faces: list[list[dict]] = [[] for _ in range(n_images)]
    boxes = found.boxes - found.boxes.new_tensor([1, 1, 0, 0])
    marks = found.landmarks.tolist() if found.landmarks is not None else [[]] * len(found)
    for box, score, image, points in zip(boxes.tolist(), found.scores.tolist(), found.image.tolist(), marks):
        faces[image].append({"box": box, "score": score, "landmarks": points})
    return faces
