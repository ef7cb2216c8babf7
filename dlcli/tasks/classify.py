"""Text classification: labelled records -> batches -> loss, predictions and metrics.

Single-label models train with softmax cross-entropy; multi-label ones (`data.multi_label`, or
several labels on a line) with one sigmoid per label, thresholded at prediction time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dlcli.device import unwrapped
from dlcli.errors import DataError, RecipeError
from dlcli.metrics import classification_report, multilabel_report
from dlcli.models.classifier import ClassifierDefaults
from dlcli.recipe import bounded, choice
from dlcli.tasks import PredictSection, Task, elmo_features, unseen_labels_note
from dlcli.tasks.classify_output import check_classify_options, explained, model_texts, note_cuts, prediction_records
from dlcli.tasks.held_out import HeldOutData, dev_source
from dlcli.tasks.pretrained import (
    PretrainedData,
    init_vocab,
    layer_groups,
    pretrained_kwargs,
    start_model,
    with_init_vocab,
)
from dlcli.tasks.word_vectors import WordVectorsData, extended, init_word_vectors
from dlcli.text import vocabularies
from dlcli.text.batching import bucket_batches, concatenate, pad, shuffled_batches, split_pieces, token_capped
from dlcli.text.readers import Record, read_labelled
from dlcli.text.tokenize import MODES

EVAL_BATCH = 256
# Ids scored at once by a model that reads a sequence (all but bag models): a longer text is scored
# in pieces whose probabilities are averaged, so memory stays flat however long a line is.
MAX_PIECE = 2048
MAX_BATCH_TOKENS = 32_768  # ids (padding included) per forward pass when scoring
FORMATS = ("tsv", "csv", "jsonl", "fasttext")


@dataclass(frozen=True)
class ClassifyData(WordVectorsData, PretrainedData, elmo_features.ElmoData, HeldOutData):
    format: str = choice("tsv", FORMATS)
    label_column: int = 0
    text_column: int = 1
    header: bool = False
    text_field: str = "text"  # jsonl
    label_field: str = "label"
    multi_label: bool = False
    max_length: int | None = bounded(None, ge=1)  # longer texts are truncated (records say so: "truncated")
    # init, init_weights (PretrainedData): a gpt or bert classifier's pretrained start (see
    # tasks/pretrained.py, models/gpt_classifier.py, bert_classifier.py)


@dataclass(frozen=True)
class ClassifyPredict(PredictSection):
    top_k: int = bounded(1, ge=1)
    threshold: float | None = bounded(None, ge=0, le=1)
    # auto: raw text, tokenized as the training text was (see classify_output); whitespace: the
    # text as given, already tokenized. Checkpoints from before the key predict with the default.
    tokenize: str = choice("auto", MODES)


class ClassifyTask(Task):
    command = "dlcli classify"
    name = "classify"
    data_section = ClassifyData
    predict_section = ClassifyPredict
    metrics = {"accuracy": True, "macro_f1": True, "micro_f1": True}
    evaluate_options = frozenset({"threshold"})

    def __init__(self, vocab, labels: list[str], multi_label: bool, max_length: int | None,
                 min_length: int = 1):
        self.vocab = vocab
        self.labels = labels
        self.label_index = {name: i for i, name in enumerate(labels)}
        self.multi_label = multi_label
        self.max_length = max_length
        self.min_length = min_length  # the model's (TextCNN needs its widest window)
        self.splits: dict[str, tuple[list[list[int]], list]] = {}
        self.notes: list[str] = []
        self.vectors: ClassifyData | None = None  # the data section, when it names pretrained vectors
        self._bags = None  # collate_kernel's flat view of the train split, built on first use
        self.init = None  # the loaded data.init model (not saved: the weights it gives are the model's)
        self.init_weights = True
        self.elmo = None  # the loaded data.elmo model (not saved: the classifier holds its biLM)
        # with ELMo features: words outside the vocabulary, by the ids they get (V, V + 1, ...), so
        # that the biLM reads them as spelled (see ElmoFeatures.spell_unseen); None without
        self.open_words: dict[str, int] | None = None

    # ------------------------------------------------------------ construction

    @classmethod
    def check_recipe(cls, recipe) -> None:
        mode = recipe.model.kwargs.get("embedding_mode", "rand")
        if mode != "rand" and not recipe.data.vectors:  # TextCNN's pretrained variants (Kim 2014)
            raise RecipeError(f"model.embedding_mode: {mode} starts from pretrained vectors, and data.vectors "
                              "names none", "set data.vectors to a word2vec or GloVe file, or use embedding_mode: rand")
        if recipe.data.vectors and recipe.vocab.type in ("bpe", "wordpiece"):
            raise RecipeError(f"data.vectors: a {recipe.vocab.type} vocabulary has no words to look up in a "
                              "vectors file", "use vocab type word, char or ngrams")
        if recipe.data.init and recipe.data.vectors:
            raise RecipeError("data.vectors: a classifier that starts from a pretrained model (data.init) takes "
                              "its embedding from it", "remove data.vectors or data.init")
        if recipe.data.vectors_extend and recipe.vocab.type not in ("word", "char"):
            raise RecipeError(f"data.vectors_extend: a {recipe.vocab.type} vocabulary cannot take in the vectors' "
                              "words", "use vocab type word or char, or leave the vocabulary as training gives it")
        elmo_features.check_recipe(recipe)

    read = staticmethod(read_labelled)

    @classmethod
    def from_records(cls, recipe, vocabs, train: list[Record], dev: list[Record] | None,
                     init=None) -> ClassifyTask:
        cfg = recipe.data
        multi = cfg.multi_label or any(len(r.labels) > 1 for r in train)
        labels = sorted({label for r in train for label in r.labels})
        if len(labels) < 2 and not multi:
            raise DataError("the training data has fewer than two labels", "check data.label_column")
        if init is not None:
            vocab = init_vocab(init, "a classifier")
        else:
            vocab_builder, vocab_kwargs = vocabs["vocab"]
            vocab = extended(vocab_builder((r.text for r in train), **vocab_kwargs), cfg)
        task = cls(vocab, labels, multi, cfg.max_length)
        task.init, task.init_weights = init, cfg.init_weights
        task.elmo = elmo_features.load(cfg)
        task.open_words = {} if task.elmo is not None else None
        task.vectors = cfg if cfg.vectors else None
        task.splits["train"] = task._encode_records(train)
        if dev:
            task.splits["dev"] = (task.encode([r.text for r in dev]), dev)
            unseen = unseen_labels_note(labels, (r.labels for r in dev), dev_source(cfg))
            task.notes += [unseen] if unseen else []
        return task

    @classmethod
    def from_checkpoint(cls, data: dict) -> ClassifyTask:
        extra = data["task_state"]
        task = cls(vocabularies.from_dict(data["vocab"]), list(data["labels"]), bool(extra["multi_label"]),
                   extra.get("max_length"), int(extra.get("min_length", 1)))
        task.open_words = {} if (data["recipe"].get("data") or {}).get("elmo") else None
        return task

    def payload(self) -> dict:
        return {
            "vocab": self.vocab.to_dict(),
            "labels": self.labels,
            "task_state": {"multi_label": self.multi_label, "max_length": self.max_length,
                           "min_length": self.min_length},
        }

    def model_sizes(self) -> tuple[int, int, int]:
        return self.vocab.size, len(self.labels), self.vocab.pad_id

    def describe(self) -> str:
        return f"{self.num_train:,} examples, {len(self.labels)} labels, vocabulary {self.vocab.size:,}"

    def layer_groups(self, model: ClassifierDefaults) -> list[list]:
        return layer_groups(model)

    def model_kwargs(self, kwargs: dict) -> dict:
        return elmo_features.model_kwargs(pretrained_kwargs(kwargs, self.init, self.vocab), self.elmo)

    def stored_recipe(self, resolved: dict) -> dict:
        return with_init_vocab(resolved, self.init)

    def prepare_model(self, model: ClassifierDefaults) -> None:
        """Learn the model's shortest input, give it the label frequencies, fill its embedding
        from pretrained vectors (data.vectors), or start it from a pretrained model (data.init)."""
        note = start_model(model, self.init, self.init_weights)
        self.notes += [note] if note else []
        if self.elmo is not None:
            self.notes.append(elmo_features.attach(model, self.elmo, elmo_features.word_spellings(
                self.vocab.tokens, model.elmo.table.size(1))))
            self._spell_unseen(model)
        self.min_length = model.min_length
        counts = [0] * len(self.labels)
        for target in self.splits["train"][1]:
            for i in target if self.multi_label else [target]:
                counts[i] += 1
        model.fit_labels(counts)
        if self.vectors is not None:
            self.notes.append(init_word_vectors(model.embedding, self.vocab, self.vectors))
            model.after_init_vectors()

    def after_step(self, model: ClassifierDefaults) -> None:
        model.after_optimizer_step()

    # ------------------------------------------------------------ encoding

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self.truncated(self._ids(texts))

    def _ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's ids; with ELMo features a word outside the vocabulary gets an id of its own
        past it (open_words), else <unk>'s."""
        if self.open_words is None:
            return self.vocab.encode_batch(texts)
        get, words, first = self.vocab.index.get, self.open_words, self.vocab.size
        return [[i if (i := get(t)) is not None else words.setdefault(t, first + len(words))
                 for t in self.vocab.tokenize(text)] for text in texts]

    def _spell_unseen(self, model) -> None:
        """Give an ELMo classifier the spellings of the words past its vocabulary seen so far."""
        features = getattr(unwrapped(model), "elmo", None)
        if features is not None and self.open_words and len(features.unseen) != len(self.open_words):
            features.spell_unseen(elmo_features.word_spellings(list(self.open_words), features.table.size(1)))

    def truncated(self, ids: list) -> list:
        """`ids` cut to data.max_length, if the recipe set one."""
        m = self.max_length
        return [x if len(x) <= m else x[:m] for x in ids] if m else ids

    def _encode_records(self, records: list[Record]):
        ids = self.encode([r.text for r in records])
        index = self.label_index
        targets = [[index[x] for x in r.labels] if self.multi_label else index[r.labels[0]]
                   for r in records]
        return ids, targets

    # ------------------------------------------------------------ training

    @property
    def has_dev(self) -> bool:
        return "dev" in self.splits

    @property
    def num_train(self) -> int:
        return len(self.splits["train"][0])

    def train_batches(self, batch_size: int, generator: torch.Generator) -> list[list[int]]:
        return bucket_batches([len(x) for x in self.splits["train"][0]], batch_size, generator)

    def collate(self, indices: list[int]) -> dict[str, torch.Tensor]:
        ids, targets = self.splits["train"]
        tokens, mask = pad([ids[i] for i in indices], self.vocab.pad_id, self.min_length)
        if self.multi_label:
            target = torch.from_numpy(self._multi_hot(indices))
        else:
            target = torch.tensor([targets[i] for i in indices], dtype=torch.long)
        return {"ids": tokens, "mask": mask, "target": target}

    def kernel_batches(self, batch_size: int, seed: int, parts: int = 1) -> list[list[int]]:
        """Batches for collate_kernel: a plain shuffle, whatever the threads (`parts`). Length-sorted
        batches gave FastText 0.3 points less on 20newsgroups dev (10 seeds each: 0.8364 against
        0.8392)."""
        return shuffled_batches(self.num_train, batch_size, torch.Generator().manual_seed(seed))

    def collate_kernel(self, indices: list[int]) -> dict[str, np.ndarray]:
        """A batch for a bag model's own training loop (FastText.hogwild_step), without copying
        ids: the whole train split as one flat array, and each example's start and length in it."""
        if self._bags is None:
            ids, targets = self.splits["train"]
            lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            flat = np.concatenate(ids).astype(np.int64, copy=False) if ids else np.zeros(0, np.int64)
            self._bags = flat, np.cumsum(lengths) - lengths, lengths, None if self.multi_label else np.asarray(targets)
        flat, starts, lengths, labels = self._bags
        rows = np.asarray(indices, dtype=np.int64)
        target = self._multi_hot(indices) if labels is None else labels[rows]
        return {"flat": flat, "starts": starts[rows], "lengths": lengths[rows], "target": target}

    def _multi_hot(self, indices: list[int]) -> np.ndarray:
        """(B, C) float32 targets of multi-label training examples: 1 for each of their labels."""
        targets = self.splits["train"][1]
        target = np.zeros((len(indices), len(self.labels)), dtype=np.float32)
        for row, i in enumerate(indices):
            target[row, targets[i]] = 1.0
        return target

    def _sigmoid(self, model: ClassifierDefaults) -> bool:
        """One sigmoid per label: multi-label data, or a one-vs-all model (fastText's `ova`)."""
        return self.multi_label or model.output_activation == "sigmoid"

    def loss(self, net, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = net(batch["ids"], batch["mask"]).float()
        target = batch["target"]
        model = unwrapped(net)
        if self._sigmoid(model):
            if not self.multi_label:
                target = F.one_hot(target, logits.shape[1]).float()
            loss = F.binary_cross_entropy_with_logits(logits, target)
        else:
            loss = F.cross_entropy(logits, target)
        extra = model.extra_loss()
        return loss if extra is None else loss + extra

    # ------------------------------------------------------------ prediction and evaluation

    @torch.inference_mode()
    def scores(self, model, ids: list[list[int]], batch_size: int = EVAL_BATCH) -> torch.Tensor:
        """(N, C) probabilities in input order. A text longer than `piece_length(model)` is scored
        in pieces (see split_pieces) whose probabilities are averaged, weighted by their lengths."""
        self._spell_unseen(model)
        pieces, owners = split_pieces(ids, self.piece_length(model))
        probs = self._piece_scores(model, pieces, batch_size)
        if len(pieces) == len(ids):
            return probs
        owner = torch.tensor(owners)
        weights = torch.tensor([max(1, len(x)) for x in pieces], dtype=torch.float32)
        totals = torch.zeros(len(ids)).index_add_(0, owner, weights)
        summed = torch.zeros(len(ids), probs.shape[1]).index_add_(0, owner, probs * weights[:, None])
        out = torch.empty(len(ids), probs.shape[1])
        first = torch.ones(len(owners), dtype=torch.bool)
        first[1:] = owner[1:] != owner[:-1]
        out[owner[first]] = probs[first]  # a text of one piece keeps its probabilities exactly
        cut = torch.bincount(owner, minlength=len(ids)) > 1
        out[cut] = summed[cut] / totals[cut, None]
        return out

    def piece_length(self, model: ClassifierDefaults) -> int | None:
        """The most ids scored at once: any number for a bag model (its mean takes no memory per
        id), else MAX_PIECE, or fewer where the model reads fewer (a transformer's positions)."""
        if model.bag_input:
            return None
        return min(MAX_PIECE, model.max_tokens or MAX_PIECE)

    def _piece_scores(self, model, ids: list, batch_size: int) -> torch.Tensor:
        device = next(model.parameters()).device
        out = torch.empty(len(ids), len(self.labels))
        lengths = [len(x) for x in ids]
        for batch in token_capped(bucket_batches(lengths, batch_size), lengths, MAX_BATCH_TOKENS):
            if model.bag_input:  # a bag-of-features model takes the ids unpadded
                flat, offsets = concatenate([ids[i] for i in batch])
                logits = model.forward_bags(flat.to(device), offsets.to(device)).float()
            else:
                tokens, mask = pad([ids[i] for i in batch], self.vocab.pad_id, self.min_length)
                logits = model(tokens.to(device), mask.to(device)).float()
            probs = torch.sigmoid(logits) if self._sigmoid(model) else torch.softmax(logits, -1)
            out[torch.tensor(batch)] = probs.cpu()
        return out

    def check_options(self, options: dict) -> None:
        check_classify_options(options)

    def predict(self, model, ids: list, texts: list[str], options: dict) -> list[dict]:
        """Records {"id", "label", "score", "top_k"} (see prediction_records); with the `explain`
        option, "attention": each token's weight and place in the text (see classify_output.explained)."""
        batch_size, mode = options.get("batch_size", EVAL_BATCH), options.get("tokenize", "auto")
        full = self._ids(model_texts(self.vocab, texts, mode))
        encoded = self.truncated(full)
        probs = self.scores(model, encoded, batch_size).numpy()
        records = prediction_records(ids, probs, self.labels, self.multi_label, options.get("top_k", 1),
                                     options.get("threshold"))
        note_cuts(records, full, encoded, self.piece_length(model))
        if options.get("explain"):
            for rec, text, weights in zip(records, texts, self.attention(model, encoded, batch_size)):
                rec["attention"] = explained(self.vocab, text, mode, weights)
        return records

    @torch.inference_mode()
    def attention(self, model, ids: list[list[int]], batch_size: int = EVAL_BATCH) -> list[list[float]]:
        """Per-token attention weights of a model that has them (attn_lstm), in input order."""
        if not model.word_attention:
            raise DataError("--explain needs a model with word-level attention (attn_lstm), "
                            f"not {type(model).__name__}")
        device = next(model.parameters()).device
        pieces, owners = split_pieces(ids, self.piece_length(model))
        out: list[list[float]] = [[] for _ in ids]
        lengths = [len(x) for x in pieces]
        by_piece: list[list[float]] = [[] for _ in pieces]
        for batch in token_capped(bucket_batches(lengths, batch_size), lengths, MAX_BATCH_TOKENS):
            tokens, mask = pad([pieces[i] for i in batch], self.vocab.pad_id, self.min_length)
            weights = model.attention(tokens.to(device), mask.to(device)).float().cpu().tolist()
            for i, row in zip(batch, weights):
                by_piece[i] = row[: lengths[i]]
        for piece, owner, row in zip(pieces, owners, by_piece):
            share = len(piece) / max(1, len(ids[owner]))  # a piece's weights sum to its share of the text
            out[owner].extend(row if share == 1 else [w * share for w in row])
        return out

    def evaluate(self, model, records: list[Record] | None = None, options: dict | None = None) -> dict:
        """Metrics on the dev split, or on `records` read from a labelled file; `threshold`: the
        decision threshold of a multi-label model (default 0.5)."""
        threshold = (options or {}).get("threshold")
        if records is None:
            ids, records = self.splits["dev"]
        else:
            ids = self.encode([r.text for r in records])
        extra = sorted({x for r in records for x in r.labels} - set(self.label_index))
        labels = self.labels + extra  # gold labels the model never saw still count as misses
        index = {name: i for i, name in enumerate(labels)}
        gold = [[index[x] for x in r.labels] for r in records]
        probs = self.scores(model, ids)
        if self.multi_label:
            cut = 0.5 if threshold is None else threshold
            pred = [set((row >= cut).nonzero().flatten().tolist()) for row in probs]
            return multilabel_report([set(g) for g in gold], pred, labels)
        if any(len(g) != 1 for g in gold):
            raise DataError("a single-label model was given examples with several labels")
        return classification_report([g[0] for g in gold], probs.argmax(1).tolist(), labels)
