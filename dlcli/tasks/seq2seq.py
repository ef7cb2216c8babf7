"""Sequence to sequence: translation (or any text -> text) from sentence pairs, scored by BLEU.

Data: tab-separated lines, the source in column `data.source_column` and the target in
`data.target_column` (0 and 1; swap them to translate the other way). Blank lines are skipped; a
line without both columns is an error naming its file and line.

Two vocabularies, `vocab: {source: ..., target: ...}`, each a `word`, `char` (Chinese), `bpe`,
`wordpiece` or `byte_bpe` component (byte-level BPE gives back the text exactly, spaces and
apostrophes included, which BLEU sees). `data.shared_vocab: true` builds one vocabulary, the
`source` component, from both sides: the models can then tie all their embeddings. Every
sentence ends with the vocabulary's end token; the decoder starts from that same token.

Training: pairs longer than `data.max_source_length` / `max_target_length` tokens (the end token
counted) are left out, with a note; batches hold `train.batch_size` pairs of similar length; the
loss is the mean cross-entropy over target tokens, with `data.label_smoothing` (Szegedy et al.
2016). Dev metrics: `bleu` and `chrf` of the outputs decoded with beam `data.dev_beam_size` (1:
greedy), against the file's targets, one reference each, tokenised as `data.bleu_tokenize` says
(13a; zh for Chinese targets), as sacrebleu computes them (dlcli/text/bleu.py); `loss` and
`perplexity` of the targets read with teacher forcing.

Generation (`dlcli generate`, `dlcli predict`, see `generate`): beam search (dlcli/decoding.py).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from dlcli import decoding
from dlcli.device import unwrapped
from dlcli.errors import DataError, RecipeError
from dlcli.recipe import bounded, choice
from dlcli.tasks import DataSection, PredictSection, Task, check_section_options, refuse_foreign_options
from dlcli.text import bleu
from dlcli.text.batching import bucket_batches, pad
from dlcli.text.readers import file_lines
from dlcli.text.vocabularies import from_dict

IGNORE = -100  # target of a padded position
VOCAB_TYPES = ("word", "char", "bpe", "wordpiece", "byte_bpe")
EVAL_BATCH = 64  # pairs scored or decoded together while evaluating


@dataclass(frozen=True)
class Seq2SeqData(DataSection):
    format: str = choice("tsv", ("tsv",))
    source_column: int = bounded(0, ge=0)
    target_column: int = bounded(1, ge=0)
    shared_vocab: bool = False  # one vocabulary (vocab.source) built from both sides
    max_source_length: int = bounded(100, ge=1)  # tokens: longer training pairs are left out, inputs cut
    max_target_length: int = bounded(100, ge=1)
    label_smoothing: float = bounded(0.0, ge=0, lt=1)
    bleu_tokenize: str = choice("13a", ("13a", "zh", "none"))
    dev_beam_size: int = bounded(1, ge=1)  # beam for the dev BLEU while training; 1: greedy


@dataclass(frozen=True)
class Seq2SeqPredict(PredictSection):
    batch_size: int = bounded(64, ge=1)  # sentences decoded together
    beam_size: int = bounded(5, ge=1)
    n_best: int = bounded(1, ge=1)  # outputs per input (at most beam_size)
    length_penalty: float = bounded(0.6, ge=0)  # GNMT's alpha; 0: rank by log-probability
    # an output has at most max_length_ratio x the source's tokens + max_length_extra tokens ...
    max_length_ratio: float = bounded(2.0, gt=0)
    max_length_extra: int = bounded(10, ge=0)
    max_length: int | None = bounded(None, ge=1)  # ... and never more than this


PREDICT_KEYS = {f.name for f in dataclasses.fields(Seq2SeqPredict)}
OPTIONS = PREDICT_KEYS | {"attention_plot"}  # attention_plot: a folder for one picture per input


@dataclass
class Pair:
    source: str
    target: str
    line: int


@dataclass
class PairFile:
    path: Path
    pairs: list[Pair]


class Seq2SeqTask(Task):
    name = "seq2seq"
    command = "dlcli generate"
    data_section = Seq2SeqData
    predict_section = Seq2SeqPredict
    vocabs = ("source", "target")
    metrics = {"bleu": True, "chrf": True, "loss": False, "perplexity": False}
    model_positional = 2  # source and target vocabulary sizes
    evaluate_options = frozenset({"beam_size", "length_penalty"})

    def __init__(self, source_vocab, target_vocab, data: Seq2SeqData):
        self.source_vocab, self.target_vocab, self.data = source_vocab, target_vocab, data
        self.start_id = self.stop_id = target_vocab.eos_id
        self.notes: list[str] = []
        self.train: list[tuple[list[int], list[int]]] = []
        self.dev: PairFile | None = None
        self.max_source = data.max_source_length  # tokens the model reads (prepare_model may lower it)

    # ------------------------------------------------------------ construction

    @classmethod
    def check_recipe(cls, recipe) -> None:
        data = recipe.data
        if data.source_column == data.target_column:
            raise RecipeError(f"data.target_column: the same column as data.source_column ({data.source_column})")
        for name in cls.vocabs:
            component = recipe.vocab[name]
            if component.type not in VOCAB_TYPES:
                raise RecipeError(f"vocab.{name}.type: the seq2seq task builds one of {', '.join(VOCAB_TYPES)}, "
                                  f"not {component.type!r}")
            for key in ("bos", "eos"):
                if key in component.kwargs:
                    raise RecipeError(f"vocab.{name}.{key}: the seq2seq task ends every sentence with an end "
                                      "token itself", f"remove vocab.{name}.{key}")
        target = recipe.vocab["target"]
        if data.shared_vocab and (target.type != "word" or target.kwargs):
            raise RecipeError("vocab.target: with data.shared_vocab the source's vocabulary serves both sides",
                              "remove vocab.target")
        if recipe.model.kwargs.get("tie_embeddings") == "all" and not data.shared_vocab:
            raise RecipeError("model.tie_embeddings: all needs one vocabulary for both sides",
                              "set data.shared_vocab: true, or tie_embeddings: decoder")

    @classmethod
    def read(cls, path, data: Seq2SeqData) -> PairFile:
        need = max(data.source_column, data.target_column) + 1
        pairs = []
        for number, line in file_lines(path, data.encoding):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < need:
                raise DataError(f"{path}:{number}: expected at least {need} tab-separated columns (source in "
                                f"{data.source_column}, target in {data.target_column}), found {len(fields)}",
                                "pairs are source<TAB>target; see data.source_column / data.target_column")
            source, target = fields[data.source_column].strip(), fields[data.target_column].strip()
            for text, side in ((source, "source"), (target, "target")):
                if not text:
                    raise DataError(f"{path}:{number}: empty {side} (column {getattr(data, side + '_column')})")
            pairs.append(Pair(source, target, number))
        if not pairs:
            raise DataError(f"{path}: no sentence pairs found", "is it empty?")
        return PairFile(Path(path), pairs)

    @classmethod
    def from_records(cls, recipe, vocabs, train: PairFile, dev: PairFile | None, init=None) -> Seq2SeqTask:
        data = recipe.data
        sources = [p.source for p in train.pairs]
        targets = [p.target for p in train.pairs]
        source_vocab = _build(vocabs["source"], sources + targets if data.shared_vocab else sources)
        target_vocab = source_vocab if data.shared_vocab else _build(vocabs["target"], targets)
        task = cls(source_vocab, target_vocab, data)
        encoded = zip(task.encode(sources, source_vocab), task.encode(targets, target_vocab))
        kept = [(s, t) for s, t in encoded if len(s) <= data.max_source_length and len(t) <= data.max_target_length]
        if not kept:
            raise DataError(f"{train.path}: every pair is longer than data.max_source_length "
                            f"({data.max_source_length}) or data.max_target_length ({data.max_target_length}) tokens",
                            "raise them")
        task.train, task.dev = kept, dev
        left = len(train.pairs) - len(kept)
        sizes = (f"vocabulary {source_vocab.size:,} (shared)" if data.shared_vocab else
                 f"vocabularies {source_vocab.size:,} (source) and {target_vocab.size:,} (target)")
        task.notes.append(f"{train.path}: {len(train.pairs):,} pairs, {sizes}"
                          + (f"; {left:,} pairs longer than data.max_source_length / max_target_length left out"
                             if left else ""))
        return task

    @classmethod
    def from_checkpoint(cls, content: dict) -> Seq2SeqTask:
        from dlcli.recipe import parse_section

        data = parse_section(Seq2SeqData, content["recipe"].get("data") or {}, "data")
        source = from_dict(content["source_vocab"])
        target = source if data.shared_vocab else from_dict(content["target_vocab"])
        return cls(source, target, data)

    def payload(self) -> dict:
        out = {"source_vocab": self.source_vocab.to_dict()}
        if self.target_vocab is not self.source_vocab:
            out["target_vocab"] = self.target_vocab.to_dict()
        return out

    def model_sizes(self) -> tuple:
        return (self.source_vocab.size, self.target_vocab.size)

    def prepare_model(self, model) -> None:
        for side, limit in (("source", model.max_source_positions), ("target", model.max_target_positions)):
            wanted = getattr(self.data, f"max_{side}_length")
            if limit is not None and wanted > limit:
                raise RecipeError(f"data.max_{side}_length: {wanted} tokens, but the model reads at most {limit}",
                                  f"lower data.max_{side}_length, or raise model.max_positions")

    def describe(self) -> str:
        tokens = sum(len(t) for _, t in self.train)
        return f"{len(self.train):,} sentence pairs ({tokens:,} target tokens)"

    # ------------------------------------------------------------ tokens

    @staticmethod
    def encode(texts: list[str], vocab) -> list[list[int]]:
        """Each text's ids, the end token last."""
        return [vocab.wrap(ids) for ids in vocab.encode_batch(texts)]

    def pieces(self, vocab, ids) -> list[str]:
        """How each id reads, for pictures: its text where it has one of its own."""
        if hasattr(vocab, "tokens"):
            return [vocab.tokens[i] for i in ids]
        names = []
        for i in ids:
            text = vocab.decode([i]).strip()
            names.append(text or (vocab.token_name(i) if hasattr(vocab, "token_name") else str(i)))
        return names

    # ------------------------------------------------------------ training

    @property
    def has_dev(self) -> bool:
        return self.dev is not None

    @property
    def num_train(self) -> int:
        return len(self.train)

    def train_batches(self, batch_size: int, generator) -> list[list[int]]:
        return bucket_batches([max(len(s), len(t)) for s, t in self.train], batch_size, generator)

    def collate(self, indices: list[int]) -> dict:
        return self._batch([self.train[i] for i in indices])

    def _batch(self, pairs: list[tuple[list[int], list[int]]]) -> dict:
        source, source_mask = pad([s for s, _ in pairs], self.source_vocab.pad_id)
        target, target_mask = pad([[self.start_id, *t] for _, t in pairs], self.target_vocab.pad_id, 2)
        target_out = target[:, 1:].masked_fill(~target_mask[:, 1:], IGNORE)
        return {"source": source, "source_mask": source_mask, "target_in": target[:, :-1], "target_out": target_out}

    def loss(self, model, batch: dict):
        scores = model(batch["source"], batch["source_mask"], batch["target_in"])
        return F.cross_entropy(scores.reshape(-1, scores.shape[-1]), batch["target_out"].reshape(-1),
                               ignore_index=IGNORE, label_smoothing=self.data.label_smoothing)

    # ------------------------------------------------------------ evaluation

    @torch.inference_mode()
    def evaluate(self, model, records: PairFile | None = None, options: dict | None = None) -> dict:
        """bleu, chrf (0-100, sacrebleu's), loss (nats per target token, end tokens included),
        perplexity, n (pairs), beam_size, on the dev split or a file."""
        file = self.dev if records is None else records
        options = options or {}
        beam = int(options.get("beam_size") or self.data.dev_beam_size) if records is not None else \
            self.data.dev_beam_size
        model = unwrapped(model)  # the module itself under DistributedDataParallel: `start` is its own
        was_training = model.training
        model.eval()
        try:
            device = next(model.parameters()).device
            pairs = file.pairs
            sources = self.encode([p.source for p in pairs], self.source_vocab)
            targets = self.encode([p.target for p in pairs], self.target_vocab)
            total, count = 0.0, 0
            order = sorted(range(len(pairs)), key=lambda i: len(sources[i]))
            for start in range(0, len(order), EVAL_BATCH):
                chunk = [(sources[i][: self.max_source], targets[i][: self.data.max_target_length])
                         for i in order[start:start + EVAL_BATCH]]
                batch = {k: v.to(device) for k, v in self._batch(chunk).items()}
                scores = model(batch["source"], batch["source_mask"], batch["target_in"])
                total += float(F.cross_entropy(scores.reshape(-1, scores.shape[-1]).float(),
                                               batch["target_out"].reshape(-1), ignore_index=IGNORE, reduction="sum"))
                count += int((batch["target_out"] != IGNORE).sum())
            settings = {**dataclasses.asdict(Seq2SeqPredict()), **options, "beam_size": beam, "n_best": 1}
            outputs = [r["output"] for r in self._translate(model, list(range(len(pairs))), [p.source for p in pairs],
                                                            settings, sources)]
        finally:
            model.train(was_training)
        references = [p.target for p in pairs]
        loss = total / max(1, count)
        return {"bleu": bleu.corpus_bleu(outputs, references, tokenize=self.data.bleu_tokenize)["bleu"],
                "chrf": bleu.corpus_chrf(outputs, references), "loss": loss,
                "perplexity": math.exp(min(loss, 700.0)), "n": len(pairs), "beam_size": beam}

    # ------------------------------------------------------------ generation

    def check_options(self, options: dict) -> None:
        refuse_foreign_options(options, OPTIONS, "a seq2seq model, which decodes by beam search",
                               "its options: --beam-size, --n-best, --max-length, --length-penalty, "
                               "--attention-plot, --batch-size")
        check_section_options(Seq2SeqPredict, options)
        if int(options.get("n_best") or 1) > int(options.get("beam_size") or 1):
            raise RecipeError(f"--n-best: {options['n_best']} outputs need --beam-size {options['n_best']} or more")

    def predict(self, model, ids: list, texts: list[str], options: dict) -> list[dict]:
        return self.generate(model, ids, texts, options)

    @torch.inference_mode()
    def generate(self, model, ids: list, texts: list[str], options: dict, on_text=None) -> list[dict]:
        """A record per input: {"id", "source", "output", "score", "finish_reason"}: the best output,
        its log-probability (nats, the end token included), and why it stopped ("eos", or "length":
        cut at the maximum length); with n_best > 1 also "n_best": [{"output", "score",
        "finish_reason"}, ...], best first. An empty input gives an empty output without decoding;
        a source longer than the model reads is cut, and the record has "truncated": {"length",
        "kept"} (tokens, the end token counted). `attention_plot` (a folder): one picture of the
        best output's attention over the source per input, named after its id. `on_text` (a
        single input) is handed the output when it is complete."""
        opts = {**dataclasses.asdict(Seq2SeqPredict()), **{k: v for k, v in options.items() if v is not None}}
        records = self._translate(model, ids, texts, opts)
        if opts.get("attention_plot"):
            self._plot(records, Path(opts["attention_plot"]))
        for record in records:
            record.pop("_plot", None)
        if on_text is not None and len(records) == 1:  # the whole output at once: beam search ends together
            on_text(records[0]["output"])
        return records

    def _translate(self, model, ids: list, texts: list[str], opts: dict, sources=None) -> list[dict]:
        """Records for `texts`; `sources`: their ids when the caller has encoded them already."""
        device = next(model.parameters()).device
        limit = self.max_source
        if model.max_source_positions is not None:
            limit = min(limit, model.max_source_positions)
        sources = self.encode(texts, self.source_vocab) if sources is None else sources
        records: list[dict | None] = [None] * len(texts)
        todo = []
        for i, (id_, text, source) in enumerate(zip(ids, texts, sources)):
            if not text.strip():
                records[i] = {"id": id_, "source": text, "output": "", "score": 0.0, "finish_reason": "eos"}
                continue
            cut = None
            if len(source) > limit:
                cut = {"length": len(source), "kept": limit}
                source = source[: limit - 1] + [source[-1]]  # the end token stays
            todo.append((i, source, cut))
        todo.sort(key=lambda item: len(item[1]))  # similar lengths decode together
        size = max(1, int(opts["batch_size"]))
        plot = bool(opts.get("attention_plot"))
        for start in range(0, len(todo), size):
            chunk = todo[start:start + size]
            source, mask = pad([s for _, s, _ in chunk], self.source_vocab.pad_id)
            state = model.start(source.to(device), mask.to(device))
            results = decoding.beam_search(state, self.start_id, self.stop_id, [self._max_length(len(s), opts, model)
                                                                                  for _, s, _ in chunk],
                                           int(opts["beam_size"]), float(opts["length_penalty"]),
                                           int(opts["n_best"]), need_weights=plot)
            for (i, source_ids, cut), hyps in zip(chunk, results):
                records[i] = self._record(ids[i], texts[i], hyps, cut, int(opts["n_best"]))
                if plot and hyps:
                    records[i]["_plot"] = (source_ids, hyps[0])
        return records

    def _max_length(self, source_length: int, opts: dict, model) -> int:
        length = math.ceil(float(opts["max_length_ratio"]) * source_length + int(opts["max_length_extra"]))
        if opts.get("max_length") is not None:
            length = min(length, int(opts["max_length"]))
        if model.max_target_positions is not None:
            length = min(length, model.max_target_positions)
        return length

    def _record(self, id_, text: str, hyps: list, cut, n_best: int) -> dict:
        def described(h):
            return {"output": self.target_vocab.decode(h.ids), "score": h.logprob, "finish_reason": h.finish_reason}

        best = described(hyps[0]) if hyps else {"output": "", "score": float("-inf"), "finish_reason": "length"}
        record = {"id": id_, "source": text, **best}
        if n_best > 1:
            record["n_best"] = [described(h) for h in hyps]
        if cut:
            record["truncated"] = cut
        return record

    def _plot(self, records: list[dict], folder: Path) -> None:
        from dlcli.plots import plot_attention

        folder.mkdir(parents=True, exist_ok=True)
        for record in records:
            if "_plot" not in record:
                continue
            source_ids, hyp = record["_plot"]
            outputs = self.pieces(self.target_vocab, hyp.ids) + (["</s>"] if hyp.finish_reason == "eos" else [])
            sources = self.pieces(self.source_vocab, source_ids[:-1]) + ["</s>"]
            name = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(record["id"]))
            plot_attention(sources, outputs, hyp.attention[: len(outputs), : len(sources)], folder / f"{name}.png",
                           title=record["source"])


def _build(component: tuple, texts: list[str]):
    builder, knobs = component
    if "eos" in inspect.signature(builder).parameters:  # word, char, bpe, wordpiece: add the end token
        knobs = {**knobs, "eos": True}
    return builder(texts, **knobs)
