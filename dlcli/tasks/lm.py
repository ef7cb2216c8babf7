"""Language modelling: plain text -> next-token prediction, scored by perplexity.

Data: plain text, one sentence, paragraph or document per line (gz allowed); blank lines are
skipped. Each line's tokens are followed by an end-of-sentence token `<eos>`, as in Zaremba et
al. 2014's Penn Treebank set-up. The task owns the vocabulary (`vocab: {type: word, lowercase,
pattern, min_freq, max_size}`): ids 0 `<pad>`, 1 `<unk>`, 2 `<eos>`, then the words by frequency.
A corpus that already holds `<unk>` (PTB does) has it mapped to the vocabulary's own unknown id,
never counted as a second word. The corpus is read once into ids on disk (dlcli/text/corpus.py).

Training batches (Zaremba et al.'s): the corpus as one stream of ids, cut into `train.batch_size`
parallel streams (the last N mod B tokens are left out); an epoch walks them in consecutive
windows of `data.bptt` tokens, and the model's state is carried from each window to the next
(detached: truncated BPTT) and reset to zero at the start of every epoch. A window's loss is
summed over its time steps and averaged over the streams, as in the paper's code, so lr 1 and
grad_clip 5 mean what they mean there (the same update as a per-token mean with lr x bptt and
clip 5 / bptt). The carried state is part of the train state (`train_state`): --resume is exact
mid-epoch too. Under torchrun the corpus is cut into ranks x batch_size streams, each rank
walking its own batch_size of them.

Scoring (the dev metric while training, `dlcli evaluate`): every token of the file, each `<eos>`
included, is predicted once, the first from the context of an `<eos>` (as if the file followed a
sentence end). `data.eval_streams` (default 1) cuts the file into that many contiguous streams
scored side by side, each with its state carried through all of it. With 1, each token is
conditioned on everything before it, and the result depends on no batch or window size: the
paper's test protocol. More streams are faster on a big model, and each of the cuts starts a
stream from the zero state (the paper's validation used the 20 training streams).

`dlcli predict`: each line scored on its own, from the zero state after an `<eos>`:
{"id", "tokens", "n_tokens", "loss", "perplexity", "unknown"} (the tokens scored, `<eos>` last;
loss in nats per token; the words outside the vocabulary, scored as `<unk>`).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import weakref
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dlcli.device import unwrapped
from dlcli.errors import DataError, RecipeError
from dlcli.recipe import bounded, choice
from dlcli.tasks import DataSection, Task
from dlcli.text.corpus import read_raw, remap
from dlcli.text.readers import file_lines
from dlcli.text.vocab import PAD, UNK, TokenVocab, _ranked
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
    data_section = LMData
    metrics = {"perplexity": False, "loss": False}
    model_positional = 1  # vocab_size

    def __init__(self, vocab: TokenVocab, bptt: int = 35, eval_streams: int = 1):
        self.vocab, self.bptt, self.eval_streams = vocab, bptt, eval_streams
        self.notes: list[str] = []
        self.tokenize = line_tokenizer(vocab)
        self._ids = {t: i for t, i in vocab.index.items() if i != vocab.pad_id}  # a literal <pad> is unknown
        self.streams: np.ndarray | None = None  # (S, L): the training corpus cut into S streams
        self.windows = 0  # per stream and epoch
        self.batch_size = 1  # streams per rank
        self.dev_ids: np.ndarray | None = None
        self._state = None  # the state carried from the last training window
        self._workdir: Path | None = None

    # ------------------------------------------------------------ construction

    @classmethod
    def check_recipe(cls, recipe) -> None:
        if recipe.vocab.type != "word":
            raise RecipeError(f"vocab.type: the lm task builds a word vocabulary, not {recipe.vocab.type!r}",
                              "use vocab type word (lowercase, pattern, min_freq, max_size)")
        for key in ("bos", "eos"):
            if key in recipe.vocab.kwargs:
                raise RecipeError(f"vocab.{key}: the lm task ends every line with {EOS} itself",
                                  f"remove vocab.{key}")

    @classmethod
    def read(cls, path, data) -> TextFile:
        return TextFile(Path(path), data)

    @classmethod
    def from_records(cls, recipe, vocabs, train: TextFile, dev: TextFile | None, init=None) -> LMTask:
        _, knobs = vocabs["vocab"]
        probe = TokenVocab("word", list(SPECIALS), knobs.get("lowercase", False), knobs["pattern"], eos=True)
        workdir = Path(tempfile.mkdtemp(prefix="dlcli-lm-", dir=recipe.data.cache_dir))
        types, raw = read_raw(train.lines(), line_tokenizer(probe), workdir)
        if not raw.num_tokens:
            shutil.rmtree(workdir, True)
            raise DataError(f"{train.path}: the corpus holds no tokens", "is it empty, or all blank lines?")
        counts = np.bincount(raw.ids, minlength=len(types))
        words = {t: c for t, c in zip(types, counts.tolist()) if t not in SPECIALS}
        min_freq = knobs.get("min_freq", 1)
        vocab = TokenVocab("word", _ranked(words, min_freq, knobs.get("max_size"), list(SPECIALS)),
                           probe.lowercase, probe.pattern, eos=True)
        task = cls(vocab, recipe.data.bptt, recipe.data.eval_streams)
        task._workdir = workdir
        weakref.finalize(task, shutil.rmtree, workdir, True)
        corpus = remap(raw, np.array([task._ids.get(t, UNK_ID) for t in types], dtype=np.int64), workdir)
        (workdir / "raw.ids").unlink(missing_ok=True)
        task._cut_streams(corpus.ids, recipe.train.batch_size, train.path)
        if dev is not None:
            task.dev_ids = task.encode_file(dev)
        unknown = float(np.mean(corpus.ids == UNK_ID))
        task.notes.append(f"{train.path}: {corpus.num_tokens:,} tokens in {corpus.num_sentences:,} lines, "
                          f"{len(words):,} distinct words; vocabulary {vocab.size - len(SPECIALS):,} words "
                          f"(min_freq {min_freq}), {unknown:.2%} of the tokens <unk>")
        return task

    def _cut_streams(self, ids: np.ndarray, batch_size: int, source) -> None:
        total = batch_size * _world_size()
        length = len(ids) // total
        if length < 2:
            raise DataError(f"{source}: {len(ids):,} tokens (with one {EOS} per line) are too few for {total} "
                            "streams of 2 tokens or more", "lower train.batch_size, or train on more text")
        self.streams = ids[: total * length].reshape(total, length)  # still memory-mapped
        self.windows = math.ceil((length - 1) / self.bptt)
        self.batch_size = batch_size

    @classmethod
    def from_checkpoint(cls, content: dict) -> LMTask:
        data = content["recipe"]["data"]
        return cls(from_dict(content["vocab"]), int(data.get("bptt", 35)), int(data.get("eval_streams", 1)))

    def payload(self) -> dict:
        return {"vocab": self.vocab.to_dict()}

    def model_sizes(self) -> tuple:
        return (self.vocab.size,)

    def describe(self) -> str:
        total, length = self.streams.shape
        return (f"{total * length:,} tokens as {total} streams of {length:,}, {self.windows:,} windows of "
                f"{self.bptt} a stream per epoch, vocabulary {self.vocab.size:,}")

    def encode_file(self, file: TextFile) -> np.ndarray:
        """A scored file's token ids, one EOS after each line, as one stream."""
        get, ids = self._ids.get, array("i")
        for line in file.lines():
            ids.extend(get(t, UNK_ID) for t in self.tokenize(line))
        if not ids:
            raise DataError(f"{file.path}: holds no tokens", "is it empty, or all blank lines?")
        return np.frombuffer(ids, dtype=np.int32)

    # ------------------------------------------------------------ training

    @property
    def has_dev(self) -> bool:
        return self.dev_ids is not None

    @property
    def num_train(self) -> int:
        """Stream windows per epoch, over all ranks: the trainer's steps per epoch x batch_size."""
        return self.windows * len(self.streams)

    def train_batches(self, batch_size: int, generator) -> list[list[int]]:
        """Window k of every stream, in order: entry k x ranks + r holds rank r's streams (the trainer
        deals entry i to rank i mod ranks). An index is window x streams + stream."""
        total = len(self.streams)
        ranks = total // self.batch_size
        return [list(range(k * total + r * self.batch_size, k * total + (r + 1) * self.batch_size))
                for k in range(self.windows) for r in range(ranks)]

    def collate(self, indices: list[int]) -> dict:
        window, _ = divmod(indices[0], len(self.streams))
        rows = np.array([i % len(self.streams) for i in indices])
        start = window * self.bptt
        steps = min(self.bptt, self.streams.shape[1] - 1 - start)
        block = torch.from_numpy(self.streams[rows, start:start + steps + 1].T.astype(np.int64))  # (T + 1, B)
        return {"ids": block[:-1], "target": block[1:], "window": torch.tensor(window)}

    def loss(self, model, batch: dict):
        ids, target = batch["ids"], batch["target"]  # (T, B)
        net = unwrapped(model)
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
        padded), scored from the zero state, carried through windows that bound the memory."""
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

    def evaluate(self, model, records: TextFile | None = None, options: dict | None = None) -> dict:
        """perplexity, loss (nats per token), n_tokens (EOS included), unk_rate (share of tokens
        scored as <unk>) over the dev split or a file, as `data.eval_streams` streams."""
        ids = self.dev_ids if records is None else self.encode_file(records)
        streams = self.eval_streams if records is None else records.data.eval_streams
        n = len(ids)
        stream = np.concatenate([[EOS_ID], ids]).astype(np.int64)
        cuts = np.linspace(0, n, min(streams, n) + 1).round().astype(np.int64)  # targets cuts[s]+1 .. cuts[s+1]
        longest = int(np.diff(cuts).max())
        inputs = np.zeros((longest, len(cuts) - 1), dtype=np.int64)
        targets = np.full_like(inputs, IGNORE)
        for s, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
            inputs[: b - a, s] = stream[a:b]
            targets[: b - a, s] = stream[a + 1:b + 1]
        loss = float(self.stream_losses(model, inputs, targets).sum()) / n
        return {"perplexity": _perplexity(loss), "loss": loss, "n_tokens": n,
                "unk_rate": float(np.mean(ids == UNK_ID)), "streams": len(cuts) - 1}

    # ------------------------------------------------------------ prediction

    def predict(self, model, ids: list, texts: list[str], options: dict) -> list[dict]:
        size = max(1, int(options.get("batch_size", 256)))
        records = []
        for start in range(0, len(texts), size):
            records += self._score_lines(model, ids[start:start + size], texts[start:start + size])
        return records

    def _score_lines(self, model, ids: list, texts: list[str]) -> list[dict]:
        get = self._ids.get
        tokens = [self.tokenize(text) or [EOS] for text in texts]
        longest = max(len(t) for t in tokens)
        inputs = np.zeros((longest, len(texts)), dtype=np.int64)
        targets = np.full_like(inputs, IGNORE)
        for s, line in enumerate(tokens):
            stream = [EOS_ID] + [get(t, UNK_ID) for t in line]
            inputs[: len(line), s] = stream[:-1]
            targets[: len(line), s] = stream[1:]
        totals = self.stream_losses(model, inputs, targets).tolist()
        records = []
        for i, line, total in zip(ids, tokens, totals):
            loss = total / len(line)
            records.append({"id": i, "tokens": line, "n_tokens": len(line), "loss": loss,
                            "perplexity": _perplexity(loss), "unknown": [t for t in line if t not in self._ids]})
        return records


def _perplexity(loss: float) -> float:
    return math.exp(min(loss, 700.0))  # exp overflows a float past 709 nats a token
