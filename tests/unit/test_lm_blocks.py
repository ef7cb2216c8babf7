"""The lm task with a context-length model (gpt) and a byte-level BPE vocabulary: the vocabulary,
the corpus cut into blocks, sliding-window scoring against a direct computation, line scoring,
generation records (samples, seeds, a truncated prompt, streamed text), the generation options,
and the gpt classifier built on the same model."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlcli.errors import DataError, RecipeError
from dlcli.models.gpt import GPT
from dlcli.models.gpt_classifier import GPTClassifier
from dlcli.tasks import lm
from dlcli.tasks.lm import IGNORE, LMData, LMTask, TextFile, _TextStream, _windows
from dlcli.text.byte_bpe import END_OF_TEXT, build_byte_bpe_vocab
from dlcli.text.vocabularies import from_dict

LINES = [f"the river {i} runs past the café, {'naïve ' * (i % 3)}and the bridge\t{i * 7} 🎉" for i in range(12)]
LINES.insert(5, "   ")  # a blank line: no tokens, no end token
ODD = "Grüße aus Köln — 東京 🎉🚀\tend  two  spaces"


def write(path, lines) -> TextFile:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return TextFile(path, LMData())


def task_over(path, lines=LINES, batch_size=2) -> LMTask:
    recipe = SimpleNamespace(data=LMData(), train=SimpleNamespace(batch_size=batch_size))
    vocabs = {"vocab": (build_byte_bpe_vocab, {"vocab_size": 300, "min_freq": 1})}
    return LMTask.from_records(recipe, vocabs, write(path / "train.txt", lines), None)


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> LMTask:
    return task_over(tmp_path_factory.mktemp("lm"))


def gpt(vocab_size: int, context_length: int, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(vocab_size, context_length=context_length, embedding_dim=8, num_layers=2, num_heads=2,
               dropout=0.0).eval()


def nats(model: GPT, inputs: list[int], targets: list[int]) -> torch.Tensor:
    """(T,) the full forward pass's losses of targets after inputs (one window, no padding)."""
    with torch.no_grad():
        logits = model(torch.tensor([inputs]))[0].double()
    return F.cross_entropy(logits, torch.tensor(targets), reduction="none")


# ---------------------------------------------------------------- the vocabulary


def test_byte_bpe_round_trips_any_text_and_knows_every_byte(task):
    vocab = task.vocab
    assert vocab.kind == "byte_bpe" and vocab.unk_id is None and vocab.size == 300
    assert vocab.token_name(vocab.eos_id) == END_OF_TEXT and vocab.pad_id == vocab.eos_id
    for text in (ODD, LINES[3], "\x00\x7f é", "  leading", ""):
        ids = vocab.encode(text)
        assert vocab.decode(ids) == text
        assert vocab.eos_id not in ids
    assert vocab.decode([*vocab.encode("a b"), vocab.eos_id]) == "a b"  # end-of-text is left out
    assert len(vocab.encode(LINES[2])) < len(LINES[2].encode("utf-8"))  # it learned merges from the corpus


def test_byte_bpe_to_dict_and_back(task):
    again = from_dict(task.vocab.to_dict())
    assert again.kind == "byte_bpe" and again.size == task.vocab.size and again.eos_id == task.vocab.eos_id
    for text in (ODD, *LINES):
        assert again.encode(text) == task.vocab.encode(text)
    assert again.encode_batch([ODD, "x"]) == [task.vocab.encode(ODD), task.vocab.encode("x")]


def test_byte_bpe_needs_room_for_the_bytes():
    with pytest.raises(ValueError, match="vocab_size"):
        build_byte_bpe_vocab(["a b"], vocab_size=256)
    assert build_byte_bpe_vocab(["a b"], vocab_size=257, min_freq=1).size == 257


# ---------------------------------------------------------------- the corpus and its blocks


def test_every_line_ends_with_the_end_token(task):
    corpus = np.asarray(task.corpus).tolist()
    eos = task.eos_id
    assert corpus[-1] == eos
    texts = [line.strip() for line in LINES if line.strip()]
    pieces, start = [], 0
    for i, token in enumerate(corpus):
        if token == eos:
            pieces.append(corpus[start:i])
            start = i + 1
    assert [task.vocab.decode(p) for p in pieces] == texts
    assert task.line_ids(LINES[0]) == [*task.vocab.encode(LINES[0]), eos] and task.line_ids("  ") == []


def test_a_gpt_gets_blocks_each_target_once_an_epoch(tmp_path):
    task = task_over(tmp_path, batch_size=3)
    C = 8
    task.prepare_model(gpt(task.vocab.size, C))
    corpus = np.asarray(task.corpus).astype(np.int64)
    N = len(corpus)
    assert task.context == C and task.streams is None
    assert task.num_train == task.blocks == (N - 1) // C and task.blocks > 5
    assert str(task.blocks) in task.describe()
    batches = task.train_batches(3, torch.Generator().manual_seed(0))
    order = [b for batch in batches for b in batch]
    assert sorted(order) == list(range(task.blocks)) and order != sorted(order)  # a permutation, shuffled
    assert all(len(batch) == 3 for batch in batches[:-1])
    targets = {}
    for batch in batches:
        got = task.collate(batch)
        assert got["ids"].shape == got["target"].shape == (len(batch), C)
        assert torch.equal(got["ids"][:, 1:], got["target"][:, :-1])  # the targets: the inputs shifted by one
        for row, b in enumerate(batch):
            assert got["ids"][row].tolist() == corpus[b * C:b * C + C].tolist()
            targets[b] = got["target"][row].tolist()
    flat = [t for b in sorted(targets) for t in targets[b]]
    assert flat == corpus[1:task.blocks * C + 1].tolist()  # every target once, in corpus order by block
    other = task.train_batches(3, torch.Generator().manual_seed(1))
    assert [b for batch in other for b in batch] != order  # a new order with another epoch's generator


def test_blocks_loss_is_the_mean_over_tokens(tmp_path):
    task = task_over(tmp_path)
    model = gpt(task.vocab.size, 8)
    task.prepare_model(model)
    batch = task.collate([0, 2])
    want = torch.cat([nats(model, batch["ids"][r].tolist(), batch["target"][r].tolist()) for r in range(2)]).mean()
    assert task.loss(model, batch).item() == pytest.approx(float(want), rel=1e-5)


def test_a_corpus_too_small_for_one_block_names_the_context_length(tmp_path):
    task = task_over(tmp_path, ["a b", "c"])
    with pytest.raises(DataError, match="model.context_length"):
        task.prepare_model(gpt(task.vocab.size, len(task.corpus)))
    task.prepare_model(gpt(task.vocab.size, len(task.corpus) - 1))  # one block and its next token: fits
    assert task.blocks == 1


# ---------------------------------------------------------------- sliding windows


@pytest.mark.parametrize("C", [4, 7, 8])
@pytest.mark.parametrize("targets", [1, 3, 7, 8, 9, 50])
def test_windows_score_every_target_once_with_half_a_context(C, targets):
    stream = np.arange(targets + 1) + 100  # distinct ids: a token's id says its position
    scored = []
    windows = list(_windows(stream, C))
    for k, (x, y) in enumerate(windows):
        assert x.shape == y.shape == (C,)
        for j in np.flatnonzero(y != IGNORE):
            t = int(y[j]) - 100  # the target's position in the stream
            assert x[: j + 1].tolist() == list(range(100 + t - j - 1, 100 + t))  # the tokens right before it
            if k:
                assert j + 1 >= C - C // 2 >= C // 2  # context of at least half a window
            scored.append(t)
    assert sorted(scored) == scored == list(range(1, targets + 1))
    stride = max(1, C // 2)
    assert len(windows) == 1 + max(0, math.ceil((targets - C) / stride))


def sliding_direct(model: GPT, stream: list[int]) -> float:
    """The sliding-window definition, one target at a time: the first C targets from the stream's
    start; after them each window ends C // 2 further, and a target is read from its window's start."""
    C, n = model.context_length, len(stream) - 1
    total, end = 0.0, min(C, n)
    ends = [end]
    while end < n:
        end = min(end + C // 2, n)
        ends.append(end)
    for t in range(1, n + 1):
        end = next(e for e in ends if e >= t)
        start = max(0, end - C)
        with torch.no_grad():
            logits = model(torch.tensor([stream[start:t]]))[0, -1].double()
        total -= float(torch.log_softmax(logits, -1)[stream[t]])
    return total


def test_evaluate_one_window_equals_the_full_forward(task, tmp_path):
    dev = write(tmp_path / "dev.txt", [ODD, "", "the river"])
    ids = task.encode_file(dev).tolist()
    model = gpt(task.vocab.size, 64)
    assert len(ids) <= 64
    got = task.evaluate(model, dev)
    want = nats(model, [task.eos_id, *ids[:-1]], ids).mean().item()
    assert got["n_tokens"] == len(ids) and "unk_rate" not in got and "streams" not in got
    assert got["loss"] == pytest.approx(want, rel=1e-5)
    assert got["perplexity"] == pytest.approx(math.exp(want), rel=1e-5)


def test_evaluate_past_one_window_equals_the_sliding_definition(task, tmp_path, monkeypatch):
    dev = write(tmp_path / "dev.txt", [ODD, *LINES[:2]])
    ids = task.encode_file(dev).tolist()
    model = gpt(task.vocab.size, 8)
    assert len(ids) > 3 * 8
    want = sliding_direct(model, [task.eos_id, *ids]) / len(ids)
    for logits_per_pass in (1 << 23, task.vocab.size * 8):  # all windows in one pass, or one a pass
        monkeypatch.setattr(lm, "EVAL_LOGITS", logits_per_pass)
        assert task.evaluate(model, dev)["loss"] == pytest.approx(want, rel=1e-5)
    one_window = nats(model, [task.eos_id, *ids[:7]], ids[:8]).sum().item()
    assert sliding_direct(model, [task.eos_id, *ids[:8]]) == pytest.approx(one_window)  # the definition agrees


def test_predict_scores_each_line_from_the_end_token(task):
    model = gpt(task.vocab.size, 64)
    texts = [ODD, "", "the river", LINES[4]]
    records = task.predict(model, [1, 2, 3, 4], texts, {"batch_size": 3})
    assert [r["id"] for r in records] == [1, 2, 3, 4]
    for text, record in zip(texts, records):
        ids = task.line_ids(text) or [task.eos_id]
        assert record["tokens"] == [task.vocab.token_name(i) for i in ids]
        assert record["tokens"][-1] == END_OF_TEXT and record["n_tokens"] == len(ids) and record["unknown"] == []
        want = nats(model, [task.eos_id, *ids[:-1]], ids).mean().item()
        assert record["loss"] == pytest.approx(want, rel=1e-5)
        assert record["perplexity"] == pytest.approx(math.exp(want), rel=1e-5)
    assert records[1]["tokens"] == [END_OF_TEXT]


def test_predict_a_line_longer_than_the_context_slides(task):
    model = gpt(task.vocab.size, 8)
    ids = task.line_ids(ODD)
    assert len(ids) > 16
    record = task.predict(model, [0], [ODD], {})[0]
    assert record["loss"] == pytest.approx(sliding_direct(model, [task.eos_id, *ids]) / len(ids), rel=1e-5)


# ---------------------------------------------------------------- generation


KEYS = {"id", "prompt", "text", "tokens", "finish_reason"}


def test_generate_records_samples_and_seeds(task):
    model = gpt(task.vocab.size, 16)
    options = {"max_new_tokens": 6, "temperature": 1.0, "seed": 3}
    records = task.generate(model, ["a", "b"], ["the river", ""], options)
    assert [set(r) for r in records] == [KEYS, KEYS]
    for record, prompt in zip(records, ["the river", ""]):
        assert record["prompt"] == prompt and record["finish_reason"] in ("length", "eos")
        ids = [task.vocab._tok.token_to_id(t) for t in record["tokens"]]
        assert record["text"] == task.vocab.decode(ids)
        assert len(ids) == 6 or record["finish_reason"] == "eos"
    assert task.generate(model, ["a", "b"], ["the river", ""], options) == records
    assert task.generate(model, ["b"], [""], options) == records[1:]  # a row's text is its own, batch or not
    texts = {task.generate(model, ["a"], ["the river"], {**options, "seed": s})[0]["text"] for s in range(4)}
    assert len(texts) > 1
    samples = task.generate(model, ["a"], ["the river"], {**options, "num_samples": 2})
    assert [r["sample"] for r in samples] == [0, 1] and all(set(r) == KEYS | {"sample"} for r in samples)
    assert samples[0]["text"] != samples[1]["text"]


def test_generate_greedy_equals_a_naive_loop(task):
    model = gpt(task.vocab.size, 16)
    record = task.generate(model, [0], ["the river"], {"max_new_tokens": 4, "temperature": 0})[0]
    ids = task.prompt_ids("the river")
    assert ids[0] == task.eos_id
    for _ in range(4):
        with torch.no_grad():
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    new = ids[len(task.prompt_ids("the river")):]
    if task.eos_id in new:
        new = new[: new.index(task.eos_id)]
    assert record["tokens"] == [task.vocab.token_name(i) for i in new]


def test_a_prompt_longer_than_the_context_keeps_its_end(task):
    C = 8
    model = gpt(task.vocab.size, C)
    length = len(task.line_ids(ODD)) - 1
    assert length > C
    record = task.generate(model, [0], [ODD], {"max_new_tokens": 5, "temperature": 0})[0]
    assert record["truncated"] == {"length": length, "kept": C}
    assert record["finish_reason"] in ("context", "eos") and len(record["tokens"]) <= 1  # a full window: one token
    kept = task.line_ids(ODD)[:-1][-C:]
    with torch.no_grad():
        want = int(model(torch.tensor([kept]))[0, -1].argmax())
    assert record["tokens"] == ([] if want == task.eos_id else [task.vocab.token_name(want)])
    short = task.generate(model, [0], ["the"], {"max_new_tokens": 5, "temperature": 0})[0]
    assert "truncated" not in short


def test_on_text_streams_the_record_text(task):
    model = gpt(task.vocab.size, 32)
    pieces = []
    record = task.generate(model, [0], ["the café"], {"max_new_tokens": 20, "seed": 1}, on_text=pieces.append)[0]
    assert pieces and "".join(pieces) == record["text"] and all(pieces)
    assert len(record["tokens"]) > 1
    task.generate(model, [0, 1], ["a", "b"], {"max_new_tokens": 3}, on_text=pieces.append)
    assert "".join(pieces) == record["text"]  # several prompts: nothing streamed


def test_a_character_cut_between_tokens_waits_for_its_last_byte(task):
    token = task.vocab._tok.token_to_id  # byte-level names: 0xC3 is "Ã", 0xA9 is "©"; together "é"
    pieces = []
    stream = _TextStream(task, pieces.append)
    for name in ("a", "Ã", "©", "b", "Ã"):
        stream.token(0, token(name))
    assert pieces == ["a", "é", "b"]
    stream.close()  # a cut character at the very end is handed on as it decodes
    assert pieces == ["a", "é", "b", "\ufffd"] and "".join(pieces) == task.vocab.decode(stream.ids)


@pytest.mark.parametrize("options, name", [({"top_p": 0}, "--top-p"), ({"num_samples": 0}, "--num-samples"),
                                           ({"top_p": 1.5}, "--top-p"), ({"temperature": -1}, "--temperature"),
                                           ({"max_new_tokens": 0}, "--max-new-tokens")])
def test_check_options_names_the_option(task, options, name):
    with pytest.raises(RecipeError, match=name):
        task.check_options(options)


def test_check_options_accepts_good_values(task):
    task.check_options({"top_p": 1.0, "num_samples": 3, "temperature": 0, "top_k": 0, "seed": 5})


# ---------------------------------------------------------------- the gpt classifier

ARCH = {"context_length": 12, "embedding_dim": 8, "num_layers": 2, "num_heads": 2}
END = 1


def classifier(**knobs) -> GPTClassifier:
    torch.manual_seed(0)
    return GPTClassifier(20, 3, END, **{**ARCH, "dropout": 0.0, **knobs})


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_classifier_reads_end_then_text_and_ignores_padding(pooling):
    model = classifier(pooling=pooling).eval()
    text = [5, 9, 3, 7]
    padded = torch.tensor([text + [0, 0, 0], [4, 4, 4, 4, 4, 4, 4]])
    mask = torch.tensor([[True] * 4 + [False] * 3, [True] * 7])
    with torch.no_grad():
        both = model(padded, mask)
        alone = model(torch.tensor([text]), torch.ones(1, 4, dtype=torch.bool))
        hidden = model.gpt.hidden(torch.tensor([[END, *text]]))[0]
        empty = model(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 1, dtype=torch.bool))
        end_only = model.gpt.hidden(torch.tensor([[END]]))[0, 0]
    assert both.shape == (2, 3)
    assert torch.allclose(both[0], alone[0], atol=1e-6)
    pooled = hidden[-1] if pooling == "last" else hidden[1:].mean(0)  # the last token's state, or the text's mean
    assert torch.allclose(alone[0], model.output(pooled), atol=1e-6)
    assert torch.allclose(empty[0], model.output(end_only), atol=1e-6)  # an empty text: the end token's state
    long = torch.arange(2, 16)[None]  # 14 tokens: only context_length - 1 = 11 are read
    with torch.no_grad():
        assert torch.allclose(model(long, torch.ones_like(long, dtype=torch.bool)),
                              model(long[:, :11], torch.ones(1, 11, dtype=torch.bool)), atol=1e-6)


def test_the_auxiliary_lm_loss():
    model = classifier(lm_weight=0.5)
    ids = torch.tensor([[5, 9, 3, 0], [4, 6, 7, 8]])
    mask = torch.tensor([[True, True, True, False], [True] * 4])
    model.eval()
    model(ids, mask)
    assert model.extra_loss() is None
    model.train()
    model(ids, mask)
    loss = model.extra_loss()
    assert loss is not None and loss.requires_grad and loss.item() > 0
    with torch.no_grad():  # every text token, from the end token and the tokens before it, over the batch
        texts = [[END, 5, 9, 3], [END, 4, 6, 7, 8]]
        want = torch.cat([nats(model.gpt, t[:-1], t[1:]) for t in texts]).mean()
    assert loss.item() == pytest.approx(0.5 * float(want), rel=1e-5)
    assert model.extra_loss() is None  # taken once
    off = classifier(lm_weight=0.0).train()
    off(ids, mask)
    assert off.extra_loss() is None


def test_start_from_copies_the_gpt_and_refuses_another_shape():
    torch.manual_seed(1)
    pretrained = GPT(20, **ARCH)
    model = classifier()
    model.start_from(pretrained, dict(ARCH))
    ours, theirs = model.gpt.state_dict(), pretrained.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    deeper = {**ARCH, "num_layers": 3}
    with pytest.raises(ValueError, match="model.num_layers"):
        classifier().start_from(GPT(20, **deeper), deeper)
    with pytest.raises(ValueError, match="model.ffn_dim"):
        classifier().start_from(GPT(20, **ARCH, ffn_dim=16), {**ARCH, "ffn_dim": 16})
    with pytest.raises(ValueError, match="gpt"):
        classifier().start_from(torch.nn.Linear(2, 2), {})


@pytest.mark.parametrize("knobs, key", [({"context_length": None}, "context_length"),
                                        ({"num_heads": None, "num_layers": None}, "num_layers, num_heads"),
                                        ({"context_length": 1}, "context_length"),
                                        ({"lm_weight": -0.1}, "lm_weight"),
                                        ({"pooling": "cls"}, "pooling")])
def test_classifier_knobs_are_checked(knobs, key):
    with pytest.raises(ValueError, match=key):
        GPTClassifier(20, 3, END, **{**ARCH, **knobs})
