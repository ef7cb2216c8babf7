"""Sequence labelling: tagged sentences -> batches -> loss, tag predictions, spans and metrics.

Tokens are either words (English; raw input split on whitespace) or characters (Chinese; every
non-space character of the raw input), decided from the training data and kept in the
checkpoint. Sentences longer than `data.max_length` are cut into pieces (after punctuation where
possible) that are tagged separately and joined again, so no token is ever dropped.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import torch

from dlcli.errors import DataError, RecipeError
from dlcli.metrics import tagging_report
from dlcli.models.tagger import TaggerInputs
from dlcli.recipe import choice
from dlcli.tasks import Task
from dlcli.tasks.word_vectors import WordVectorsData, extended, init_word_vectors
from dlcli.text import vocabularies
from dlcli.text.batching import bucket_batches, pad
from dlcli.text.tagging import SCHEMES, Sentence, convert_scheme, ill_formed, read_tagged, spans, split_long, split_tag
from dlcli.text.vocab import PAD, UNK, TokenVocab, _ranked

EVAL_BATCH = 128
END = "</s>"  # the right neighbour of the last token, for bigram features


@dataclass(frozen=True)
class TagData(WordVectorsData):
    format: str = choice("conll", ("conll", "segmented", "word_tag"))
    token_column: int = 0
    tag_column: int = -1  # negative: counted from the last column
    feature_columns: list[int] = field(default_factory=list)  # extra input columns, e.g. POS
    column_separator: str | None = None  # default: any whitespace
    tag_scheme: str = choice("bio", SCHEMES)  # the files' scheme; none: per-token labels
    train_scheme: str | None = choice(None, SCHEMES)  # re-tag to this scheme for training, e.g. iob1 -> bioes
    bigrams: bool = False  # add each token's bigram with its right neighbour as a feature
    feature_min_freq: int = 1
    max_length: int | None = None  # longer sentences are cut into pieces (after punctuation where possible)


class TagTask(Task):
    command = "dlcli tag"
    name = "tag"
    data_section = TagData
    metrics = {"f1": True, "precision": True, "recall": True, "accuracy": True}
    model_positional = 4  # vocab_size, num_tags, pad_id, TaggerInputs

    def __init__(self, vocab: TokenVocab, tags: list[str], scheme: str, level: str, chars: list[str],
                 feature_tokens: list[list[str]], bigrams: bool, max_length: int | None):
        self.vocab = vocab
        self.labels = tags
        self.tag_index = {t: i for i, t in enumerate(tags)}
        self.scheme = scheme
        self.level = level  # "word" or "char"
        self.char_tokens = chars
        self.char_index = {c: i for i, c in enumerate(chars)}
        self.feature_tokens = feature_tokens  # per feature column (bigrams last): its vocabulary
        self.feature_index = [{t: i for i, t in enumerate(ts)} for ts in feature_tokens]
        self.bigrams = bigrams
        self.max_length = max_length
        self.min_length = 1
        self.notes: list[str] = []  # data problems worth telling the user, not fatal
        self.vectors: TagData | None = None  # the data section, when it names pretrained vectors
        self.splits: dict[str, tuple[list[dict], list[Sentence]]] = {}

    @property
    def is_segmenter(self) -> bool:
        """Untyped B/M/E/S (or B/I) tags: the spans are words."""
        return self.scheme not in ("none",) and all(split_tag(t)[1] == "" for t in self.labels)

    @property
    def default_metric(self) -> str:
        return "accuracy" if self.scheme == "none" else "f1"

    def prepare_model(self, model) -> None:
        if self.vectors is not None:
            self.notes.append(init_word_vectors(model.embedding, self.vocab, self.vectors))

    def describe(self) -> str:
        return f"{self.num_train:,} sentence pieces, {len(self.labels)} tags, vocabulary {self.vocab.size:,}"

    # ------------------------------------------------------------ construction

    @classmethod
    def check_recipe(cls, recipe) -> None:
        cls.check_data(recipe.data)
        if recipe.vocab.type != "word":
            raise RecipeError(f"vocab.type: tagging reads its tokens from the data, so only `word` applies, "
                              f"not {recipe.vocab.type!r}", "vocab.lowercase / min_freq / max_size still apply")

    @classmethod
    def check_data(cls, cfg) -> None:
        if "none" in (cfg.tag_scheme, cfg.train_scheme or cfg.tag_scheme) and \
                (cfg.train_scheme or cfg.tag_scheme) != cfg.tag_scheme:
            raise RecipeError("data.train_scheme: per-token labels (scheme none) cannot be re-tagged")
        if cfg.format == "segmented" and cfg.tag_scheme != "bmes":
            raise RecipeError("data.tag_scheme: segmented text is read as B/M/E/S tags", "set data.tag_scheme: bmes")

    @classmethod
    def read(cls, path, cfg) -> list[Sentence]:
        cls.check_data(cfg)
        sentences = read_tagged(path, cfg)
        if cfg.train_scheme and cfg.train_scheme != cfg.tag_scheme:
            for s in sentences:
                s.tags = convert_scheme(s.tags, cfg.tag_scheme, cfg.train_scheme)
        return sentences

    @classmethod
    def from_records(cls, recipe, vocabs, train: list[Sentence], dev: list[Sentence] | None,
                     init=None) -> TagTask:
        cfg, (_, vocab_kwargs) = recipe.data, vocabs["vocab"]
        scheme = cfg.train_scheme or cfg.tag_scheme
        lower = vocab_kwargs.get("lowercase", False)
        words = Counter((t.lower() if lower else t) for s in train for t in s.tokens)
        ranked = _ranked(words, vocab_kwargs.get("min_freq", 1), vocab_kwargs.get("max_size"))
        vocab = extended(TokenVocab("word", ranked, lower, vocab_kwargs.get("pattern")), cfg)
        level = "char" if all(len(t) == 1 for s in train for t in s.tokens) else "word"
        chars = [PAD, UNK] + sorted({c for s in train for t in s.tokens for c in t})
        columns = len(train[0].features)
        feature_tokens = [cls._feature_vocab((s.features[i] for s in train), cfg.feature_min_freq)
                          for i in range(columns)]
        if cfg.bigrams:
            feature_tokens.append(cls._feature_vocab((_bigrams(s.tokens) for s in train), cfg.feature_min_freq))
        tags = sorted({t for s in train for t in s.tags}, key=lambda t: (t != "O", t))
        task = cls(vocab, tags, scheme, level, chars, feature_tokens, cfg.bigrams, cfg.max_length)
        task.vectors = cfg if cfg.vectors else None
        task.notes = _ill_formed_notes(train, scheme, cfg.train)
        task.splits["train"] = task._encode_split(train)
        if dev:
            task.notes += _ill_formed_notes(dev, scheme, cfg.dev)
            task.splits["dev"] = (task.encode([s.tokens for s in dev], [s.features for s in dev]), dev)
        return task

    @staticmethod
    def _feature_vocab(columns, min_freq: int) -> list[str]:
        counts = Counter(t for column in columns for t in column)
        return _ranked(counts, min_freq, None)

    @classmethod
    def from_checkpoint(cls, data: dict) -> TagTask:
        extra = data["task_state"]
        return cls(vocabularies.from_dict(data["vocab"]), list(data["labels"]), extra["scheme"], extra["level"],
                   list(extra["chars"]), [list(f) for f in extra["feature_tokens"]], bool(extra["bigrams"]),
                   extra.get("max_length"))

    def payload(self) -> dict:
        return {
            "vocab": self.vocab.to_dict(),
            "labels": self.labels,
            "task_state": {"scheme": self.scheme, "level": self.level, "chars": self.char_tokens,
                           "feature_tokens": self.feature_tokens, "bigrams": self.bigrams,
                           "max_length": self.max_length},
        }

    def model_sizes(self) -> tuple:
        inputs = TaggerInputs(tuple(self.labels), self.scheme, len(self.char_tokens),
                              tuple(len(f) for f in self.feature_tokens), self.vocab.unk_id)
        return self.vocab.size, len(self.labels), self.vocab.pad_id, inputs

    @property
    def extra_columns(self) -> int:
        """Feature columns the input must carry (bigrams are made here, not read)."""
        return len(self.feature_tokens) - (1 if self.bigrams else 0)

    # ------------------------------------------------------------ encoding

    def tokenize(self, text: str) -> list[str]:
        return [c for c in text if not c.isspace()] if self.level == "char" else text.split()

    def encode(self, sentences: list[list[str]], features: list[list[list[str]]] | None = None,
               split: bool = True) -> list[dict]:
        """Each sentence's pieces (see split_long; one piece each without `split`) as id lists."""
        out = []
        for n, tokens in enumerate(sentences):
            cols = list(features[n]) if features else []
            if self.bigrams:
                cols.append(_bigrams(tokens))
            for start, end in split_long(len(tokens), self.max_length if split else None, tokens):
                out.append(self._encode_piece(tokens[start:end], [c[start:end] for c in cols], n, start))
        return out

    def _encode_piece(self, tokens: list[str], cols: list[list[str]], sentence: int, start: int) -> dict:
        lower, get, unk = self.vocab.lowercase, self.vocab.index.get, self.vocab.unk_id
        ids = [get(t.lower() if lower else t, unk) for t in tokens]
        feats = [[index.get(t, 1) for t in col] for index, col in zip(self.feature_index, cols)]
        return {"ids": ids, "tokens": tokens, "features": feats, "sentence": sentence, "start": start}

    def _encode_split(self, sentences: list[Sentence]):
        pieces = self.encode([s.tokens for s in sentences], [s.features for s in sentences])
        for piece in pieces:
            tags = sentences[piece["sentence"]].tags
            piece["tags"] = [self.tag_index[t] for t in tags[piece["start"]: piece["start"] + len(piece["ids"])]]
        return pieces, sentences

    def _batch(self, pieces: list[dict]) -> dict[str, torch.Tensor]:
        ids, mask = pad([p["ids"] for p in pieces], self.vocab.pad_id)
        batch = {"ids": ids, "mask": mask}
        if self.feature_tokens:
            cols = [pad([p["features"][i] for p in pieces], 0)[0] for i in range(len(self.feature_tokens))]
            batch["features"] = torch.stack(cols, dim=2)  # (B, T, F)
        words: dict[str, int] = {}
        index = [[words.setdefault(t, len(words)) for t in p["tokens"]] for p in pieces]
        batch["char_index"] = pad(index, 0)[0]
        spell = [[self.char_index.get(c, 1) for c in w] for w in words]
        batch["chars"] = pad(spell, 0)[0]  # (U, L)
        return batch

    # ------------------------------------------------------------ training

    @property
    def has_dev(self) -> bool:
        return "dev" in self.splits

    @property
    def num_train(self) -> int:
        return len(self.splits["train"][0])

    def train_batches(self, batch_size: int, generator: torch.Generator) -> list[list[int]]:
        return bucket_batches([len(p["ids"]) for p in self.splits["train"][0]], batch_size, generator)

    def collate(self, indices: list[int]) -> dict[str, torch.Tensor]:
        pieces = [self.splits["train"][0][i] for i in indices]
        batch = self._batch(pieces)
        batch["tags"] = pad([p["tags"] for p in pieces], 0)[0]
        return batch

    def loss(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model.loss(_forward(model, batch), batch["tags"], batch["mask"])

    # ------------------------------------------------------------ prediction and evaluation

    def _scored_batches(self, model, pieces: list[dict], batch_size: int):
        """(indices into pieces, tag scores (B, T, K), mask) per batch of similar lengths; empty
        pieces are left out (they get no tags)."""
        device = next(model.parameters()).device
        for batch_ids in bucket_batches([len(p["ids"]) for p in pieces], batch_size):
            chosen = [i for i in batch_ids if pieces[i]["ids"]]
            if chosen:
                batch = {k: v.to(device) for k, v in self._batch([pieces[i] for i in chosen]).items()}
                yield chosen, _forward(model, batch).float(), batch["mask"]

    @torch.inference_mode()
    def tag_pieces(self, model, pieces: list[dict], batch_size: int = EVAL_BATCH) -> list[list[str]]:
        out: list[list[str]] = [[] for _ in pieces]
        for chosen, scores, mask in self._scored_batches(model, pieces, batch_size):
            for i, path in zip(chosen, model.decode(scores, mask)):
                out[i] = [self.labels[k] for k in path]
        return out

    def tag_sentences(self, model, sentences: list[list[str]], features=None,
                      batch_size: int = EVAL_BATCH) -> list[list[str]]:
        """Tags per sentence; long sentences are tagged in pieces and joined back."""
        pieces = self.encode(sentences, features)
        return _joined(pieces, self.tag_pieces(model, pieces, batch_size), len(sentences))

    @torch.inference_mode()
    def nbest_sentences(self, model, sentences: list[list[str]], n: int,
                        batch_size: int = EVAL_BATCH) -> list[list[tuple[list[str], float]]]:
        """The n most probable tag sequences per sentence, with their probabilities under the CRF.
        Sentences are not cut into pieces here: the alternatives are for the sentence as a whole."""
        if model.crf is None:
            raise DataError("--n-best needs a model with a CRF output layer (bilstm_crf)")
        pieces = self.encode(sentences, split=False)
        out: list[list[tuple[list[str], float]]] = [[] for _ in pieces]
        for chosen, scores, mask in self._scored_batches(model, pieces, batch_size):
            log_z = model.crf.log_partition(scores, mask).tolist()
            for i, paths, z in zip(chosen, model.crf.decode_nbest(scores, mask, n), log_z):
                out[i] = [([self.labels[k] for k in path], math.exp(score - z)) for path, score in paths]
        return out

    def predict(self, model, ids: list, texts: list[str], options: dict) -> list[dict]:
        """Records {"id", "tokens", "tags", "spans"}; with the `n_best` option, "n_best": the best
        whole-sentence alternatives with their probabilities."""
        batch_size, n_best = options.get("batch_size", EVAL_BATCH), options.get("n_best")
        sentences = [self.tokenize(t) for t in texts]
        if self.extra_columns:
            raise DataError(f"this model reads {self.extra_columns} extra feature column(s) per token",
                            "tag a CoNLL file with `dlcli evaluate`, or train without data.feature_columns")
        alternatives = self.nbest_sentences(model, sentences, n_best, batch_size) if n_best else None
        if alternatives is not None:
            tags = [paths[0][0] if paths else [] for paths in alternatives]
        else:
            tags = self.tag_sentences(model, sentences, None, batch_size)
        records = []
        for n, (id_, tokens, sentence_tags) in enumerate(zip(ids, sentences, tags)):
            record = {"id": id_, "tokens": tokens, "tags": sentence_tags, "spans": self.spans_of(tokens, sentence_tags)}
            if alternatives is not None:
                record["n_best"] = [{"tags": t, "probability": round(p, 6)} for t, p in alternatives[n]]
            records.append(record)
        return records

    def spans_of(self, tokens: list[str], tags: list[str]) -> list[dict]:
        if self.scheme == "none":
            return []
        join = "" if self.level == "char" else " "
        return [{"start": s, "end": e, "label": kind, "text": join.join(tokens[s:e])} for s, e, kind in spans(tags)]

    def evaluate(self, model, records: list[Sentence] | None = None, options: dict | None = None) -> dict:
        """Span P/R/F1 (conlleval) and token accuracy on the dev split or on `records`."""
        if records is None:
            pieces, records = self.splits["dev"]
        else:
            if records and len(records[0].features) != self.extra_columns:
                raise DataError(f"the model needs {self.extra_columns} feature column(s); the data has "
                                f"{len(records[0].features)}", "set --feature-columns as in training")
            pieces = self.encode([s.tokens for s in records], [s.features for s in records])
        pred = _joined(pieces, self.tag_pieces(model, pieces), len(records))
        return tagging_report([s.tags for s in records], pred, with_spans=self.scheme != "none")


def _forward(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(batch["ids"], batch["mask"], batch["chars"], batch["char_index"], batch.get("features"))


def _joined(pieces: list[dict], tagged: list[list[str]], n: int) -> list[list[str]]:
    """Per-piece tags put back together, one list per sentence."""
    out: list[list[str]] = [[] for _ in range(n)]
    for piece, tags in zip(pieces, tagged):
        out[piece["sentence"]].extend(tags)
    return out


def _bigrams(tokens: list[str]) -> list[str]:
    return [a + b for a, b in zip(tokens, [*tokens[1:], END])]


def _ill_formed_notes(sentences: list[Sentence], scheme: str, source: str | None) -> list[str]:
    """Gold spans that open with a continuation tag: reported once per file, scored as they are."""
    bad = [s.line for s in sentences if ill_formed(s.tags, scheme) is not None]
    if not bad:
        return []
    return [f"{source}: {len(bad)} sentence(s) have a span opening with a continuation tag (I- without B-; "
            f"first in the sentence at line {bad[0]}); kept as they are and scored as conlleval does"]
