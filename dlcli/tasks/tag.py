"""Sequence labelling: tagged sentences -> batches -> loss, tag predictions, spans and metrics.

Tokens are either words (English; raw input tokenized as the training data was, see
dlcli/text/tokenize.py, or split on whitespace) or characters (Chinese; every non-space character
of the raw input), decided from the training data and kept in the checkpoint. Predictions carry
each token's character offsets in the input line. Sentences longer than `data.max_length` are
cut into pieces (after punctuation where possible) that are tagged separately and joined again,
so no token is ever dropped.

A BERT tagger (model `bert`, a WordPiece vocabulary: data.init's, or vocab type bert_wordpiece)
reads each word as its WordPiece tokens and tags it from the first (models/bert_tagger.py); a
word the tokenizer empties reads as [UNK]. Its pieces are counted in WordPieces: a sentence of
more than the model reads at once (its positions less [CLS] and [SEP], or data.max_length if
fewer) is tagged in windows of whole words, each window read on its own, and its record says so
("truncated").
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate, chain

import torch

from dlcli.errors import DataError, RecipeError
from dlcli.metrics import tagging_report
from dlcli.models.tagger import TaggerInputs
from dlcli.recipe import bounded, choice
from dlcli.tasks import PredictSection, Task, elmo_features, unseen_labels_note
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
from dlcli.text.batching import bucket_batches, pad, token_capped
from dlcli.text.tagging import SCHEMES, Sentence, convert_scheme, ill_formed, read_tagged, spans, split_long, split_tag
from dlcli.text.tokenize import MODES, characters, check_mode, token_spans, word_lookup
from dlcli.text.vocab import PAD, UNK, TokenVocab, _ranked

EVAL_BATCH = 128
# Tokens tagged at once when the checkpoint sets no data.max_length: longer than the sentences
# taggers are trained on (CoNLL-2003's longest is 124 tokens), short enough that a batch of pieces
# stays small however long a line is.
DEFAULT_MAX_LENGTH = 256
MAX_BATCH_TOKENS = 16_384  # tokens (padding included) per forward pass when tagging: bounds its memory
GROUP_TOKENS = 65_536  # tokens encoded at once when tagging (a chunk of ordinary lines is one group)
WORDPIECE_CHUNK = 256  # sentences split into WordPieces at once (a BERT tagger's)
END = "</s>"  # the right neighbour of the last token, for bigram features


@dataclass(frozen=True)
class TagData(WordVectorsData, PretrainedData, elmo_features.ElmoData, HeldOutData):
    format: str = choice("conll", ("conll", "segmented", "word_tag"))
    token_column: int = 0
    tag_column: int = -1  # negative: counted from the last column
    feature_columns: list[int] = field(default_factory=list)  # extra input columns, e.g. POS
    column_separator: str | None = None  # default: any whitespace
    tag_scheme: str = choice("bio", SCHEMES)  # the files' scheme; none: per-token labels
    train_scheme: str | None = choice(None, SCHEMES)  # re-tag to this scheme for training, e.g. iob1 -> bioes
    bigrams: bool = False  # add each token's bigram with its right neighbour as a feature
    feature_min_freq: int = bounded(1, ge=1)
    # longer sentences are cut into pieces (after punctuation where possible); a BERT tagger counts
    # WordPieces, at most its positions less two
    max_length: int | None = bounded(None, ge=1)
    # init, init_weights (PretrainedData): a bert tagger's pretrained start (see tasks/pretrained.py)


@dataclass(frozen=True)
class TagPredict(PredictSection):
    # auto: raw text, tokenized as the training data was (dlcli/text/tokenize.py); whitespace:
    # already tokenized. Checkpoints from before the key predict with the default.
    tokenize: str = choice("auto", MODES)


class TagTask(Task):
    command = "dlcli tag"
    name = "tag"
    data_section = TagData
    predict_section = TagPredict
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
        self.init = None  # the loaded data.init model (not saved: the weights it gives are the model's)
        self.init_weights = True
        self.elmo = None  # the loaded data.elmo model (not saved: the tagger holds its biLM)

    @property
    def subwords(self) -> bool:
        """Words read as WordPiece tokens (a BERT tagger), decided by the vocabulary."""
        return self.vocab.kind == "bert_wordpiece"

    @property
    def piece_length(self) -> int:
        """The most tokens tagged at once: data.max_length, else DEFAULT_MAX_LENGTH."""
        return self.max_length or DEFAULT_MAX_LENGTH

    @property
    def is_segmenter(self) -> bool:
        """Untyped B/M/E/S (or B/I) tags: the spans are words."""
        return self.scheme not in ("none",) and all(split_tag(t)[1] == "" for t in self.labels)

    @property
    def default_metric(self) -> str:
        return "accuracy" if self.scheme == "none" else "f1"

    def prepare_model(self, model) -> None:
        note = start_model(model, self.init, self.init_weights)
        self.notes += [note] if note else []
        if model.reads_pieces != self.subwords:
            raise RecipeError(f"model.type: this tagger reads {'WordPieces' if model.reads_pieces else 'words'}, "
                              f"and the vocabulary is a {self.vocab.kind} one",
                              "a bert tagger starts from data.init (or vocab type bert_wordpiece); the others "
                              "take vocab type word")
        if self.vectors is not None:
            self.notes.append(init_word_vectors(model.embedding, self.vocab, self.vectors))
        if self.elmo is not None:  # spelled from the tagger's characters: an unseen word keeps its spelling
            self.notes.append(elmo_features.attach(model, self.elmo, elmo_features.char_spellings(self.char_tokens)))

    def describe(self) -> str:
        return f"{self.num_train:,} sentence pieces, {len(self.labels)} tags, vocabulary {self.vocab.size:,}"

    def model_kwargs(self, kwargs: dict) -> dict:
        return elmo_features.model_kwargs(pretrained_kwargs(kwargs, self.init, self.vocab), self.elmo)

    def stored_recipe(self, resolved: dict) -> dict:
        return with_init_vocab(resolved, self.init)

    def layer_groups(self, model) -> list[list]:
        return layer_groups(model)

    # ------------------------------------------------------------ construction

    @classmethod
    def check_recipe(cls, recipe) -> None:
        cfg = recipe.data
        cls.check_data(cfg)
        elmo_features.check_recipe(recipe)
        if recipe.vocab.type not in ("word", "bert_wordpiece") and not cfg.init:
            raise RecipeError(f"vocab.type: tagging reads its tokens from the data, so only `word` (or "
                              f"`bert_wordpiece` for a bert tagger) applies, not {recipe.vocab.type!r}",
                              "vocab.lowercase / min_freq / max_size still apply")
        if cfg.init or recipe.vocab.type == "bert_wordpiece":
            extras = [name for name, on in (("feature_columns", cfg.feature_columns), ("bigrams", cfg.bigrams),
                                            ("vectors", cfg.vectors)) if on]
            if extras:
                raise RecipeError(f"data.{extras[0]}: a tagger that reads WordPieces (data.init, or vocab type "
                                  "bert_wordpiece) takes no extra feature columns, bigrams or word vectors",
                                  f"remove data.{', data.'.join(extras)}")

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
        cfg, (vocab_builder, vocab_kwargs) = recipe.data, vocabs["vocab"]
        scheme = cfg.train_scheme or cfg.tag_scheme
        if init is not None:
            vocab = init_vocab(init, "a tagger", ("mlm",))
        elif recipe.vocab.type == "bert_wordpiece":
            vocab = vocab_builder((" ".join(s.tokens) for s in train), **vocab_kwargs)
        else:
            lower = vocab_kwargs.get("lowercase", False)
            words = Counter((t.lower() if lower else t) for s in train for t in s.tokens)
            ranked = _ranked(words, vocab_kwargs.get("min_freq", 1), vocab_kwargs.get("max_size"))
            vocab = extended(TokenVocab("word", ranked, lower, vocab_kwargs.get("pattern")), cfg)
        subwords = vocab.kind == "bert_wordpiece"
        level = "char" if all(len(t) == 1 for s in train for t in s.tokens) else "word"
        chars = [PAD, UNK] + ([] if subwords else sorted({c for s in train for t in s.tokens for c in t}))
        columns = len(train[0].features)
        feature_tokens = [cls._feature_vocab((s.features[i] for s in train), cfg.feature_min_freq)
                          for i in range(columns)]
        if cfg.bigrams:
            feature_tokens.append(cls._feature_vocab((_bigrams(s.tokens) for s in train), cfg.feature_min_freq))
        tags = sorted({t for s in train for t in s.tags}, key=lambda t: (t != "O", t))
        max_length = cfg.max_length
        if subwords:  # WordPieces read at once: the model's positions less [CLS] and [SEP], or fewer
            known = (init.data["model"]["kwargs"] if init is not None else {}) | {
                k: v for k, v in recipe.model.kwargs.items() if v is not None}
            window = int(known.get("max_position_embeddings") or DEFAULT_MAX_LENGTH + 2) - 2
            max_length = min(max_length or window, window)
        task = cls(vocab, tags, scheme, level, chars, feature_tokens, cfg.bigrams, max_length)
        task.init, task.init_weights = init, cfg.init_weights
        task.elmo = elmo_features.load(cfg)
        task.vectors = cfg if cfg.vectors else None
        task.notes = _ill_formed_notes(train, scheme, cfg.train)
        task.splits["train"] = task._encode_split(train)
        if dev:
            task.notes += _ill_formed_notes(dev, scheme, dev_source(cfg))
            unseen = unseen_labels_note(tags, (s.tags for s in dev), dev_source(cfg), "tags")
            task.notes += [unseen] if unseen else []
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

    def token_spans(self, text: str, mode: str = "auto") -> list[tuple[int, int]]:
        """(start, end) offsets in `text` of its tokens: every non-space character for a character-level
        model; for a word-level one, the raw-text tokenizer (mode auto; a chunk the vocabulary knows
        whole, such as `Corp.`, stays whole) or the whitespace-separated tokens (mode whitespace)."""
        if self.level == "char":
            return characters(text)
        known = None if self.subwords else word_lookup(self.vocab.index, self.vocab.lowercase)
        return token_spans(text, mode, known)

    def encode(self, sentences: list[list[str]], features: list[list[list[str]]] | None = None) -> list[dict]:
        """Each sentence's pieces of at most `piece_length` tokens (see split_long) as id lists."""
        return list(self._pieces(sentences, features))

    def _pieces(self, sentences: list[list[str]], features: list[list[list[str]]] | None = None) -> Iterator[dict]:
        if self.subwords:
            yield from self._wordpiece_pieces(sentences)
            return
        for n, tokens in enumerate(sentences):
            cols = list(features[n]) if features else []
            for start, end in split_long(len(tokens), self.piece_length, tokens):
                piece_cols = [c[start:end] for c in cols]
                if self.bigrams:  # the last token's right neighbour is the next piece's first token
                    piece_cols.append(_bigrams(tokens[start:end], tokens[end] if end < len(tokens) else END))
                yield self._encode_piece(tokens[start:end], piece_cols, n, start)

    def _encode_piece(self, tokens: list[str], cols: list[list[str]], sentence: int, start: int) -> dict:
        lower, get, unk = self.vocab.lowercase, self.vocab.index.get, self.vocab.unk_id
        ids = [get(t.lower() if lower else t, unk) for t in tokens]
        feats = [[index.get(t, 1) for t in col] for index, col in zip(self.feature_index, cols)]
        return {"ids": ids, "tokens": tokens, "features": feats, "sentence": sentence, "start": start}

    def _wordpiece_pieces(self, sentences: list[list[str]]) -> Iterator[dict]:
        """A BERT tagger's pieces: windows of whole words of at most `piece_length` WordPieces, each
        with its pieces' ids, the position of each word's first piece among them ("first"), and
        the whole sentence's WordPiece count ("length"). A word the tokenizer empties reads as
        [UNK]; one of more pieces than a window holds keeps those that fit."""
        budget, unk = self.piece_length, self.vocab.unk_id
        for chunk_start in range(0, len(sentences), WORDPIECE_CHUNK):
            chunk = sentences[chunk_start: chunk_start + WORDPIECE_CHUNK]
            for n, per_word in enumerate(self.vocab.word_pieces(chunk), chunk_start):
                tokens = sentences[n]
                words = [(ids or [unk])[:budget] for ids in per_word]
                costs = [len(w) for w in words]
                for start, end in split_long(len(tokens), budget, tokens, costs):
                    first = list(accumulate(costs[start: end - 1], initial=0))
                    yield {"ids": [i for w in words[start:end] for i in w], "first": first,
                           "tokens": tokens[start:end], "features": [], "sentence": n, "start": start,
                           "length": sum(costs)}

    def _encode_split(self, sentences: list[Sentence]):
        pieces = self.encode([s.tokens for s in sentences], [s.features for s in sentences])
        for piece in pieces:
            tags = sentences[piece["sentence"]].tags
            piece["tags"] = [self.tag_index[t] for t in tags[piece["start"]: piece["start"] + len(piece["tokens"])]]
        return pieces, sentences

    def _batch(self, pieces: list[dict]) -> dict[str, torch.Tensor]:
        ids, mask = pad([p["ids"] for p in pieces], self.vocab.pad_id)
        if self.subwords:
            first, words = pad([p["first"] for p in pieces], 0)
            return {"ids": ids, "mask": mask, "first": first, "word_mask": words}  # first, word_mask (B, W)
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
        return model.loss(*self._scores(model, batch, batch["tags"]))

    def _scores(self, model, batch: dict[str, torch.Tensor], *tags: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(tag scores (B, W, K), *tags, the words' mask (B, W)) of a batch."""
        if self.subwords:
            return model(batch["ids"], batch["mask"], batch["first"]), *tags, batch["word_mask"]
        scores = model(batch["ids"], batch["mask"], batch["chars"], batch["char_index"], batch.get("features"))
        return scores, *tags, batch["mask"]

    # ------------------------------------------------------------ prediction and evaluation

    def _scored_batches(self, model, pieces: list[dict], batch_size: int):
        """(indices into pieces, tag scores (B, T, K), mask) per batch of similar lengths; empty
        pieces are left out (they get no tags)."""
        device = next(model.parameters()).device
        lengths = [len(p["ids"]) for p in pieces]
        for batch_ids in token_capped(bucket_batches(lengths, batch_size), lengths, MAX_BATCH_TOKENS):
            chosen = [i for i in batch_ids if pieces[i]["ids"]]
            if chosen:
                batch = {k: v.to(device) for k, v in self._batch([pieces[i] for i in chosen]).items()}
                scores, mask = self._scores(model, batch)
                yield chosen, scores.float(), mask

    @torch.inference_mode()
    def tag_pieces(self, model, pieces: list[dict], batch_size: int = EVAL_BATCH) -> list[list[str]]:
        out: list[list[str]] = [[] for _ in pieces]
        for chosen, scores, mask in self._scored_batches(model, pieces, batch_size):
            for i, path in zip(chosen, model.decode(scores, mask)):
                out[i] = [self.labels[k] for k in path]
        return out

    def tag_sentences(self, model, sentences: list[list[str]], features=None,
                      batch_size: int = EVAL_BATCH) -> list[list[str]]:
        """Tags per sentence; long sentences are tagged in pieces and joined back. Pieces are made
        and tagged about GROUP_TOKENS tokens at a time, so that their ids and features take bounded
        memory however long a line is."""
        out: list[list[str]] = [[] for _ in sentences]
        group: list[dict] = []
        size = 0
        for piece in chain(self._pieces(sentences, features), [None]):
            if piece is not None:
                group.append(piece)
                size += len(piece["ids"]) + 1
            if group and (piece is None or size >= GROUP_TOKENS):
                for done, tags in zip(group, self.tag_pieces(model, group, batch_size)):
                    out[done["sentence"]].extend(tags)
                group, size = [], 0
        return out

    @torch.inference_mode()
    def nbest_sentences(self, model, sentences: list[list[str]], n: int,
                        batch_size: int = EVAL_BATCH) -> list[list[tuple[list[str], float]]]:
        """The n most probable tag sequences per sentence, with their probabilities under the CRF.
        A sentence tagged in pieces is scored by its pieces' CRFs together, so its alternatives are
        the best combinations of the pieces' own (see _combined_nbest) and the first is the one
        `tag_sentences` gives."""
        if model.crf is None:
            raise DataError("--n-best needs a model with a CRF output layer (bilstm_crf)")
        pieces = self.encode(sentences)
        per_piece: list[list[tuple[list[str], float]]] = [[] for _ in pieces]
        for chosen, scores, mask in self._scored_batches(model, pieces, batch_size):
            log_z = model.crf.log_partition(scores, mask).tolist()
            for i, paths, z in zip(chosen, model.crf.decode_nbest(scores, mask, n), log_z):
                per_piece[i] = [([self.labels[k] for k in path], score - z) for path, score in paths]
        grouped: list[list[list[tuple[list[str], float]]]] = [[] for _ in sentences]
        for piece, alternatives in zip(pieces, per_piece):
            grouped[piece["sentence"]].append(alternatives)
        return [_combined_nbest(alternatives, n) for alternatives in grouped]

    def check_options(self, options: dict) -> None:
        check_mode(options.get("tokenize", "auto"))

    def predict(self, model, ids: list, texts: list[str], options: dict) -> list[dict]:
        """Records {"id", "tokens", "tags", "spans"}, each span with its `char_start` and `char_end` in
        the text; with the `n_best` option, "n_best": the best whole-sentence alternatives with their
        probabilities; with `token_offsets`, "token_offsets": [[start, end], ...], one per token. A
        BERT tagger's record of a sentence too long to read at once has "truncated": {"length": its
        WordPieces, "window": the most read at once, "windows": how many it was tagged in}."""
        batch_size, n_best = options.get("batch_size", EVAL_BATCH), options.get("n_best")
        mode = options.get("tokenize", "auto")
        offsets = [self.token_spans(t, mode) for t in texts]
        sentences = [[t[s:e] for s, e in spans] for t, spans in zip(texts, offsets)]
        if self.extra_columns:
            raise DataError(f"this model reads {self.extra_columns} extra feature column(s) per token",
                            "tag a CoNLL file with `dlcli evaluate`, or train without data.feature_columns")
        alternatives = self.nbest_sentences(model, sentences, n_best, batch_size) if n_best else None
        if alternatives is not None:
            tags = [paths[0][0] if paths else [] for paths in alternatives]
        else:
            tags = self.tag_sentences(model, sentences, None, batch_size)
        cuts = self.cut_notes(sentences) if self.subwords else {}
        records = []
        for n, (id_, tokens, sentence_tags) in enumerate(zip(ids, sentences, tags)):
            record = {"id": id_, "tokens": tokens, "tags": sentence_tags,
                      "spans": self.spans_of(texts[n], offsets[n], sentence_tags)}
            if options.get("token_offsets"):
                record["token_offsets"] = [list(span) for span in offsets[n]]
            if alternatives is not None:
                record["n_best"] = [{"tags": t, "probability": round(p, 6)} for t, p in alternatives[n]]
            if n in cuts:
                record["truncated"] = cuts[n]
            records.append(record)
        return records

    def cut_notes(self, sentences: list[list[str]]) -> dict[int, dict]:
        """Sentence index -> "truncated" note, for the sentences tagged in more than one window."""
        notes: dict[int, dict] = {}
        for piece in self._pieces(sentences):
            if piece["start"] > 0:
                note = notes.setdefault(piece["sentence"], {"length": piece["length"], "window": self.piece_length,
                                                            "windows": 1})
                note["windows"] += 1
        return notes

    def spans_of(self, text: str, offsets: list[tuple[int, int]], tags: list[str]) -> list[dict]:
        """Spans over tokens (start, end: token indices, end exclusive) and over `text` (char_start,
        char_end); "text" is `text[char_start:char_end]`, as written."""
        if self.scheme == "none":
            return []
        out = []
        for s, e, kind in spans(tags):
            first, last = offsets[s][0], offsets[e - 1][1]
            out.append({"start": s, "end": e, "label": kind, "text": text[first:last], "char_start": first,
                        "char_end": last})
        return out

    def evaluate(self, model, records: list[Sentence] | None = None, options: dict | None = None) -> dict:
        """Span P/R/F1 (conlleval) and token accuracy on the dev split or on `records`."""
        if records is None:
            pieces, records = self.splits["dev"]
            pred = _joined(pieces, self.tag_pieces(model, pieces), len(records))
        else:
            if records and len(records[0].features) != self.extra_columns:
                raise DataError(f"the model needs {self.extra_columns} feature column(s); the data has "
                                f"{len(records[0].features)}", "set --feature-columns as in training")
            pred = self.tag_sentences(model, [s.tokens for s in records], [s.features for s in records])
        return tagging_report([s.tags for s in records], pred, with_spans=self.scheme != "none")


def _joined(pieces: list[dict], tagged: list[list[str]], n: int) -> list[list[str]]:
    """Per-piece tags put back together, one list per sentence."""
    out: list[list[str]] = [[] for _ in range(n)]
    for piece, tags in zip(pieces, tagged):
        out[piece["sentence"]].extend(tags)
    return out


def _combined_nbest(pieces: list[list[tuple[list[str], float]]], n: int) -> list[tuple[list[str], float]]:
    """The n best whole-sentence (tags, probability) from each piece's n best (tags, log-probability).
    Pieces are tagged independently, so a path's log-probability is the sum of its pieces'; the
    paths are kept as back-pointers until the end, so the cost stays linear in the sentence length."""
    if not pieces or any(not alternatives for alternatives in pieces):
        return []
    totals = [log_p for _, log_p in pieces[0]]
    links: list[list[tuple[int, int]]] = []  # per later piece, per kept path: (rank before it, its rank here)
    for alternatives in pieces[1:]:
        pairs = sorted(((total + log_p, i, j) for i, total in enumerate(totals)
                        for j, (_, log_p) in enumerate(alternatives)), key=lambda pair: -pair[0])[:n]
        totals = [total for total, _, _ in pairs]
        links.append([(i, j) for _, i, j in pairs])
    out = []
    for last, total in enumerate(totals):
        parts, rank = [], last
        for alternatives, link in zip(reversed(pieces[1:]), reversed(links)):
            rank, j = link[rank]
            parts.append(alternatives[j][0])
        parts.append(pieces[0][rank][0])
        out.append(([tag for part in reversed(parts) for tag in part], math.exp(total)))
    return out


def _bigrams(tokens: list[str], after: str = END) -> list[str]:
    """Each token joined with its right neighbour; `after` is the last one's."""
    return [a + b for a, b in zip(tokens, [*tokens[1:], after])]


def _ill_formed_notes(sentences: list[Sentence], scheme: str, source: str | None) -> list[str]:
    """Gold spans that open with a continuation tag: reported once per file, scored as they are."""
    bad = [s.line for s in sentences if ill_formed(s.tags, scheme) is not None]
    if not bad:
        return []
    return [f"{source}: {len(bad)} sentence(s) have a span opening with a continuation tag (I- without B-; "
            f"first in the sentence at line {bad[0]}); kept as they are and scored as conlleval does"]
