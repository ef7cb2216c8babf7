"""TextCNN: convolutions of several widths over word embeddings with max-over-time pooling.

Kim, "Convolutional Neural Networks for Sentence Classification", EMNLP 2014.

`embedding_mode` picks the paper's variants: rand (embeddings learned from scratch), static
(pretrained vectors, `data.vectors`, kept fixed), non_static (pretrained, fine-tuned) and
multichannel (two tables both starting from the vectors, one fixed, one fine-tuned; "each filter
is applied to both channels and the results are added", so the filters are shared and, the
convolution being linear, run once over the sum of the two channels' embeddings).

Letters: B batch, T tokens, T' edge-padded tokens, V vocabulary, E embedding width, F filters, C labels.
"""

from __future__ import annotations

import torch
from torch import nn

from dlcli.models.classifier import ClassifierDefaults

EMBEDDING_MODES = ("rand", "static", "non_static", "multichannel")

# Largest vocabulary x (sum of kernel widths x filters) table cached for inference: 128 MB in fp32.
TABLE_LIMIT = 32 * 2**20


class TextCNN(ClassifierDefaults, nn.Module):
    def __init__(
        self, vocab_size: int, num_labels: int, pad_id: int, *,
        embedding_dim: int = 300, kernel_sizes: list[int] = (3, 4, 5), num_filters: int = 100,
        dropout: float = 0.5, max_norm: float | None = 3.0, init_scale: float = 0.25,
        edge_padding: bool = True, embedding_mode: str = "rand",
    ):
        super().__init__()
        if embedding_mode not in EMBEDDING_MODES:
            raise ValueError(f"embedding_mode must be one of {', '.join(EMBEDDING_MODES)}, not {embedding_mode!r}")
        self.embedding_mode = embedding_mode  # a mode other than rand needs data.vectors (ClassifyTask.check_recipe)
        self.kernel_sizes = list(kernel_sizes)
        self.max_norm = max_norm
        # Kim pads k-1 zeros on both sides ("wide" convolution): every word is seen at every
        # offset of every window, which matters for short texts (MPQA phrases, TREC questions).
        self.edge_padding = edge_padding
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        nn.init.uniform_(self.embedding.weight, -init_scale, init_scale)  # Kim's CNN-rand init
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        # Kim's random rows for words the vectors file lacks are frozen along with the rest (static)
        self.embedding.weight.requires_grad_(embedding_mode != "static")
        self.static_embedding = None  # multichannel's fixed channel; the trained one is `embedding`
        if embedding_mode == "multichannel":
            self.static_embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
            self.static_embedding.weight.requires_grad_(False)
            self._copy_to_static()
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, num_filters, k) for k in self.kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(num_filters * len(self.kernel_sizes), num_labels)
        self._table: torch.Tensor | None = None  # inference cache, see _inference_table; not in state_dict
        self._table_key: tuple | None = None

    @property
    def min_length(self) -> int:
        return 1 if self.edge_padding else max(self.kernel_sizes)

    @torch.no_grad()
    def after_init_vectors(self) -> None:
        """Called once `embedding` holds the pretrained vectors: multichannel's fixed channel starts
        from the same table (the vectors, and the same random rows for words the file lacks)."""
        self._copy_to_static()

    @torch.no_grad()
    def _copy_to_static(self) -> None:
        if self.static_embedding is not None:
            self.static_embedding.weight.copy_(self.embedding.weight)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lead = max(self.kernel_sizes) - 1 if self.edge_padding else 0
        tail = lead if self.edge_padding else max(0, self.min_length - ids.size(1))
        table = self._inference_table()
        if table is None:
            sums = self._window_sums(ids, lead, tail)
        else:
            ids = nn.functional.pad(ids, (lead, tail), value=self.embedding.padding_idx)  # (B, T')
            sums = self._window_sums_from_table(ids, table)
        lengths = mask.sum(1, keepdim=True)  # (B, 1)
        pooled = []
        for k, conv, h in zip(self.kernel_sizes, self.convs, sums):  # h: (B, T'-k+1, F), no bias
            # in place is safe: no backward formula of the ops that made h needs h itself
            h = h.masked_fill_(~self._windows(h.size(1), k, lead, lengths).unsqueeze(2), float("-inf"))
            # max-pool, then bias and ReLU: both commute with the max, and cost less after it
            pooled.append(torch.relu(h.amax(1) + conv.bias))  # (B, F)
        return self.output(self.dropout(torch.cat(pooled, 1)))  # (B, C)

    def _stacked_weight(self) -> torch.Tensor:
        """(E, sum(k) * F): column block (k, j) holds the weights kernel k applies at offset j."""
        return torch.cat([c.weight.permute(1, 2, 0).reshape(c.in_channels, -1) for c in self.convs], 1)

    def _window_sums(self, ids: torch.Tensor, lead: int, tail: int) -> list[torch.Tensor]:
        """Training path: all convolutions as ONE matrix product, then sums of shifted slices.

        One large GEMM runs much faster on CPU than several thin convolutions. The edge padding
        (zero embeddings) is added to the product, so the GEMM spends nothing on it.
        """
        x = self.embedding(ids)  # (B, T, E)
        if self.static_embedding is not None:
            x = x + self.static_embedding(ids)  # shared filters: conv(a) + conv(b) = conv(a + b)
        y = x @ self._stacked_weight()  # (B, T, sum(k) * F)
        y = nn.functional.pad(y, (0, 0, lead, tail))  # (B, T', sum(k) * F)
        sums, offset = [], 0
        for k, conv in zip(self.kernel_sizes, self.convs):
            F, steps = conv.out_channels, y.size(1) - k + 1
            h = y[:, 0:steps, offset:offset + F]
            for j in range(1, k):
                h = h + y[:, j:j + steps, offset + j * F:offset + (j + 1) * F]  # (B, T'-k+1, F)
            sums.append(h)
            offset += k * F
        return sums

    def _inference_table(self) -> torch.Tensor | None:
        """At inference a window's sum depends on its tokens alone: precompute every token's
        product with every kernel offset once, (V * sum(k), F), and only look rows up."""
        weight_cols = sum(self.kernel_sizes) * self.convs[0].out_channels
        if self.training or torch.is_grad_enabled() or self.embedding.num_embeddings * weight_cols > TABLE_LIMIT:
            return None
        tables = [self.embedding.weight] + ([self.static_embedding.weight] if self.static_embedding is not None else [])
        key = tuple((p.data_ptr(), p._version) for p in (*tables, *self.convs.parameters()))
        if self._table_key != key:
            product = sum(tables) @ self._stacked_weight()  # (V, sum(k) * F); pad row zero
            self._table = product.reshape(-1, self.convs[0].out_channels)  # row v * sum(k) + (k, j)
            self._table_key = key
        return self._table

    def _window_sums_from_table(self, ids: torch.Tensor, table: torch.Tensor) -> list[torch.Tensor]:
        blocks, sums, offset = sum(self.kernel_sizes), [], 0
        for k in self.kernel_sizes:
            windows = ids.unfold(1, k, 1)  # (B, T'-k+1, k)
            rows = windows * blocks + torch.arange(offset, offset + k, device=ids.device)
            h = nn.functional.embedding_bag(rows.reshape(-1, k), table, mode="sum")  # (B * (T'-k+1), F)
            sums.append(h.view(ids.size(0), -1, table.size(1)))
            offset += k
        return sums

    def _windows(self, steps: int, k: int, lead: int, lengths: torch.Tensor) -> torch.Tensor:
        """(B, steps) True where a width-k window holds some of the text and no batch padding.

        Masking makes a prediction independent of the batch's width. Without edge padding a text
        shorter than k keeps its first window.
        """
        start = torch.arange(steps, device=lengths.device) - lead  # window start in text positions
        if self.edge_padding:
            return (start >= 1 - k) & (start < lengths)
        return start < (lengths - k + 1).clamp(min=1)

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """Kim's l2 constraint: rescale each class's weight vector to norm <= max_norm."""
        if self.max_norm:
            w = self.output.weight
            w.mul_((self.max_norm / w.norm(dim=1, keepdim=True).clamp(min=1e-12)).clamp(max=1.0))
