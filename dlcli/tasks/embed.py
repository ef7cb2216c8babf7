"""Word embeddings: a corpus -> word vectors (word2vec, GloVe), scored on analogies and word-pair
similarities, queried from the shell (`dlcli embed`: vectors, neighbours, analogies).

The corpus is plain text, one sentence or paragraph per line (gz allowed), tokenized by the
recipe's word vocabulary (`vocab.lowercase`, `vocab.pattern`; `min_freq`/`max_size` are word2vec's
min_count/max_vocab). It is read once into word ids on disk (dlcli/text/corpus.py), so memory
grows with the vocabulary, not the corpus. The dev file is an analogy file (questions-words
format) or a word-pair similarity file (WordSim-353, SimLex-999).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlcli.errors import DataError, RecipeError
from dlcli.models.embedding import EmbeddingTables
from dlcli.recipe import bounded, choice
from dlcli.steps import KERNEL_STEPS
from dlcli.tasks import DataSection, PredictSection, Task
from dlcli.text import embedding_eval as ev
from dlcli.text.corpus import Corpus, read_raw, remap, side_by_side
from dlcli.text.readers import file_lines
from dlcli.text.vocab import PAD, UNK, TokenVocab, ranked_ids
from dlcli.text.vocabularies import from_dict

SPECIALS = 2  # ids 0 and 1 (padding, unknown) hold no word
ENCODER_OPTIONS = {"pool": "--pool", "normalize": "--normalize", "tokens": "--tokens", "max_length": "--max-length",
                   "layer": "--layer"}


def _kernel_only() -> RecipeError:
    """For autograd's entry points, which check_recipe keeps every embedding recipe away from."""
    return RecipeError("train.optimizer: embeddings train with their model's kernel (hogwild_sgd, hogwild_adagrad)")


@dataclass(frozen=True)
class EmbedData(DataSection):
    format: str = choice("text", ("text",))  # train: one sentence or paragraph per line; dev: see the module
    cache_dir: str | None = None  # the corpus as word ids while training; default: a temporary folder


@dataclass(frozen=True)
class EmbedPredict(PredictSection):
    top_k: int = bounded(10, ge=1)  # neighbours and analogy answers listed
    restrict: int | None = bounded(None, ge=1)  # search only the most frequent words (and score analogies over them)


@dataclass
class Split:
    """What a dev or evaluation file holds: analogy questions or word pairs."""

    kind: str  # ev.ANALOGY | ev.SIMILARITY
    items: list


def checkpoint_vectors(path) -> tuple[list[str], np.ndarray]:
    """(words, vectors) of a dlcli embeddings checkpoint, for `data.vectors` of another recipe."""
    from dlcli.loading import load_model

    loaded = load_model(path)
    if loaded.data["task"] != EmbedTask.name:
        raise DataError(f"data.vectors: {path} is a {loaded.data['task']} model, not word embeddings")
    return loaded.task.export_vectors(loaded.model)


class TextFile:
    """A file `read` names: the corpus (its lines, read lazily) or a dev/evaluation file (`split`)."""

    def __init__(self, path: Path, encoding: str):
        self.path, self.encoding = path, encoding

    def __str__(self) -> str:
        return str(self.path)

    def lines(self):
        return (text for _, text in file_lines(self.path, self.encoding))

    def split(self) -> Split:
        return Split(*ev.read_file(self.path, self.encoding))


class EmbedTask(Task):
    name = "embed"
    command = "dlcli embed"
    data_section = EmbedData
    predict_section = EmbedPredict
    metrics = {"analogy_accuracy": True, "spearman": True}
    evaluate_options = frozenset({"restrict"})
    autograd = False  # word2vec and GloVe train with their kernels only, NumPy tables without torch
    model_positional = 1  # vocab_size

    def __init__(self, vocab: TokenVocab):
        self.vocab = vocab
        self.notes: list[str] = []
        self.counts: np.ndarray | None = None  # corpus frequency of every vocabulary id
        self.corpus: Corpus | None = None
        self._corpus_size = (0, 0)  # (words, lines), for describe()
        self.entries = None  # co-occurrences, for a model that trains on them
        self.dev: Split | None = None
        self._workdir: Path | None = None
        self._order = None  # this epoch's EntryOrder of the co-occurrence entries
        self._vectors: np.ndarray | None = None  # the loaded model's vectors, for prediction

    # ------------------------------------------------------------ construction

    @classmethod
    def check_recipe(cls, recipe) -> None:
        if recipe.vocab.type != "word":
            raise RecipeError(f"vocab.type: embeddings are trained over words, not {recipe.vocab.type!r}",
                              "use vocab type word (lowercase, pattern, min_freq, max_size)")
        if recipe.train.ema_decay:
            raise RecipeError("train.ema_decay: word vectors keep no shadow weights (their kernels update in place)",
                              "remove train.ema_decay")
        if recipe.train.optimizer.type not in KERNEL_STEPS:
            raise RecipeError(f"train.optimizer: {recipe.model.type} trains with its own kernel, not "
                              f"{recipe.train.optimizer.type!r}",
                              "use hogwild_sgd for word2vec, hogwild_adagrad for glove")

    @classmethod
    def read(cls, path, data) -> TextFile:
        """The file, read when it is used: as the corpus (train), or as analogy questions or word
        pairs (dev, `dlcli evaluate`)."""
        return TextFile(Path(path), data.encoding)

    @classmethod
    def from_records(cls, recipe, vocabs, train, dev, init=None) -> EmbedTask:
        _, knobs = vocabs["vocab"]
        probe = TokenVocab("word", [PAD, UNK], knobs.get("lowercase", False), knobs["pattern"])
        workdir = Path(tempfile.mkdtemp(prefix="dlcli-corpus-", dir=recipe.data.cache_dir))
        types, counts, raw = read_raw(train.lines(), probe.tokenize, workdir)
        if not raw.num_tokens:
            raise DataError(f"{train.path}: the corpus holds no words")
        min_freq = knobs.get("min_freq", 1)
        kept = ranked_ids(types, counts, min_freq, knobs.get("max_size"), SPECIALS)
        if len(kept) < 2:
            raise DataError(f"{train.path}: fewer than two words occur at least vocab.min_freq={min_freq} times",
                            "lower vocab.min_freq, or train on more text")
        vocab = TokenVocab("word", [PAD, UNK] + [types[i] for i in kept], probe.lowercase, probe.pattern)
        new_ids = np.full(len(types), -1, dtype=np.int64)
        new_ids[kept] = np.arange(SPECIALS, SPECIALS + len(kept))
        task = cls(vocab)
        task._workdir = workdir
        weakref.finalize(task, shutil.rmtree, workdir, True)
        task.corpus = remap(raw, new_ids, workdir)
        task._corpus_size = task.corpus.num_tokens, task.corpus.num_sentences
        (workdir / "raw.ids").unlink(missing_ok=True)
        task.counts = np.zeros(vocab.size, dtype=np.int64)
        task.counts[SPECIALS:] = counts[kept]
        task.dev = dev.split() if dev is not None else None
        covered = task.counts.sum() / max(1, counts.sum())
        task.notes.append(f"{train.path}: {raw.num_tokens:,} words, {len(types):,} distinct; {len(kept):,} "
                          f"kept (min_freq {min_freq}), {covered:.1%} of the running words")
        return task

    @classmethod
    def from_checkpoint(cls, data: dict) -> EmbedTask:
        return cls(from_dict(data["vocab"]))

    def payload(self) -> dict:
        return {"vocab": self.vocab.to_dict()}

    def model_sizes(self) -> tuple:
        return (self.vocab.size,)

    def describe(self) -> str:
        return f"{self._corpus_size[0]:,} words in {self._corpus_size[1]:,} lines, vocabulary " \
               f"{self.vocab.size - SPECIALS:,}"

    def prepare_model(self, model: EmbeddingTables) -> None:
        model.fit_counts(self.counts)
        if model.trains_on == "cooccurrence":
            from dlcli.text.cooccurrence import count_cooccurrences

            self.entries = count_cooccurrences(self.corpus.sentences(), self.vocab.size, model.window,
                                               model.count_memory_mb, self._workdir)
            self.notes.append(f"{len(self.entries):,} co-occurring word pairs ({self.entries.shards} shards spilled)")
            self.corpus = None  # counted: its word ids are not read again

    @property
    def default_metric(self) -> str:
        return "spearman" if self.dev is not None and self.dev.kind == "similarity" else "analogy_accuracy"

    # ------------------------------------------------------------ training

    @property
    def has_dev(self) -> bool:
        return self.dev is not None

    @property
    def num_train(self) -> int:
        return len(self.entries.values) if self.entries is not None else self.corpus.num_sentences

    def train_batches(self, batch_size: int, generator) -> list:
        raise _kernel_only()

    def kernel_batches(self, batch_size: int, seed: int, parts: int = 1) -> list:
        """Sentences in corpus order, as word2vec reads them, each of the kernel's `parts` threads
        streaming its own stretch (corpus.side_by_side); or consecutive ranges of the epoch's
        shuffled co-occurrence entries (a permutation seeded by `seed`, computed as it is read)."""
        if self.entries is None:
            return side_by_side(self.corpus.starts, batch_size, parts)
        from dlcli.kernels.glove import EntryOrder

        self._order = EntryOrder.shuffled(len(self.entries), int(np.random.default_rng(seed).integers(2**62)))
        n = self.num_train
        return [range(i, min(n, i + batch_size)) for i in range(0, n, batch_size)]

    def collate_kernel(self, batch) -> dict:
        if self.entries is not None:
            return {"order": self._order[batch.start:batch.stop], "entries": self.entries}
        starts = self.corpus.starts
        ranges = [r for r in batch.ranges if len(r)]
        lengths = np.concatenate([np.diff(starts[r.start:r.stop + 1]) for r in ranges])
        return {"ids": np.concatenate([self.corpus.read(starts[r.start], starts[r.stop]) for r in ranges]),
                "starts": np.concatenate([[0], np.cumsum(lengths)])}

    def collate(self, indices):
        raise _kernel_only()

    def loss(self, model, batch):
        raise _kernel_only()

    # ------------------------------------------------------------ scoring

    def word_vectors(self, model: EmbeddingTables) -> np.ndarray:
        """The model's vectors, float32: its own table where it gives one (not a copy)."""
        return np.asarray(model.vectors(), dtype=np.float32)

    def export_vectors(self, model) -> tuple[list[str], np.ndarray]:
        """(words, their vectors) in vocabulary order, without the padding and unknown rows."""
        return self.vocab.tokens[SPECIALS:], self.word_vectors(model)[SPECIALS:]

    def evaluate(self, model, records: TextFile | None = None, options: dict | None = None) -> dict:
        """analogy_accuracy (semantic, syntactic, per_section, coverage) or spearman (coverage)."""
        split = self.dev if records is None else records.split()
        vectors, index = self.word_vectors(model), self.vocab.index
        restrict = (options or {}).get("restrict")
        if split.kind == "analogy":
            # vectors made for this call (w + c) are normalized in place: a table's copy less at the run's peak
            made = not any(np.may_share_memory(vectors, table) for table in model.parameters())
            return ev.analogy_report(vectors, index, split.items, self.vocab.lowercase, restrict, scratch=made)
        return ev.similarity_report(vectors, index, split.items, self.vocab.lowercase)

    # ------------------------------------------------------------ prediction

    def check_options(self, options: dict) -> None:
        given = [flag for key, flag in ENCODER_OPTIONS.items() if options.get(key) not in (None, False)]
        if given:
            raise RecipeError(f"{given[0]} works on an encoder (a bert, task mlm; an elmo, task lm); this is a "
                              "word-vectors model",
                              "its options: --words, --neighbors, --analogy, --top-k, --restrict, --export")

    def predict(self, model, ids: list, texts: list[str], options: dict) -> list[dict]:
        """Per line: its vector (the mean of its known words'), or with option `words` one record
        per token, or with `neighbors` the nearest words, or with `analogy` (lines "a b c") the best
        d for b - a + c. Unknown words are listed in "unknown", never dropped in silence."""
        from dlcli.tasks.embed_output import predict_records

        if self._vectors is None:  # a loaded model does not change while it predicts
            self._vectors = self.word_vectors(model).copy()
            self._vectors[:SPECIALS] = 0.0  # padding and unknown are never an answer
        return predict_records(self.vocab, self._vectors, ids, texts, options)
