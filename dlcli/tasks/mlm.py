"""Masked language modelling: BERT's pretraining on plain text, and contextual vectors (`dlcli embed`).

Data: plain text, one sentence a line, a blank line between documents (gz allowed), tokenized by
BERT's WordPiece (`vocab.type: bert_wordpiece`, dlcli/text/wordpiece.py, trained on the training
file). Every sentence is an example: sentence A, and as sentence B the next sentence of its
document half of the time (next-sentence label 0), else a random sentence of another document
(label 1; also whenever A is the last of its document). A corpus of one document draws B from its
other sentences; one of a single sentence has no B and no next-sentence label. The pair is cut,
longer sentence first, to `data.max_length` tokens with [CLS] and the [SEP]s. Segments are single
sentences: BERT packs several sentences into each segment, up to the length; that is not done here.

Masking (Devlin et al. 2019): `data.mask_prob` (15%) of each sequence's non-special tokens, at
least one, are predicted; of those 80% become [MASK], 10% a random token, 10% stay. Training draws
the pairs and the masks in `collate` from torch's random stream, which the step strategy seeds at
every step (from the trainer's step seed), so a resumed run draws the same. The loss is the masked
LM's cross-entropy (mean over the batch's masked tokens) plus the next-sentence cross-entropy.
Scoring (`dlcli evaluate`, the dev metric) draws the same way from a fixed seed, so a file is
scored on the same masks every time: mlm_accuracy, mlm_loss (nats per masked token), nsp_accuracy.

`dlcli embed` (`predict`): one vector per line, [CLS] text [SEP] through the encoder: `pool` cls
(the last layer's [CLS] state, sentence-transformers' cls pooling; not BERT's tanh pooler) or mean
(over every real position, [CLS] and [SEP] included, as sentence-transformers' mean pooling
averages over the attention mask); `normalize` to unit length; or with `tokens` every piece's
vector. Input longer than `max_length` (default: the model's positions) is cut, and the record
says so ("truncated": {"length", "kept"}, in tokens with [CLS] and [SEP]); it is never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dlcli.device import unwrapped
from dlcli.errors import DataError, RecipeError
from dlcli.recipe import bounded, choice
from dlcli.tasks import DataSection, PredictSection, Task, check_section_options
from dlcli.tasks.contextual import vector_records
from dlcli.text.batching import pad, shuffled_batches
from dlcli.text.readers import file_lines
from dlcli.text.vocabularies import from_dict

IGNORE = -100  # the label of a position that is not predicted
EVAL_SEED = 0  # pairs and masks of a scored file
EVAL_BATCH = 32
FOREIGN = {"words": "--words", "neighbors": "--neighbors", "analogy": "--analogy", "restrict": "--restrict",
           "top_k": "--top-k"}  # word-vector options of `dlcli embed`


@dataclass(frozen=True)
class MLMData(DataSection):
    format: str = choice("text", ("text",))  # one sentence a line, a blank line between documents
    max_length: int = bounded(128, ge=8)  # tokens of a training pair, [CLS] and both [SEP]s included
    mask_prob: float = bounded(0.15, gt=0, lt=1)  # share of each sequence's tokens predicted


@dataclass(frozen=True)
class MLMPredict(PredictSection):
    batch_size: int = bounded(32, ge=1)  # lines encoded together
    pool: str = choice("cls", ("cls", "mean"))  # a line's vector: the [CLS] state, or the mean of every position
    normalize: bool = False  # vectors scaled to unit length
    max_length: int | None = bounded(None, ge=3)  # tokens a line keeps, [CLS] and [SEP] included; None: the model's


@dataclass
class TextFile:
    path: Path
    data: MLMData

    def documents(self):
        """Each document's sentences: runs of non-blank lines."""
        document: list[str] = []
        for _, line in file_lines(self.path, self.data.encoding):
            line = line.strip()
            if line:
                document.append(line)
            elif document:
                yield document
                document = []
        if document:
            yield document


class Sentences:
    """A corpus as token ids: sentence s is ids[starts[s]:starts[s + 1]], in document doc[s]."""

    def __init__(self, documents: list[list[list[int]]]):
        lengths = [len(s) for d in documents for s in d]
        self.starts = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.starts[1:])
        self.ids = np.fromiter((i for d in documents for s in d for i in s), dtype=np.int32, count=int(self.starts[-1]))
        self.doc = np.repeat(np.arange(len(documents)), [len(d) for d in documents]).astype(np.int64)
        self.num_docs = len(documents)

    def __len__(self) -> int:
        return len(self.doc)

    def __getitem__(self, s: int) -> list[int]:
        return self.ids[self.starts[s]:self.starts[s + 1]].tolist()

    def follows(self, s: int) -> bool:
        """Whether sentence s has a next sentence in its document."""
        return s + 1 < len(self.doc) and self.doc[s + 1] == self.doc[s]

    def random_other(self, s: int, draw) -> int | None:
        """A sentence of another document (of the same one, not s or its next, if there is one
        document), chosen by draw(n) -> an index below n; None if there is none."""
        if self.num_docs > 1:
            first = np.searchsorted(self.doc, self.doc[s])
            last = np.searchsorted(self.doc, self.doc[s], side="right")
            k = draw(len(self.doc) - (last - first))
            return int(k if k < first else k + last - first)
        others = [t for t in range(len(self.doc)) if t not in (s, s + 1)] if len(self.doc) <= 3 else None
        if others is not None:
            return others[draw(len(others))] if others else None
        while True:
            t = draw(len(self.doc))
            if t not in (s, s + 1):
                return t


class MLMTask(Task):
    name = "mlm"
    command = "dlcli embed"
    data_section = MLMData
    predict_section = MLMPredict
    metrics = {"mlm_accuracy": True, "mlm_loss": False}
    model_positional = 1  # vocab_size

    def __init__(self, vocab, max_length: int = 128, mask_prob: float = 0.15):
        self.vocab, self.max_length, self.mask_prob = vocab, max_length, mask_prob
        self.notes: list[str] = []
        self.train: Sentences | None = None
        self.dev: Sentences | None = None
        self._special = torch.zeros(vocab.size, dtype=torch.bool)
        self._special[sorted(vocab.special_ids)] = True
        self._replacements = torch.nonzero(~self._special).flatten()  # what a random replacement draws from

    # ------------------------------------------------------------ construction

    @classmethod
    def check_recipe(cls, recipe) -> None:
        if recipe.vocab.type != "bert_wordpiece":
            raise RecipeError(f"vocab.type: the mlm task reads BERT's WordPiece, not {recipe.vocab.type!r}",
                              "use vocab type bert_wordpiece (vocab_size, min_freq, lowercase, strip_accents)")

    @classmethod
    def read(cls, path, data) -> TextFile:
        return TextFile(Path(path), data)

    @classmethod
    def from_records(cls, recipe, vocabs, train: TextFile, dev: TextFile | None, init=None) -> MLMTask:
        builder, knobs = vocabs["vocab"]
        vocab = builder((s for d in train.documents() for s in d), **knobs)
        task = cls(vocab, recipe.data.max_length, recipe.data.mask_prob)
        task.train = task.encode_file(train)
        if dev is not None:
            task.dev = task.encode_file(dev)
        task.notes.append(f"{train.path}: {len(task.train.ids):,} tokens in {len(task.train):,} sentences, "
                          f"{task.train.num_docs:,} documents; WordPiece vocabulary of {vocab.size:,}")
        return task

    def encode_file(self, file: TextFile) -> Sentences:
        documents = [self.vocab.encode_batch(d) for d in file.documents()]
        sentences = Sentences([[s for s in d if s] for d in documents if any(d)])
        if not len(sentences):
            raise DataError(f"{file.path}: holds no text", "one sentence a line, a blank line between documents")
        return sentences

    @classmethod
    def from_checkpoint(cls, content: dict) -> MLMTask:
        data = content["recipe"].get("data") or {}
        return cls(from_dict(content["vocab"]), int(data.get("max_length", 128)), float(data.get("mask_prob", 0.15)))

    def payload(self) -> dict:
        return {"vocab": self.vocab.to_dict()}

    def model_sizes(self) -> tuple:
        return (self.vocab.size,)

    def prepare_model(self, model) -> None:
        if self.max_length > model.max_length:
            raise RecipeError(f"data.max_length: {self.max_length} tokens do not fit the model's "
                              f"{model.max_length} positions", "raise model.max_position_embeddings, or lower it")

    def describe(self) -> str:
        return f"{len(self.train):,} sentences in {self.train.num_docs:,} documents, vocabulary {self.vocab.size:,}"

    # ------------------------------------------------------------ training

    @property
    def has_dev(self) -> bool:
        return self.dev is not None

    @property
    def num_train(self) -> int:
        return len(self.train)

    def train_batches(self, batch_size: int, generator) -> list[list[int]]:
        return shuffled_batches(len(self.train), batch_size, generator)

    def collate(self, indices: list[int], sentences: Sentences | None = None,
                generator: torch.Generator | None = None) -> dict:
        """Pairs for sentences `indices` (A; B drawn), masked: ids, mask, segments (B, T), labels (B, T)
        (IGNORE where not predicted), next (B,) (IGNORE without a B)."""
        sentences = sentences or self.train

        def draw(n: int) -> int:
            return int(torch.randint(n, (1,), generator=generator))

        seqs, segs, nexts = [], [], []
        for s in indices:
            b, label = None, IGNORE
            if sentences.follows(s) and float(torch.rand(1, generator=generator)) < 0.5:
                b, label = s + 1, 0
            else:
                b = sentences.random_other(s, draw)
                label = IGNORE if b is None else 1
            ids, segments = self._pair(sentences[s], None if b is None else sentences[b])
            seqs.append(ids)
            segs.append(segments)
            nexts.append(label)
        ids, mask = pad(seqs, self.vocab.pad_id)
        segments, _ = pad(segs, 0)
        ids, labels = self._mask(ids, mask, generator)
        return {"ids": ids, "mask": mask, "segments": segments, "labels": labels,
                "next": torch.tensor(nexts, dtype=torch.long)}

    def _pair(self, a: list[int], b: list[int] | None) -> tuple[list[int], list[int]]:
        if b is None:
            ids = self.vocab.wrap(a[:self.max_length - 2])
            return ids, [0] * len(ids)
        room = self.max_length - 3
        while len(a) + len(b) > room:  # cut the longer one's end
            if len(a) >= len(b):
                a = a[:-1]
            else:
                b = b[:-1]
        return self.vocab.wrap_pair(a, b)

    def _mask(self, ids: torch.Tensor, mask: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids with the chosen positions replaced 80/10/10, labels: the original ids there, IGNORE elsewhere)."""
        candidates = mask & ~self._special[ids]
        count = (candidates.sum(1).float() * self.mask_prob).round().clamp(min=1)  # (B,)
        scores = torch.rand(ids.shape, generator=generator).masked_fill(~candidates, 2.0)
        rank = scores.argsort(1).argsort(1)
        chosen = (rank < count[:, None]) & candidates
        labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
        roll = torch.rand(ids.shape, generator=generator)
        replaced = ids.clone()
        replaced[chosen & (roll < 0.8)] = self.vocab.mask_id
        randomised = chosen & (roll >= 0.8) & (roll < 0.9)
        picks = torch.randint(len(self._replacements), ids.shape, generator=generator)
        replaced[randomised] = self._replacements[picks[randomised]]
        return replaced, labels

    def loss(self, model, batch: dict):
        out = model(batch["ids"], batch["mask"], batch["segments"], masked=batch["labels"] != IGNORE)
        mlm = F.cross_entropy(out.mlm_logits.float(), batch["labels"][batch["labels"] != IGNORE])
        if bool((batch["next"] != IGNORE).any()):
            return mlm + F.cross_entropy(out.nsp_logits.float(), batch["next"], ignore_index=IGNORE)
        return mlm + 0.0 * out.nsp_logits.sum()  # every weight takes part, for a distributed wrapper

    # ------------------------------------------------------------ scoring

    @torch.inference_mode()
    def evaluate(self, model, records: TextFile | None = None, options: dict | None = None) -> dict:
        """mlm_accuracy and mlm_loss over the masked tokens, nsp_accuracy over the pairs, on the dev
        split or a file, with pairs and masks drawn from a fixed seed."""
        sentences = self.dev if records is None else self.encode_file(records)
        net = unwrapped(model)
        device = next(net.parameters()).device
        generator = torch.Generator().manual_seed(EVAL_SEED)
        loss, right, masked, nsp_right, pairs = 0.0, 0, 0, 0, 0
        for start in range(0, len(sentences), EVAL_BATCH):
            batch = self.collate(list(range(start, min(start + EVAL_BATCH, len(sentences)))), sentences, generator)
            batch = {k: v.to(device) for k, v in batch.items()}
            targets = batch["labels"][batch["labels"] != IGNORE]
            out = net(batch["ids"], batch["mask"], batch["segments"], masked=batch["labels"] != IGNORE)
            loss += float(F.cross_entropy(out.mlm_logits.float(), targets, reduction="sum"))
            right += int((out.mlm_logits.argmax(-1) == targets).sum())
            masked += len(targets)
            has_pair = batch["next"] != IGNORE
            nsp_right += int((out.nsp_logits.argmax(-1) == batch["next"])[has_pair].sum())
            pairs += int(has_pair.sum())
        result = {"mlm_accuracy": right / masked, "mlm_loss": loss / masked, "n_masked": masked,
                  "n_sequences": len(sentences)}
        if pairs:
            result["nsp_accuracy"] = nsp_right / pairs
        return result

    # ------------------------------------------------------------ prediction

    def check_options(self, options: dict) -> None:
        given = [flag for key, flag in FOREIGN.items() if options.get(key) not in (None, False)]
        if given:
            raise RecipeError(f"{given[0]} works on word vectors; this is an encoder (task {self.name}), whose "
                              "vectors depend on the sentence",
                              "its options: --pool cls|mean, --normalize, --tokens, --max-length")
        if options.get("layer") is not None:
            raise RecipeError("--layer picks one of an elmo model's layers; a bert model gives its last layer's "
                              "vectors", "leave --layer out")
        check_section_options(MLMPredict, options)

    @torch.inference_mode()
    def predict(self, model, ids: list, texts: list[str], options: dict) -> list[dict]:
        """Records {"id", "text", "vector"}, or with `tokens` {"id", "text", "tokens", "vectors"}
        ([CLS] and [SEP] included); "truncated" {"length", "kept"} when a line was cut."""
        limit = min(int(options.get("max_length") or model.max_length), model.max_length)
        size = max(1, int(options.get("batch_size") or 32))
        pieces = self.vocab.encode_batch(texts)
        records: list[dict | None] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(pieces[i]))  # similar lengths pad little
        for start in range(0, len(order), size):
            rows = order[start:start + size]
            for row, record in zip(rows, self._encode_rows(model, [pieces[i] for i in rows], limit, options)):
                cut = len(pieces[row]) + 2
                records[row] = {"id": ids[row], "text": texts[row], **record}
                if cut > limit:
                    records[row]["truncated"] = {"length": cut, "kept": limit}
        return records

    def _encode_rows(self, model, pieces: list[list[int]], limit: int, options: dict) -> list[dict]:
        device = next(model.parameters()).device
        ids, mask = pad([self.vocab.wrap(p[:limit - 2]) for p in pieces], self.vocab.pad_id)
        hidden = model(ids.to(device), mask.to(device)).float()  # (B, T, D)
        names = [[self.vocab.token_name(i) for i in row[real].tolist()] for row, real in zip(ids, mask)] \
            if options.get("tokens") else None
        return vector_records(hidden, mask.to(device), names, options)
