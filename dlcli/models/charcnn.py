"""Character-level CNN: six temporal convolutions with max-pooling, then three fully connected layers.

Zhang, Zhao & LeCun, "Character-level Convolutional Networks for Text Classification", NIPS 2015
(the "small" model: 256 filters, 1024 units). Differences from the paper, and why:
- characters are embedded (`embedding_dim`, default 16) instead of one-hot coded over a fixed
  70-letter alphabet: the vocabulary comes from the data (`vocab: {type: char}`), and a learned
  16-wide table costs less than a vocabulary-wide one-hot input;
- texts are not cut or padded to 1014 characters; each text is read in a frame of
  max(length, min_length) positions and the last feature map is max-pooled over time instead
  of flattened, so any length works (`data.max_length` still cuts texts if asked);
- He initialisation (Kaiming normal, fan-in) instead of the paper's fixed N(0, 0.05): for the
  small model's 3 x 256 fan-in it is the same scale (std 0.051), and it keeps the signal alive
  through the six ReLU layers at other widths too (PyTorch's default shrinks it at every layer);
  the output layer alone starts small, N(0, 0.01), so the first loss is about ln C (uniform
  guesses) rather than a confident wrong answer;
- optional batch normalisation after each convolution, before its ReLU (`norm`; off by default,
  as in the paper): without it the six-layer stack stayed at chance level on a few thousand
  sentences (SST-2, TREC) in our runs, with Adam or with SGD and momentum. `norm: batch` is
  plain batch normalisation; `norm: batch_renorm` is batch renormalisation (Ioffe 2017), which
  trains on the outputs eval mode will give: the task batches texts of similar length together,
  so plain batch statistics move from batch to batch with length, and eval mode (running
  statistics over all lengths) then scored far worse than training did. Batch statistics count
  only the positions that see some text, and positions that see only padding stay zero (masked,
  not computed), so padding still never matters; in eval mode each text's output is
  independent of its batch.
- the paper reads a space (not in its alphabet) as an all-zero position, which still marks where
  words end; the `char` vocabulary drops whitespace altogether unless `keep_spaces: true`, which
  makes each run of it one token (the shipped recipes use it).
- optional wide, shallow stack (`widths`, e.g. [3, 5, 7, 9]; off by default): instead of
  the six layers, one convolution per width over the characters, each max-pooled over the whole
  text (Kim 2014's sentence CNN read over characters), then the same fully connected layers.
  Each window is "wide" (the text is edge-padded with width - 1 zeros) so a text of any length
  works and min_length is 1. On a few thousand sentences it trains far better than the deep
  stack, and without normalisation (dev SST-2 0.75-0.77 against 0.64, TREC 0.82-0.85 against
  0.76 in our runs, three seeds).

Letters: B batch, T positions, E embedding width, F filters, U fully connected units, C labels.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from dlcli.models.classifier import ClassifierDefaults
from dlcli.nn.masked_batchnorm import MaskedBatchNorm1d
from dlcli.nn.pooling import masked_max

# (kernel width, max-pool after it?) for the six convolutions; pools are width 3, stride 3
LAYERS = ((7, True), (7, True), (3, False), (3, False), (3, False), (3, True))
POOL = 3


def min_frame() -> int:
    """The shortest input the stack maps to at least one position: walk the layers backwards."""
    length = 1
    for kernel, pooled in reversed(LAYERS):
        length = length * POOL if pooled else length
        length += kernel - 1
    return length  # 123 for the paper's stack


class CharCNN(ClassifierDefaults, nn.Module):
    def __init__(
        self, vocab_size: int, num_labels: int, pad_id: int, *,
        embedding_dim: int = 16, num_filters: int = 256, fc_size: int = 1024, dropout: float = 0.5,
        norm: str | None = None, widths: list[int] | None = None,
    ):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be batch or batch_renorm (or left out), not {norm!r}")
        if widths is not None and (not widths or min(widths) < 1):
            raise ValueError(f"widths must be a non-empty list of widths >= 1, not {widths!r}")
        self.widths = list(widths) if widths is not None else None
        # the frame a text is read in; the task also pads batches to it, which costs forward nothing
        self.min_length = min_frame() if self.widths is None else 1
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        if self.widths is None:
            channels = [embedding_dim] + [num_filters] * len(LAYERS)
            self.convs = nn.ModuleList(nn.Conv1d(channels[i], channels[i + 1], k) for i, (k, _) in enumerate(LAYERS))
        else:
            self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, num_filters, k) for k in self.widths)
        self.norms = nn.ModuleList(NORMS[norm](num_filters) for _ in self.convs) if norm else None
        self.pool = nn.MaxPool1d(POOL, POOL)
        features = num_filters * len(self.convs) if self.widths is not None else num_filters
        self.fc = nn.Sequential(
            nn.Linear(features, fc_size), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(fc_size, fc_size), nn.ReLU(), nn.Dropout(dropout),
        )
        self.output = nn.Linear(fc_size, num_labels)
        for layer in [*self.convs, self.fc[0], self.fc[3]]:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        nn.init.normal_(self.output.weight, std=0.01)
        nn.init.zeros_(self.output.bias)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Each text is computed exactly as if alone in a batch padded to its frame,
        max(length, min_length): the paper's fixed-length input, generalised. Two rules do it:

        - a position that sees only padding is zero at every layer, as the padding is (zero
          embedding row), so it adds nothing (after ReLU a zero never wins a max); hence a frame's
          padded tail need not be computed: each layer's input is cut to the widest text in the
          batch and zero-padded, and a short text costs its own length, not min_length;
        - positions beyond a text's own frame, which exist only next to a longer text, are zeroed
          before any layer reads them (a window at a position inside the frame reads only inputs
          inside it), and left out of the final max.

        With `norm`, a position that sees only padding is zeroed rather than computed (a norm's
        shift would make it nonzero), and in training the batch's statistics, over positions that
        see text, tie the texts of a batch together; in eval mode each text is again on its own.
        """
        h = self.embedding(ids).transpose(1, 2)  # (B, E, T)
        if self.widths is not None:
            return self._wide(h, mask.sum(1))
        # lengths: positions that see some of the text (a convolution window overlaps the text iff it
        # starts in it, so only pooling changes them); frame: positions the text alone would have
        lengths = mask.sum(1)  # (B,)
        frame = lengths.clamp(min=self.min_length)  # (B,)
        for i, (conv, (kernel, pooled)) in enumerate(zip(self.convs, LAYERS)):
            valid = torch.minimum(lengths, frame)
            h = conv(keep(h, valid, widest(valid) + kernel - 1))  # (B, F, T')
            frame = frame - (kernel - 1)
            if self.norms is not None:
                seen = torch.arange(h.size(2), device=h.device) < torch.minimum(lengths, frame).unsqueeze(1)
                h = self.norms[i](h, seen)  # statistics over the positions that see text
            h = torch.relu(h)
            if pooled:
                valid = torch.minimum(lengths, frame)
                lengths, frame = (lengths + POOL - 1) // POOL, frame // POOL
                h = self.pool(keep(h, valid, POOL * widest(torch.minimum(lengths, frame))))  # (B, F, T'/3)
        valid = torch.arange(h.size(2), device=h.device) < torch.minimum(lengths, frame).unsqueeze(1)
        return self.output(self.fc(masked_max(h.transpose(1, 2), valid)))  # (B, C)

    def _wide(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The wide stack: per width k, the text edge-padded with k - 1 zeros on both sides, the
        windows that overlap it (start in [1 - k, length)) max-pooled; batch padding reads as the
        edge's zeros, so a text's output is independent of its batch (in eval mode, with `norm`)."""
        pooled = []
        for i, (conv, k) in enumerate(zip(self.convs, self.widths)):
            out = conv(F.pad(h, (k - 1, k - 1)))  # (B, F, T + k - 1)
            seen = torch.arange(out.size(2), device=h.device) < (lengths + k - 1).unsqueeze(1)  # (B, T + k - 1)
            if self.norms is not None:
                out = self.norms[i](out, seen)
            pooled.append(masked_max(torch.relu(out).transpose(1, 2), seen & (lengths > 0).unsqueeze(1)))
        return self.output(self.fc(torch.cat(pooled, 1)))  # (B, C)


NORMS = {None: None, "batch": MaskedBatchNorm1d, "batch_renorm": partial(MaskedBatchNorm1d, renorm=True)}


def keep(h: torch.Tensor, valid: torch.Tensor, width: int) -> torch.Tensor:
    """h (B, F, T) with each row's positions from valid (B,) on zeroed, cut or zero-padded to width."""
    h = F.pad(h[..., :width], (0, max(0, width - h.size(2))))  # (B, F, width)
    return h * (torch.arange(width, device=h.device) < valid.unsqueeze(1)).unsqueeze(1)


def widest(valid: torch.Tensor) -> int:
    return max(int(valid.max()), 1) if valid.numel() else 1  # an empty text still needs one position
