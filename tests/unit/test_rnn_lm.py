"""The rnn_lm model and the lm task's pieces: tokens, vocabulary, Zaremba's batching, the carried
state, scoring against a direct token-by-token computation, the step_after schedule."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlcli import schedules
from dlcli.loading import build_loaded
from dlcli.models.rnn_lm import RNNLanguageModel
from dlcli.tasks import lm
from dlcli.tasks.lm import EOS, EOS_ID, UNK_ID, LMData, LMTask, TextFile, line_tokenizer
from dlcli.text.vocab import PAD, UNK, WORD_PATTERN, TokenVocab

V = 12


def tiny(**knobs) -> RNNLanguageModel:
    torch.manual_seed(0)
    return RNNLanguageModel(V, **{"embedding_dim": 6, "hidden_size": 6, "num_layers": 2, **knobs})


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_forward_backward_and_reload(cell):
    model = tiny(cell=cell, dropout=0.3)
    ids = torch.randint(V, (5, 3))
    logits, state = model(ids)
    assert logits.shape == (5, 3, V)
    loss = F.cross_entropy(logits.reshape(-1, V), ids.reshape(-1))
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    loaded = build_loaded(RNNLanguageModel, (V,), {"cell": cell, "embedding_dim": 6, "hidden_size": 6,
                                                   "num_layers": 2, "dropout": 0.3}, model.state_dict()).eval()
    assert torch.equal(model(ids)[0], loaded(ids)[0])
    first = state[0] if cell == "lstm" else state
    assert first.shape == (2, 3, 6)


def test_tied_weights_are_one_tensor_before_and_after_loading():
    model = tiny(tie_weights=True)
    assert model.tied and "output_weight" not in model.state_dict()
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in tiny().parameters())
    with torch.no_grad():
        model.embedding.weight[3].fill_(0.5)  # moves the output row of word 3 too
    h = torch.ones(1, 1, 6)
    assert torch.allclose(F.linear(h, model.embedding.weight, model.output_bias)[0, 0, 3], 3.0 + model.output_bias[3])
    loaded = build_loaded(RNNLanguageModel, (V,), {"embedding_dim": 6, "hidden_size": 6, "tie_weights": True},
                          model.state_dict())
    assert loaded.tied and loaded.output_weight is None


def test_bad_knobs_name_the_key():
    with pytest.raises(ValueError, match="tie_weights"):
        RNNLanguageModel(V, embedding_dim=4, hidden_size=6, tie_weights=True)
    with pytest.raises(ValueError, match="cell"):
        RNNLanguageModel(V, cell="rnn")


def test_uniform_init_in_range():
    model = tiny(init_range=0.05)
    assert all(p.abs().max() <= 0.05 for p in model.parameters())


# ---------------------------------------------------------------- tokens and vocabulary


def test_line_tokens_end_with_eos_and_keep_a_literal_unk_whole():
    vocab = TokenVocab("word", [PAD, UNK, EOS], False, WORD_PATTERN, eos=True)
    tokens = line_tokenizer(vocab)
    assert tokens(" pierre <unk> N years old ") == ["pierre", UNK, "N", "years", "old", EOS]
    assert tokens("a<unk>b <unk>") == ["a", UNK, "b", UNK, EOS]
    assert tokens("   ") == []


def write(path, lines) -> TextFile:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return TextFile(path, LMData(bptt=3))


def task_over(tmp_path, lines, batch_size=2, bptt=3, **vocab) -> LMTask:
    recipe = SimpleNamespace(data=LMData(bptt=bptt), train=SimpleNamespace(batch_size=batch_size))
    knobs = {"pattern": r"\S+", **vocab}
    task = LMTask.from_records(recipe, {"vocab": (None, knobs)}, write(tmp_path / "train.txt", lines), None)
    task.prepare_model(SimpleNamespace(context_length=None, bidirectional=False, word_bytes=0))  # streams
    return task


def test_the_corpus_unk_is_the_vocabulary_unknown_and_never_a_second_word(tmp_path):
    task = task_over(tmp_path, ["a b <unk> a", "<unk> c <pad>", "", "a"])
    tokens = task.vocab.tokens
    assert tokens[:3] == [PAD, UNK, EOS] and tokens.count(UNK) == 1 and PAD not in tokens[1:]
    assert task.vocab.eos_id == EOS_ID
    a, b, c = (task.vocab.index[w] for w in "abc")
    stream = task.streams.reshape(-1).tolist()  # 2 streams x 5 of the 11 tokens: the last left out
    assert stream == [a, b, UNK_ID, a, EOS_ID, UNK_ID, c, UNK_ID, EOS_ID, a, EOS_ID][:len(stream)]
    assert len(stream) == 10


def test_min_freq_sends_rare_words_to_unk(tmp_path):
    task = task_over(tmp_path, ["a a b"], batch_size=1, min_freq=2)
    assert task.vocab.tokens == [PAD, UNK, EOS, "a"]
    assert task.streams.reshape(-1).tolist() == [3, 3, UNK_ID, EOS_ID]


# ---------------------------------------------------------------- batching and the carried state


def test_zaremba_batching_streams_and_windows(tmp_path):
    words = [f"w{i}" for i in range(23)]
    task = task_over(tmp_path, [" ".join(words[i:i + 4]) for i in range(0, 23, 4)], batch_size=3, bptt=3)
    ids = task.streams
    total, length = ids.shape  # 29 tokens (23 + 6 EOS) -> 3 streams of 9, 2 tokens left out
    assert (total, length) == (3, 9) and task.windows == math.ceil(8 / 3) == task.num_train // 3
    batches = task.train_batches(3, None)
    assert len(batches) == 3
    seen = []
    for k, indices in enumerate(batches):
        batch = task.collate(indices)
        assert int(batch["window"]) == k
        x, y = batch["ids"].numpy(), batch["target"].numpy()  # (T, B)
        assert np.array_equal(x.T, ids[:, 3 * k:3 * k + len(x)])
        assert np.array_equal(y.T, ids[:, 3 * k + 1:3 * k + 1 + len(y)])
        seen.append(len(x))
    assert seen == [3, 3, 2]  # every target of every stream once: 8 per stream


def test_ranks_each_walk_their_own_streams(tmp_path, monkeypatch):
    monkeypatch.setattr(lm, "_world_size", lambda: 2)
    task = task_over(tmp_path, ["a b c d e f g h i j k l m n o p q r s t u v w"], batch_size=2, bptt=2)
    batches = task.train_batches(2, None)
    for rank in range(2):
        mine = batches[rank::2]  # what the trainer deals to this rank
        streams = {tuple(i % 4 for i in indices) for indices in mine}
        assert streams == {(2 * rank, 2 * rank + 1)}
        assert [int(task.collate(b)["window"]) for b in mine] == list(range(task.windows))


class Spy(torch.nn.Module):
    """The model, recording the state each forward pass starts from."""

    context_length = None

    def __init__(self, model):
        super().__init__()
        self.model, self.given, self.returned = model, [], []

    def initial_state(self, *args):
        return self.model.initial_state(*args)

    def detach_state(self, state):
        return self.model.detach_state(state)

    def forward(self, ids, state):
        self.given.append(state)
        logits, out = self.model(ids, state)
        self.returned.append(out)
        return logits, out


def test_the_state_is_carried_between_windows_and_reset_each_epoch(tmp_path):
    task = task_over(tmp_path, ["a b c a b c d a b c a b d"] * 4, batch_size=2, bptt=4)
    spy = Spy(tiny(cell="gru"))
    for _ in range(2):  # epochs
        for indices in task.train_batches(2, None):
            task.loss(spy, task.collate(indices)).backward()
    n = task.windows
    for i, given in enumerate(spy.given):
        if i % n == 0:
            assert not given.any()  # an epoch starts from zeros
        else:
            assert torch.equal(given, spy.returned[i - 1]) and not given.requires_grad
    state = task.train_state()
    restored = LMTask(task.vocab)
    restored.load_train_state(state)
    assert torch.equal(restored._state, spy.returned[-1])
    assert LMTask(task.vocab).train_state() == {}


# ---------------------------------------------------------------- scoring


def direct_loss(model, ids: list[int]) -> float:
    """Summed nats of ids, one token at a time after an EOS, the state carried through."""
    state, total, previous = None, 0.0, EOS_ID
    with torch.no_grad():
        for token in ids:
            logits, state = model(torch.tensor([[previous]]), state)
            total -= float(torch.log_softmax(logits[0, 0].double(), -1)[token])
            previous = token
    return total


@pytest.mark.parametrize("streams", [1, 3])
def test_evaluate_equals_a_direct_computation(tmp_path, monkeypatch, streams):
    lines = ["a b c a", "b <unk> c", "zebra a b", "c c"]
    task = task_over(tmp_path, lines[:2])
    model = RNNLanguageModel(task.vocab.size, embedding_dim=5, hidden_size=7).eval()
    dev = TextFile(tmp_path / "dev.txt", LMData(eval_streams=streams))
    write(dev.path, lines)
    ids = task.encode_file(dev).tolist()
    cuts = np.linspace(0, len(ids), streams + 1).round().astype(int)
    want = 0.0
    for a, b in zip(cuts[:-1], cuts[1:]):  # each stream starts from zeros, after the token before it
        state, previous = None, EOS_ID if a == 0 else ids[a - 1]
        with torch.no_grad():
            for token in ids[a:b]:
                logits, state = model(torch.tensor([[previous]]), state)
                want -= float(torch.log_softmax(logits[0, 0].double(), -1)[token])
                previous = token
    for logits_per_pass in (1 << 23, task.vocab.size * streams):  # whole file at once, or one step a pass
        monkeypatch.setattr(lm, "EVAL_LOGITS", logits_per_pass)
        got = task.evaluate(model, dev)
        assert got["n_tokens"] == len(ids) == 16 and got["streams"] == streams
        assert got["loss"] == pytest.approx(want / len(ids), rel=1e-5)
        assert got["perplexity"] == pytest.approx(math.exp(want / len(ids)), rel=1e-5)
    assert got["unk_rate"] == pytest.approx(2 / 16)  # <unk> and zebra
    if streams == 1:
        assert want == pytest.approx(direct_loss(model, ids))


def test_predict_scores_each_line_from_the_zero_state(tmp_path):
    task = task_over(tmp_path, ["a b c a", "b c"])
    model = RNNLanguageModel(task.vocab.size, embedding_dim=5, hidden_size=7).eval()
    records = task.predict(model, [1, 2, 3], ["a b c", "", "zebra a"], {"batch_size": 2})
    assert [r["tokens"] for r in records] == [["a", "b", "c", EOS], [EOS], ["zebra", "a", EOS]]
    assert records[2]["unknown"] == ["zebra"] and records[0]["unknown"] == []
    for record in records:
        ids = [task.vocab.index.get(t, UNK_ID) for t in record["tokens"]]
        assert record["loss"] == pytest.approx(direct_loss(model, ids) / len(ids), rel=1e-5)
        assert record["perplexity"] == pytest.approx(math.exp(record["loss"]))


# ---------------------------------------------------------------- schedule


def test_step_after_keeps_the_lr_then_decays_each_epoch():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = schedules.step_after(opt, 100, 3, start_epoch=4, factor=0.5)
    lrs = []
    for _ in range(7 * 3):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    per_epoch = lrs[::3]
    assert per_epoch == pytest.approx([1, 1, 1, 1, 0.5, 0.25, 0.125])  # Zaremba's small model
    assert lrs[12:15] == pytest.approx([0.5] * 3)
