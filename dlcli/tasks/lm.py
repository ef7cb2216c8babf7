"""Language modelling: plain text -> next-token prediction, scored by perplexity; and generation.

Data: plain text, one sentence, paragraph or document per line (gz allowed); blank lines are
skipped. Each line's tokens are followed by an end token, as in Zaremba et al. 2014's Penn
Treebank set-up. Two vocabularies:
- `vocab: {type: word, lowercase, pattern, min_freq, max_size}`, built by the task: ids 0 `<pad>`,
  1 `<unk>`, 2 `<eos>` (the end token), then the words by frequency. A corpus that already holds
  `<unk>` (PTB does) has it mapped to the vocabulary's own unknown id, never counted as a second word.
- `vocab: {type: byte_bpe, vocab_size, min_freq}`: GPT-2's byte-level BPE (dlcli/text/byte_bpe.py)
  trained on the training file; the end token is `<|endoftext|>`, and nothing is unknown.
The corpus is read once into ids on disk (dlcli/text/corpus.py).

Two families of models (dlcli/models/language_model.py), batched differently:

Recurrent models (rnn_lm; Zaremba et al.'s batching): the corpus as one stream of ids, cut into `train.batch_size`
parallel streams (the last N mod B tokens are left out); an epoch walks them in consecutive
windows of `data.bptt` tokens, and the model's state is carried from each window to the next
(detached: truncated BPTT) and reset to zero at the start of every epoch. A window's loss is
summed over its time steps and averaged over the streams, as in the paper's code, so lr 1 and
grad_clip 5 mean what they mean there (the same update as a per-token mean with lr x bptt and
clip 5 / bptt). The carried state is part of the train state (`train_state`): --resume is exact
mid-epoch too. Under torchrun the corpus is cut into ranks x batch_size streams, each rank
walking its own batch_size of them.

Models with a context length (gpt): the corpus cut into consecutive blocks of `context_length`
inputs (each block's targets run one token further, into the next block), dealt in a new random
order every epoch, `train.batch_size` blocks a step; the loss is the mean over the batch's tokens.

Scoring (the dev metric while training, `dlcli evaluate`): every token of the file, each end
token included, is predicted once, the first from the context of an end token (as if the file
followed a line end). A recurrent model: `data.eval_streams` (default 1) cuts the file into that
many contiguous streams scored side by side, each with its state carried through all of it. With
1, each token is conditioned on everything before it, and the result depends on no batch or
window size: the paper's test protocol. More streams are faster on a big model, and each of the
cuts starts a stream from the zero state (the paper's validation used the 20 training streams).
A model with a context length: sliding windows of that length, each after the first moving on by
half of it and scoring only its new tokens, so every token but the first window's sees at least
half a context before it.

`dlcli predict`: each line scored on its own, from the start of a text (the end token):
{"id", "tokens", "n_tokens", "loss", "perplexity", "unknown"} (the tokens scored, the end token
last; loss in nats per token; the words outside the vocabulary, scored as `<unk>`).

`dlcli generate` (see `generate`): continuations of prompts, sampled through dlcli/decoding.py.

Bidirectional models (elmo) read each line on its own, both ways, in pieces of at most `data.bptt`
predictions; they are scored line by line, and `dlcli embed` (`predict`) prints their contextual
vectors: see dlcli/tasks/lm_sentences.py.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import weakref
import zlib
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dlcli import decoding
from dlcli.device import unwrapped
from dlcli.errors import DataError, RecipeError
from dlcli.recipe import bounded, choice
from dlcli.tasks import DataSection, PredictSection, Task, check_section_options, lm_sentences, refuse_foreign_options
from dlcli.text.batching import bucket_batches, shuffled_batches
from dlcli.text.byte_bpe import build_byte_bpe_vocab
from dlcli.text.corpus import encode_lines, read_raw, remap
from dlcli.text.readers import file_lines
from dlcli.text.vocab import PAD, UNK, TokenVocab, ranked_ids
from dlcli.text.vocabularies import from_dict

EOS = "<eos>"
SPECIALS = [PAD, UNK, EOS]  # ids 0, 1, 2
UNK_ID, EOS_ID = 1, 2
EVAL_LOGITS = 1 << 23  # logits per forward pass when scoring (32 MB in fp32): bounds the memory
IGNORE = -100  # target of a padded position


@dataclass(frozen=True)
class LMData(DataSection):
    format: str = choice("text", ("text",))  # one sentence, paragraph or document per line
    bptt: int = bounded(35, ge=1)  # tokens per training window (truncated backpropagation through time)
    eval_streams: int = bounded(1, ge=1)  # streams a scored file is cut into; 1: exact (see the module)
    cache_dir: str | None = None  # the corpus as token ids while training; default: a temporary folder


@dataclass(frozen=True)
class LMPredict(PredictSection):
    batch_size: int = bounded(32, ge=1)  # lines scored, or rows generated, together
    # dlcli generate's defaults (see dlcli/decoding.py)
    max_new_tokens: int = bounded(64, ge=1)
    temperature: float = bounded(1.0, ge=0)  # 0: greedy
    top_k: int = bounded(0, ge=0)  # 0: every token
    top_p: float = bounded(1.0, gt=0, le=1)
    num_samples: int = bounded(1, ge=1)  # continuations per prompt
    seed: int = bounded(0, ge=0)


GENERATION = {f.name: f.default for f in dataclasses.fields(LMPredict)}


@dataclass
class TextFile:
    """A file `read` names, read lazily, with the data section it is read by."""

    path: Path
    data: LMData

    def lines(self):
        return (text for _, text in file_lines(self.path, self.data.encoding))


def line_tokenizer(vocab: TokenVocab) -> Callable[[str], list[str]]:
    """A line's tokens followed by EOS (none for a blank line). A literal `<unk>` stays one token
    whatever the vocabulary's pattern splits it into."""
    tokenize = vocab.tokenize

    def tokens_of(line: str) -> list[str]:
        if UNK in line:
            pieces = line.split(UNK)
            tokens = tokenize(pieces[0])
            for piece in pieces[1:]:
                tokens.append(UNK)
                tokens += tokenize(piece)
        else:
            tokens = tokenize(line)
        if tokens:
            tokens.append(EOS)
        return tokens

    return tokens_of


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _state_to(state, device):
    return tuple(s.to(device) for s in state) if isinstance(state, tuple) else state.to(device)


class LMTask(Task):
    name = "lm"
    command = "dlcli generate"
    data_section = LMData
    predict_section = LMPredict
    metrics = {"perplexity": False, "loss": False}
    model_positional = 1  # vocab_size

    def __init__(self, vocab, bptt: int = 35, eval_streams: int = 1):
        self.vocab, self.bptt, self.eval_streams = vocab, bptt, eval_streams
        self.subword = vocab.kind == "byte_bpe"
        self.eos_id, self.unk_id = vocab.eos_id, vocab.unk_id  # unk_id None: byte-level, nothing unknown
        self.notes: list[str] = []
        if not self.subword:
            self.tokenize = line_tokenizer(vocab)
            self._ids = {t: i for t, i in vocab.index.items() if i != vocab.pad_id}  # a literal <pad> is unknown
        self.corpus: np.ndarray | None = None  # the training corpus's ids, one end token after each line
        self.source: Path | None = None  # its file, for messages
        self.batch_size = 1  # streams or blocks per rank and step
        self.context: int | None = None  # the model's context length (prepare_model): None, streams
        self.streams: np.ndarray | None = None  # (S, L): the training corpus cut into S streams
        self.windows = 0  # per stream and epoch
        self.blocks = 0  # blocks of `context` inputs, for a model with a context length
        self.dev_ids: np.ndarray | None = None
        self._state = None  # the state carried from the last training window
        self._workdir: Path | None = None
        self.starts: np.ndarray | None = None  # (lines + 1,): where each line of the corpus starts
        self.words = None  # (distinct tokens, each corpus position's one): the words as written, until prepare_model
        self.dev_file: TextFile | None = None
        self.bidirectional = False  # the model reads lines both ways (lm_sentences); it embeds, not generates
        self.sentences: lm_sentences.Sentences | None = None

    # ------------------------------------------------------------ construction

    @classmethod
    def check_recipe(cls, recipe) -> None:
        if recipe.vocab.type not in ("word", "byte_bpe"):
            raise RecipeError(f"vocab.type: the lm task builds a word or byte_bpe vocabulary, "
                              f"not {recipe.vocab.type!r}",
                              "use vocab type word (lowercase, pattern, min_freq, max_size) or byte_bpe "
                              "(vocab_size, min_freq)")
        for key in ("bos", "eos"):
            if key in recipe.vocab.kwargs:
                raise RecipeError(f"vocab.{key}: the lm task ends every line with an end token itself",
                                  f"remove vocab.{key}")

    @classmethod
    def read(cls, path, data) -> TextFile:
        return TextFile(Path(path), data)

    @classmethod
    def from_records(cls, recipe, vocabs, train: TextFile, dev: TextFile | None, init=None) -> LMTask:
        builder, knobs = vocabs["vocab"]
        workdir = Path(tempfile.mkdtemp(prefix="dlcli-lm-", dir=recipe.data.cache_dir))
        try:
            if builder is build_byte_bpe_vocab:
                task, ids, note = cls._subword_corpus(recipe, builder, knobs, train, workdir)
            else:
                task, ids, note = cls._word_corpus(recipe, knobs, train, workdir)
        except BaseException:
            shutil.rmtree(workdir, True)
            raise
        task._workdir = workdir
        weakref.finalize(task, shutil.rmtree, workdir, True)
        task.corpus, task.source, task.batch_size = ids, train.path, recipe.train.batch_size
        if dev is not None:
            task.dev_ids, task.dev_file = task.encode_file(dev), dev
        task.notes.append(note)
        return task

    @classmethod
    def _word_corpus(cls, recipe, knobs, train: TextFile, workdir: Path):
        probe = TokenVocab("word", list(SPECIALS), knobs.get("lowercase", False), knobs["pattern"], eos=True)
        types, counts, raw = read_raw(train.lines(), line_tokenizer(probe), workdir)
        if not raw.num_tokens:
            raise DataError(f"{train.path}: the corpus holds no tokens", "is it empty, or all blank lines?")
        # A special written in the text ("<unk>" in PTB) is never a ranked word; it reads as that
        # special, except "<pad>", which reads as unknown (as `_ids` maps text).
        written = {t: types.index(t) for t in SPECIALS if t in types}
        ranking = counts.copy()
        ranking[list(written.values())] = 0
        min_freq = knobs.get("min_freq", 1)
        kept = ranked_ids(types, ranking, max(1, min_freq), knobs.get("max_size"), len(SPECIALS))
        vocab = TokenVocab("word", list(SPECIALS) + [types[i] for i in kept], probe.lowercase, probe.pattern, eos=True)
        task = cls(vocab, recipe.data.bptt, recipe.data.eval_streams)
        new_ids = np.full(len(types), UNK_ID, dtype=np.int64)
        new_ids[kept] = np.arange(len(SPECIALS), len(SPECIALS) + len(kept))
        for t, i in written.items():
            new_ids[i] = task._ids.get(t, UNK_ID)
        corpus = remap(raw, new_ids, workdir)
        task.starts, task.words = corpus.starts, (types, raw.ids)  # raw.ids: aligned with corpus.ids (no word dropped)
        unknown = float(np.mean(corpus.ids == UNK_ID))
        note = (f"{train.path}: {corpus.num_tokens:,} tokens in {corpus.num_sentences:,} lines, "
                f"{len(types) - len(written):,} distinct words; vocabulary {vocab.size - len(SPECIALS):,} words "
                f"(min_freq {min_freq}), {unknown:.2%} of the tokens <unk>")
        return task, corpus.ids, note

    @classmethod
    def _subword_corpus(cls, recipe, builder, knobs, train: TextFile, workdir: Path):
        vocab = builder((line.strip() for line in train.lines()), **knobs)
        task = cls(vocab, recipe.data.bptt, recipe.data.eval_streams)
        corpus = encode_lines(train.lines(), task.line_ids_batch, workdir)
        if not corpus.num_tokens:
            raise DataError(f"{train.path}: the corpus holds no tokens", "is it empty, or all blank lines?")
        task.starts = corpus.starts
        note = (f"{train.path}: {corpus.num_tokens:,} tokens in {corpus.num_sentences:,} lines; byte-level BPE "
                f"of {vocab.size:,} tokens")
        return task, corpus.ids, note

    def prepare_model(self, model) -> None:
        """Batch the corpus the way the model reads: streams for a recurrent state, blocks for a
        context length; lines, both ways, for a bidirectional model."""
        self.context, self.bidirectional = model.context_length, model.bidirectional
        if self.bidirectional:
            self.sentences = lm_sentences.sentences_for(self, model, self.bptt)
        elif self.context is None:
            self._cut_streams()
        else:
            self._cut_blocks()
        if self.words is not None and not model.word_bytes:
            self.words = None
            (self._workdir / "raw.ids").unlink(missing_ok=True)

    def _cut_streams(self) -> None:
        ids, batch_size = self.corpus, self.batch_size
        total = batch_size * _world_size()
        length = len(ids) // total
        if length < 2:
            raise DataError(f"{self.source}: {len(ids):,} tokens (with an end token per line) are too few for "
                            f"{total} streams of 2 tokens or more", "lower train.batch_size, or train on more text")
        self.streams = ids[: total * length].reshape(total, length)  # still memory-mapped
        self.windows = math.ceil((length - 1) / self.bptt)

    def _cut_blocks(self) -> None:
        self.blocks = (len(self.corpus) - 1) // self.context
        if self.blocks < 1:
            raise DataError(f"{self.source}: {len(self.corpus):,} tokens (with an end token per line) are too few "
                            f"for one block of model.context_length {self.context} and its next token",
                            "lower model.context_length, or train on more text")

    @classmethod
    def from_checkpoint(cls, content: dict) -> LMTask:
        data = content["recipe"]["data"]
        task = cls(from_dict(content["vocab"]), int(data.get("bptt", 35)), int(data.get("eval_streams", 1)))
        if (content.get("task_state") or {}).get("bidirectional"):
            task.bidirectional, task.command = True, "dlcli embed"
        return task

    def payload(self) -> dict:
        if self.bidirectional:  # absent otherwise, as before bidirectional models
            return {"vocab": self.vocab.to_dict(), "task_state": {"bidirectional": True}}
        return {"vocab": self.vocab.to_dict()}

    def model_sizes(self) -> tuple:
        return (self.vocab.size,)

    def describe(self) -> str:
        if self.sentences is not None:
            return (f"{len(self.corpus):,} tokens in {len(self.starts) - 1:,} lines as {len(self.sentences):,} "
                    f"pieces of at most {self.bptt} tokens, read both ways, vocabulary {self.vocab.size:,}")
        if self.context is not None:
            return (f"{len(self.corpus):,} tokens as {self.blocks:,} blocks of {self.context}, "
                    f"vocabulary {self.vocab.size:,}")
        total, length = self.streams.shape
        return (f"{total * length:,} tokens as {total} streams of {length:,}, {self.windows:,} windows of "
                f"{self.bptt} a stream per epoch, vocabulary {self.vocab.size:,}")

    # ------------------------------------------------------------ tokens

    def line_ids(self, line: str) -> list[int]:
        """A line's token ids, the end token last; none for a blank line."""
        return self.line_ids_batch([line])[0]

    def line_ids_batch(self, lines: list[str]) -> list[list[int]]:
        if self.subword:
            texts = [line.strip() for line in lines]
            eos = self.eos_id
            return [ids + [eos] if text else [] for ids, text in zip(self.vocab.encode_batch(texts), texts)]
        get = self._ids.get
        return [[get(t, UNK_ID) for t in self.tokenize(line)] for line in lines]

    def token_names(self, ids) -> list[str]:
        if self.subword:
            return [self.vocab.token_name(i) for i in ids]
        tokens = self.vocab.tokens
        return [tokens[i] for i in ids]

    def encode_file(self, file: TextFile) -> np.ndarray:
        """A scored file's token ids, one end token after each line, as one stream."""
        ids, chunk = array("i"), []
        for line in file.lines():
            chunk.append(line)
            if len(chunk) == 1024:
                ids.extend(i for line_ids in self.line_ids_batch(chunk) for i in line_ids)
                chunk = []
        ids.extend(i for line_ids in self.line_ids_batch(chunk) for i in line_ids)
        if not ids:
            raise DataError(f"{file.path}: holds no tokens", "is it empty, or all blank lines?")
        return np.frombuffer(ids, dtype=np.int32)

    # ------------------------------------------------------------ training

    @property
    def has_dev(self) -> bool:
        return self.dev_ids is not None

    @property
    def num_train(self) -> int:
        """Blocks, line pieces, or stream windows per epoch over all ranks: the trainer's steps per
        epoch x batch_size."""
        if self.sentences is not None:
            return len(self.sentences)
        return self.blocks if self.context is not None else self.windows * len(self.streams)

    def train_batches(self, batch_size: int, generator) -> list[list[int]]:
        """Blocks: a shuffle. Streams: window k of every stream, in order: entry k x ranks + r holds
        rank r's streams (the trainer deals entry i to rank i mod ranks). An index is window x
        streams + stream. Line pieces: batches of similar lengths."""
        if self.sentences is not None:
            return bucket_batches(self.sentences.length.tolist(), batch_size, generator)
        if self.context is not None:
            return shuffled_batches(self.blocks, batch_size, generator)
        total = len(self.streams)
        ranks = total // self.batch_size
        return [list(range(k * total + r * self.batch_size, k * total + (r + 1) * self.batch_size))
                for k in range(self.windows) for r in range(ranks)]

    def collate(self, indices: list[int]) -> dict:
        if self.sentences is not None:
            return self.sentences.collate(indices)
        if self.context is not None:
            C = self.context
            block = torch.from_numpy(np.stack([self.corpus[b * C: b * C + C + 1] for b in indices]).astype(np.int64))
            return {"ids": block[:, :-1], "target": block[:, 1:]}  # (B, C)
        window, _ = divmod(indices[0], len(self.streams))
        rows = np.array([i % len(self.streams) for i in indices])
        start = window * self.bptt
        steps = min(self.bptt, self.streams.shape[1] - 1 - start)
        block = torch.from_numpy(self.streams[rows, start:start + steps + 1].T.astype(np.int64))  # (T + 1, B)
        return {"ids": block[:-1], "target": block[1:], "window": torch.tensor(window)}

    def loss(self, model, batch: dict):
        if self.sentences is not None:
            return lm_sentences.loss(model, batch)
        ids, target = batch["ids"], batch["target"]
        if self.context is not None:  # (B, C): the mean over tokens
            logits = model(ids)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        net = unwrapped(model)  # (T, B): summed over time, averaged over streams (Zaremba et al.)
        if self._state is None or int(batch["window"]) == 0:  # a new epoch: the streams start over
            state = net.initial_state(ids.shape[1], ids.device)
        else:
            state = _state_to(self._state, ids.device)
        logits, state = model(ids, state)  # (T, B, V)
        self._state = net.detach_state(state)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="sum") / ids.shape[1]

    def train_state(self) -> dict:
        if self._state is None:
            return {}
        return {"rnn_state": [s.cpu() for s in (self._state if isinstance(self._state, tuple) else (self._state,))]}

    def load_train_state(self, state: dict) -> None:
        saved = state.get("rnn_state")
        self._state = None if not saved else tuple(saved) if len(saved) > 1 else saved[0]

    # ------------------------------------------------------------ scoring

    @torch.inference_mode()
    def stream_losses(self, model, inputs: np.ndarray, targets: np.ndarray) -> torch.Tensor:
        """Summed losses (nats, float64) of each column of (T, S) inputs and targets (IGNORE where
        padded), scored by a recurrent model from the zero state, carried through windows that
        bound the memory."""
        device = next(model.parameters()).device
        steps, streams = inputs.shape
        span = max(1, EVAL_LOGITS // (self.vocab.size * streams))
        state = model.initial_state(streams, device)
        total = torch.zeros(streams, dtype=torch.float64)
        for start in range(0, steps, span):
            x = torch.from_numpy(inputs[start:start + span]).to(device)
            y = torch.from_numpy(targets[start:start + span]).to(device)
            logits, state = model(x, state)
            losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                                     ignore_index=IGNORE, reduction="none")
            total += losses.view(y.shape).sum(0).double().cpu()
        return total

    @torch.inference_mode()
    def window_losses(self, model, streams: list[np.ndarray]) -> list[float]:
        """Summed losses (nats) of each stream's targets (every token after its first), scored by a
        model with a context length in sliding windows (see the module's docstring)."""
        C = model.context_length
        inputs, targets, owners = [], [], []
        for owner, stream in enumerate(streams):
            for x, y in _windows(stream, C):
                inputs.append(x)
                targets.append(y)
                owners.append(owner)
        totals = np.zeros(len(streams))
        device = next(model.parameters()).device
        rows = max(1, EVAL_LOGITS // (self.vocab.size * C))
        for start in range(0, len(inputs), rows):
            x = torch.from_numpy(np.stack(inputs[start:start + rows])).to(device)
            y = torch.from_numpy(np.stack(targets[start:start + rows])).to(device)
            logits = model(x)
            losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                                     ignore_index=IGNORE, reduction="none").view(y.shape).sum(1).double().cpu()
            np.add.at(totals, owners[start:start + rows], losses.numpy())
        return totals.tolist()

    def evaluate(self, model, records: TextFile | None = None, options: dict | None = None) -> dict:
        """perplexity, loss (nats per token), n_tokens (end tokens included), unk_rate (share of
        tokens scored as <unk>; word vocabularies) over the dev split or a file; a bidirectional
        model's each way too (forward_perplexity, backward_perplexity)."""
        if unwrapped(model).bidirectional:
            file = self.dev_file if records is None else records
            return lm_sentences.evaluate(self, unwrapped(model), file.lines())
        ids = self.dev_ids if records is None else self.encode_file(records)
        n = len(ids)
        stream = np.concatenate([[self.eos_id], ids]).astype(np.int64)
        net = unwrapped(model)
        result: dict = {"n_tokens": n}
        if net.context_length is not None:
            loss = self.window_losses(net, [stream])[0] / n
        else:
            streams = self.eval_streams if records is None else records.data.eval_streams
            cuts = np.linspace(0, n, min(streams, n) + 1).round().astype(np.int64)  # targets cuts[s]+1 .. cuts[s+1]
            longest = int(np.diff(cuts).max())
            inputs = np.zeros((longest, len(cuts) - 1), dtype=np.int64)
            targets = np.full_like(inputs, IGNORE)
            for s, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
                inputs[: b - a, s] = stream[a:b]
                targets[: b - a, s] = stream[a + 1:b + 1]
            loss = float(self.stream_losses(net, inputs, targets).sum()) / n
            result["streams"] = len(cuts) - 1
        if self.unk_id is not None:
            result["unk_rate"] = float(np.mean(ids == self.unk_id))
        return {"perplexity": _perplexity(loss), "loss": loss, **result}

    # ------------------------------------------------------------ prediction: scoring lines

    def check_options(self, options: dict) -> None:
        if self.bidirectional:
            lm_sentences.check_options(options)
            return
        refuse_foreign_options(options, GENERATION, "a language model, which samples its continuations",
                               "its options: --max-new-tokens, --temperature, --top-k, --top-p, --seed, "
                               "--num-samples, --batch-size")
        check_section_options(LMPredict, options)

    def predict(self, model, ids: list, texts: list[str], options: dict) -> list[dict]:
        if model.bidirectional:  # its records are contextual vectors (`dlcli embed`)
            return lm_sentences.embed(self, model, ids, texts, options)
        size = max(1, int(options.get("batch_size", GENERATION["batch_size"])))
        records = []
        for start in range(0, len(texts), size):
            records += self._score_lines(model, ids[start:start + size], texts[start:start + size])
        return records

    def _score_lines(self, model, ids: list, texts: list[str]) -> list[dict]:
        lines = [line or [self.eos_id] for line in self.line_ids_batch(texts)]
        if model.context_length is not None:
            totals = self.window_losses(model, [np.array([self.eos_id, *line], dtype=np.int64) for line in lines])
        else:
            longest = max(len(line) for line in lines)
            inputs = np.zeros((longest, len(texts)), dtype=np.int64)
            targets = np.full_like(inputs, IGNORE)
            for s, line in enumerate(lines):
                stream = [self.eos_id, *line]
                inputs[: len(line), s] = stream[:-1]
                targets[: len(line), s] = stream[1:]
            totals = self.stream_losses(model, inputs, targets).tolist()
        records = []
        for i, text, line, total in zip(ids, texts, lines, totals):
            loss = total / len(line)
            if self.subword:
                tokens, unknown = self.token_names(line), []
            else:  # the words as written, an unknown one too
                tokens = self.tokenize(text) or [EOS]
                unknown = [t for t in tokens if t not in self._ids]
            records.append({"id": i, "tokens": tokens, "n_tokens": len(line), "loss": loss,
                            "perplexity": _perplexity(loss), "unknown": unknown})
        return records

    # ------------------------------------------------------------ prediction: generating text

    def prompt_ids(self, text: str) -> list[int]:
        """The end token (a text starts after one, as in training and scoring), then the prompt's."""
        line = self.line_ids(text)
        return [self.eos_id, *line[:-1]]

    @torch.inference_mode()
    def generate(self, model, ids: list, prompts: list[str], options: dict, on_text=None) -> list[dict]:
        """For each prompt, `num_samples` records {"id", "prompt", "text", "tokens", "finish_reason"}
        ("sample": k too when there are several): the new text (a word model's words joined by
        spaces), the new tokens as the vocabulary names them, and why it stopped (decoding.FINISH).
        A prompt longer than the model's context keeps its end, and the record has "truncated":
        {"length", "kept"} in tokens. Sample k of a prompt draws from a seed made of `seed`, the
        prompt's id and k, so it is the same text whatever else is generated with it. `on_text`
        (a single prompt and sample): each piece of text as soon as it is chosen."""
        if model.bidirectional:
            raise DataError("a bidirectional language model (elmo) reads each line both ways and does not "
                            "generate text", "use dlcli embed with it, or dlcli evaluate for its perplexity")
        opts = {**GENERATION, **{k: v for k, v in options.items() if v is not None}}
        sampling = decoding.Sampling(float(opts["temperature"]), int(opts["top_k"]), float(opts["top_p"]))
        C = model.context_length
        rows = []
        for id_, text in zip(ids, prompts):
            prompt, cut = self.prompt_ids(text), None
            if C is not None and len(prompt) > C:
                cut = {"length": len(prompt) - 1, "kept": C}  # the end token is not the prompt's, nor kept
                prompt = prompt[-C:]
            rows += [(id_, text, prompt, k, cut) for k in range(int(opts["num_samples"]))]
        stream = _TextStream(self, on_text) if on_text is not None and len(rows) == 1 else None
        records = []
        size = max(1, int(opts["batch_size"]))
        for start in range(0, len(rows), size):
            batch = rows[start:start + size]
            records += self._generate_rows(model, batch, opts, sampling, stream)
        if stream is not None:
            stream.close()
        return records

    def _generate_rows(self, model, rows, opts, sampling, stream) -> list[dict]:
        prompts = [prompt for _, _, prompt, _, _ in rows]
        new = int(opts["max_new_tokens"])
        C = model.context_length
        steps = new if C is None else min(new, C - min(map(len, prompts)) + 1)
        continuation = model.begin(prompts, max(map(len, prompts)) + steps)
        seeds = [_row_seed(int(opts["seed"]), id_, k) for id_, _, _, k, _ in rows]
        results = decoding.generate(continuation, [new] * len(rows), sampling, decoding.row_generators(seeds),
                                    self.eos_id, C, None if stream is None else stream.token)
        records = []
        for (id_, text, _, k, cut), result in zip(rows, results):
            record = {"id": id_, "prompt": text, "text": self._text(result.ids), "tokens": self.token_names(result.ids),
                      "finish_reason": result.finish_reason}
            if int(opts["num_samples"]) > 1:
                record["sample"] = k
            if cut:
                record["truncated"] = cut
            records.append(record)
        return records

    def _text(self, ids: list[int]) -> str:
        return self.vocab.decode(ids) if self.subword else " ".join(self.token_names(ids))


class _TextStream:
    """Generated text handed on as it grows: the text of the tokens so far, less what was handed
    on already (a byte-level token can end inside a character: such a tail waits for the next)."""

    def __init__(self, task: LMTask, write):
        self.task, self.write, self.ids, self.sent = task, write, [], 0

    def token(self, row: int, token: int) -> None:
        self.ids.append(token)
        text = self.task._text(self.ids)
        if not text.endswith("\ufffd"):
            self._send(text)

    def _send(self, text: str) -> None:
        if len(text) > self.sent:
            self.write(text[self.sent:])
            self.sent = len(text)

    def close(self) -> None:
        self._send(self.task._text(self.ids))


def _row_seed(seed: int, id_, sample: int) -> int:
    key = zlib.crc32(str(id_).encode("utf-8", "surrogatepass"))
    return int(np.random.SeedSequence([seed, key, sample]).generate_state(1)[0])


def _windows(stream: np.ndarray, C: int):
    """(inputs, targets) of length C for sliding windows over a stream: the first scores its C
    targets, each later one moves on by C // 2 and scores only targets not scored before
    (IGNORE elsewhere, and after the stream's end)."""
    n = len(stream) - 1  # targets
    stride = max(1, C // 2)
    done, end = 0, min(C, n)
    while done < n:
        start = max(0, end - C)
        x = np.zeros(C, dtype=np.int64)
        y = np.full(C, IGNORE, dtype=np.int64)
        x[: end - start] = stream[start:end]
        y[done - start: end - start] = stream[done + 1:end + 1]
        yield x, y
        done, end = end, min(end + stride, n)


def _perplexity(loss: float) -> float:
    return math.exp(min(loss, 700.0))  # exp overflows a float past 709 nats a token
