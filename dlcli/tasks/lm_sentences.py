"""The lm task's bidirectional models (elmo, dlcli/models/language_model.py): every line read on
its own, forwards and backwards, and contextual vectors for `dlcli embed`.

A line is a sentence between two end tokens: the one before it (the previous line's) and its own.
The forward model predicts each of its tokens and the end token from what comes before; the
backward model each token and the opening end token from what comes after, so each direction
predicts as many tokens as the line has (its end token included: the n_tokens of the other
models). Training cuts a longer line into pieces of at most `data.bptt` predictions a direction
(each piece read on its own: the corpus's paragraphs reach thousands of words), dealt in batches
of similar lengths; the loss is the mean over the batch's predictions of both directions.
Scoring reads every line whole; perplexity is exp of the mean of the two directions' losses per
token (Peters et al. 2018 report the average of the forward and backward perplexities; bilm-tf
computes this, the exponential of the averaged loss), and each direction's is reported too.

A model that reads words' spellings (`word_bytes` > 0) gets each position's word as written, not
its vocabulary id: a word outside the vocabulary is predicted as <unk> but read as itself.
"""

from __future__ import annotations

from itertools import chain

import numpy as np
import torch

from dlcli.errors import RecipeError
from dlcli.text.batching import bucket_batches, pad, token_capped
from dlcli.text.chars import SpellingTable, spell

SCORE_TOKENS = 8192  # positions (padding included) read at once when scoring or embedding
CHUNK_LINES = 1024  # lines tokenized at once when scoring a file
EMBED_OPTIONS = ("pool", "normalize", "tokens", "max_length", "layer")
FOREIGN = {"words": "--words", "neighbors": "--neighbors", "analogy": "--analogy", "restrict": "--restrict"}
POOLS = ("mean",)


class Sentences:
    """The training corpus's lines as pieces: piece i is the ids at positions start[i] ..
    start[i] + length[i] - 1 of the corpus (position -1: the end token the first line follows)."""

    def __init__(self, ids: np.ndarray, starts: np.ndarray, bptt: int, eos_id: int,
                 words: tuple[np.ndarray, SpellingTable, int] | None = None):
        self.ids, self.eos_id, self.words = ids, eos_id, words
        lengths = np.diff(starts)  # predictions a direction: the line's tokens, its end token included
        count = -(-lengths // bptt)  # pieces a line
        line = np.repeat(np.arange(len(lengths)), count)
        k = np.arange(len(line)) - np.repeat(np.cumsum(count) - count, count)  # a piece's rank in its line
        n, c = lengths[line], count[line]
        first, last = n * k // c, n * (k + 1) // c  # predictions first .. last - 1, of similar sizes
        self.start = starts[line] - 1 + first
        self.length = last - first + 1  # tokens read: the predictions and the token before them

    def __len__(self) -> int:
        return len(self.start)

    def collate(self, indices: list[int]) -> dict:
        start, length = self.start[indices], self.length[indices]
        mask = np.arange(int(length.max()))[None, :] < length[:, None]  # (B, N)
        positions = np.where(mask, start[:, None] + np.arange(mask.shape[1])[None, :], 0)
        ids = self.ids[np.maximum(positions, 0)].astype(np.int64)
        ids[positions < 0] = self.eos_id
        ids[~mask] = 0
        batch = {"ids": torch.from_numpy(ids), "mask": torch.from_numpy(mask)}
        if self.words is not None:
            raw, table, eos_word = self.words
            words = raw[np.maximum(positions, 0)].astype(np.int64)
            words[positions < 0] = eos_word
            distinct, index = np.unique(words[mask], return_inverse=True)
            word_index = np.zeros(mask.shape, dtype=np.int64)
            word_index[mask] = index
            batch["chars"], batch["word_index"] = table.spell(distinct), torch.from_numpy(word_index)
        return batch


def sentences_for(task, model, bptt: int) -> Sentences:
    """The task's training corpus cut for a bidirectional model, with each position's word spelled
    when the model reads spellings (which needs a word vocabulary)."""
    words = None
    if model.word_bytes:
        if task.words is None:
            raise RecipeError("vocab.type: this model reads each word's spelling, and a byte_bpe vocabulary has "
                              "no words", "use vocab type word")
        types, raw = task.words
        eos_word = types.index(task.vocab.tokens[task.eos_id])
        table = SpellingTable([None if i == eos_word else t for i, t in enumerate(types)], model.word_bytes)
        words = (raw, table, eos_word)
    return Sentences(task.corpus, task.starts, bptt, task.eos_id, words)


def loss(model, batch: dict) -> torch.Tensor:
    forward, backward = model(batch["ids"], batch["mask"], batch.get("chars"), batch.get("word_index"))
    return (forward.sum() + backward.sum()) / (2 * batch["mask"][:, 1:].sum().clamp(min=1))


# ------------------------------------------------------------ scoring and embedding whole lines


def line_tokens(task, text: str) -> tuple[list[int], list[str]]:
    """A line's token ids and names (the words as written), its end token left out."""
    if task.subword:
        ids = task.line_ids(text)[:-1]
        return ids, task.token_names(ids)
    words = task.tokenize(text)[:-1]
    get, unk = task._ids.get, task.unk_id
    return [get(w, unk) for w in words], words


def sequence(ids: list[int], words: list[str], eos_id: int, close: bool = True) -> tuple[list[int], list]:
    """(ids, words) of a line read as the model reads it: after an end token, and (`close`) before
    one; the end token's word is None."""
    tail = [eos_id] if close else []
    return [eos_id, *ids, *tail], [None, *words, *([None] if close else [])]


def _batch(model, rows: list[tuple[list[int], list[str | None]]], device) -> dict:
    """Rows of (ids, words) padded into a model's batch, on `device`."""
    ids, mask = pad([r[0] for r in rows], 0)
    batch = {"ids": ids, "mask": mask}
    if model.word_bytes:
        index: dict[str | None, int] = {}
        positions = [[index.setdefault(w, len(index)) for w in words] for _, words in rows]
        batch["word_index"] = pad(positions, 0)[0]
        batch["chars"] = spell(list(index), model.word_bytes)
    return {k: v.to(device) for k, v in batch.items()}


def _batches(rows: list, width) -> list[list[int]]:
    lengths = [width(r) for r in rows]
    return token_capped(bucket_batches(lengths, 64), lengths, SCORE_TOKENS)


@torch.inference_mode()
def line_losses(task, model, texts: list[str]) -> tuple[float, float, int, int]:
    """Summed forward and backward losses (nats) of the lines' tokens, how many each direction
    predicted, and how many of them are <unk>."""
    rows = []
    for text in texts:
        ids, words = line_tokens(task, text)
        if ids:  # a blank line is skipped, as the other models skip it
            rows.append(sequence(ids, words, task.eos_id))
    device = next(model.parameters()).device
    forward = backward = 0.0
    for chosen in _batches(rows, lambda r: len(r[0])):
        batch = _batch(model, [rows[i] for i in chosen], device)
        f, b = model(batch["ids"], batch["mask"], batch.get("chars"), batch.get("word_index"))
        forward, backward = forward + float(f.double().sum()), backward + float(b.double().sum())
    n = sum(len(ids) - 1 for ids, _ in rows)
    unknown = sum(ids.count(task.unk_id) for ids, _ in rows) if task.unk_id is not None else 0
    return forward, backward, n, unknown


def evaluate(task, model, lines) -> dict:
    forward = backward = 0.0
    n = unknown = 0
    chunk: list[str] = []
    for line in chain(lines, [None]):
        if line is not None:
            chunk.append(line)
        if chunk and (line is None or len(chunk) == CHUNK_LINES):
            f, b, count, unk = line_losses(task, model, chunk)
            forward, backward, n, unknown, chunk = forward + f, backward + b, n + count, unknown + unk, []
    if not n:
        from dlcli.errors import DataError

        raise DataError("the file holds no tokens", "is it empty, or all blank lines?")
    from dlcli.tasks.lm import _perplexity

    loss = (forward + backward) / (2 * n)
    result = {"perplexity": _perplexity(loss), "loss": loss, "forward_perplexity": _perplexity(forward / n),
              "backward_perplexity": _perplexity(backward / n), "n_tokens": n}
    if task.unk_id is not None:
        result["unk_rate"] = unknown / n
    return result


def check_options(options: dict) -> None:
    given = [flag for key, flag in FOREIGN.items() if options.get(key) not in (None, False)]
    if given:
        raise RecipeError(f"{given[0]} works on word vectors; this is a bidirectional language model (elmo), whose "
                          "vectors depend on the sentence",
                          "its options: --pool mean, --normalize, --tokens, --layer, --max-length")
    if options.get("pool") not in (None, *POOLS):
        raise RecipeError(f"--pool: {options['pool']!r}: an elmo model's sentence vector is the mean of its "
                          "tokens'", "use --pool mean (the default)")
    for key in ("layer", "max_length"):
        if options.get(key) is not None and (isinstance(options[key], bool) or int(options[key]) < 0):
            raise RecipeError(f"--{key.replace('_', '-')}: must be 0 or more, got {options[key]!r}")


@torch.inference_mode()
def embed(task, model, ids: list, texts: list[str], options: dict) -> list[dict]:
    """`dlcli embed` records as an encoder gives them (dlcli/tasks/contextual.py): {"id", "text",
    "vector"} (the mean of the line's token vectors) or with `tokens` {"id", "text", "tokens",
    "vectors"}. A token's vector is the mean of the model's layers, or layer `layer` (0: the token
    layer); the end tokens around the line are read but not printed. A line longer than
    `max_length` tokens keeps its first ones, and its record says so ("truncated")."""
    from dlcli.tasks.contextual import vector_records

    layer = options.get("layer")
    if layer is not None and not 0 <= int(layer) <= model.num_layers:
        raise RecipeError(f"--layer: {layer} is not a layer of this model: 0 (the token layer) to {model.num_layers}")
    limit = options.get("max_length")
    lines = [line_tokens(task, text) for text in texts]
    kept = [(ids[:limit], words[:limit]) if limit else (ids, words) for ids, words in lines]
    sequences = [sequence(ids, words, task.eos_id) for ids, words in kept]
    device = next(model.parameters()).device
    size = max(1, int(options.get("batch_size") or 32))
    records: list[dict | None] = [None] * len(texts)
    for chosen in token_capped(bucket_batches([len(s[0]) for s in sequences], size),
                               [len(s[0]) for s in sequences], SCORE_TOKENS):
        batch = _batch(model, [sequences[i] for i in chosen], device)
        layers = model.layers(batch["ids"], batch["mask"], batch.get("chars"), batch.get("word_index"))
        hidden = (layers.mean(0) if layer is None else layers[int(layer)])[:, 1:-1].float()  # (B, T, D)
        mask = batch["mask"][:, 2:]  # the line's own tokens: the end tokens left out
        names = [kept[i][1] for i in chosen]
        for i, record in zip(chosen, vector_records(hidden, mask, names, {**options, "pool": "mean"})):
            records[i] = {"id": ids[i], "text": texts[i], **record}
            if len(kept[i][0]) < len(lines[i][0]):
                records[i]["truncated"] = {"length": len(lines[i][0]), "kept": len(kept[i][0])}
    return records
