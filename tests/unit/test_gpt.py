"""The gpt model and generation: shapes, causality, reloading, the key/value cache against the full
forward pass (one prompt, and left-padded prompts of different lengths), the rnn_lm continuation
against its own forward pass, decoding (greedy against a naive loop, the three finish reasons,
top-k / top-p, seeds), and the warmup_cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlcli import decoding, schedules
from dlcli.decoding import Sampling, check_sampling, choose, generate, row_generators
from dlcli.errors import RecipeError
from dlcli.loading import build_loaded
from dlcli.models.gpt import GPT
from dlcli.models.rnn_lm import RNNLanguageModel

V = 13
KNOBS = {"context_length": 16, "embedding_dim": 8, "num_layers": 2, "num_heads": 2, "dropout": 0.0}


def tiny(**knobs) -> GPT:
    torch.manual_seed(0)
    model = GPT(V, **{**KNOBS, **knobs}).eval()
    with torch.no_grad():  # N(0, 0.02) makes every logit nearly equal: spread them so the checks mean something
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.5)
    return model


def ids_of(*lengths: int, seed: int = 1) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(V, (n,), generator=g).tolist() for n in lengths]


def full_logits(model: GPT, ids: list[int]) -> torch.Tensor:
    """(T, V): the full forward pass's next-token logits at every position."""
    with torch.no_grad():
        return model(torch.tensor([ids]))[0]


# ---------------------------------------------------------------- the model


def test_forward_shapes_and_backward():
    model = tiny(dropout=0.1).train()
    ids = torch.randint(V, (3, 10))
    logits = model(ids)
    assert logits.shape == (3, 10, V)
    assert model.hidden(ids).shape == (3, 10, 8)
    F.cross_entropy(logits.reshape(-1, V), ids.reshape(-1)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_causal_a_later_token_changes_no_earlier_logits():
    model = tiny()
    ids = torch.tensor([ids_of(12)[0]])
    changed = ids.clone()
    changed[0, 7] = (changed[0, 7] + 1) % V
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert torch.equal(a[0, :7], b[0, :7])
    assert not torch.allclose(a[0, 7:], b[0, 7:])  # and it does change the logits from it on


def test_reload_gives_equal_logits():
    model = tiny()
    loaded = build_loaded(GPT, (V,), KNOBS, model.state_dict()).eval()
    ids = torch.tensor(ids_of(9, 9))
    with torch.no_grad():
        assert torch.equal(model(ids), loaded(ids))


def test_output_layer_is_the_token_embedding():
    model = tiny()
    state = model.state_dict()
    assert "token.weight" in state and not any("output" in k or "head" in k for k in state)
    assert state["token.weight"].shape == (V, 8)
    h = torch.randn(2, 8)
    assert torch.allclose(model.logits(h), h @ model.token.weight.T)
    with torch.no_grad():
        model.token.weight[4] += 1.0  # moves the output row of token 4 as well
    assert torch.allclose(model.logits(h)[:, 4], h @ model.token.weight[4])


@pytest.mark.parametrize("knobs, key", [({"activation": "swish"}, "activation"),
                                        ({"embedding_dim": 10, "num_heads": 4}, "embedding_dim"),
                                        ({"dropout": 1.0}, "dropout"),
                                        ({"num_layers": 0}, "num_layers"),
                                        ({"context_length": 0}, "context_length")])
def test_bad_knobs_name_the_key(knobs, key):
    with pytest.raises(ValueError, match=key):
        GPT(V, **{**KNOBS, **knobs})


# ---------------------------------------------------------------- the key/value cache


def test_cache_one_token_at_a_time_equals_the_full_forward():
    model = tiny()
    ids = ids_of(14)[0]
    want = full_logits(model, ids)
    for prompt in (1, 5):
        with torch.no_grad():
            continuation = model.begin([ids[:prompt]], len(ids))
            got = [continuation.logits[0]]
            for token in ids[prompt:]:
                continuation.feed(torch.tensor([token]))
                got.append(continuation.logits[0])
        assert torch.allclose(torch.stack(got), want[prompt - 1:], atol=1e-5)
        assert continuation.positions_used.tolist() == [len(ids)]


def test_left_padded_prompts_each_equal_their_prompt_alone():
    model = tiny()
    prompts = ids_of(3, 7, 1, 5)
    steps = ids_of(6, 6, 6, 6, seed=2)  # the tokens fed after the prompts, a row each
    longest = max(map(len, prompts))
    with torch.no_grad():
        continuation = model.begin(prompts, longest + len(steps[0]))
        got = [continuation.logits]
        for k in range(len(steps[0])):
            continuation.feed(torch.tensor([row[k] for row in steps]))
            got.append(continuation.logits)
    got = torch.stack(got, 1)  # (B, steps + 1, V)
    for row, (prompt, fed) in enumerate(zip(prompts, steps)):
        want = full_logits(model, prompt + fed)[len(prompt) - 1:]
        assert torch.allclose(got[row], want, atol=1e-5), row
    assert continuation.positions_used.tolist() == [len(p) + 6 for p in prompts]


def test_a_prompt_longer_than_the_context_is_refused():
    model = tiny(context_length=4)
    with pytest.raises(ValueError, match="4 positions"):
        model.begin([[1] * 5], 8)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_continuation_equals_its_forward(cell):
    torch.manual_seed(0)
    model = RNNLanguageModel(V, cell=cell, embedding_dim=6, hidden_size=6, num_layers=2, init_range=0.5).eval()
    prompts = ids_of(4, 1, 6)
    steps = ids_of(5, 5, 5, seed=2)
    with torch.no_grad():
        continuation = model.begin(prompts, 20)
        got = [continuation.logits]
        for k in range(5):
            continuation.feed(torch.tensor([row[k] for row in steps]))
            got.append(continuation.logits)
        got = torch.stack(got, 1)
        for row, (prompt, fed) in enumerate(zip(prompts, steps)):
            logits, _ = model(torch.tensor(prompt + fed)[:, None])  # time-major (T, 1, V)
            assert torch.allclose(got[row], logits[len(prompt) - 1:, 0], atol=1e-5), row
    assert continuation.positions_used.tolist() == [len(p) + 5 for p in prompts]


# ---------------------------------------------------------------- decoding


def naive_greedy(model: GPT, prompt: list[int], new: int) -> list[int]:
    ids = list(prompt)
    for _ in range(new):
        ids.append(int(full_logits(model, ids)[-1].argmax()))
    return ids[len(prompt):]


def test_greedy_equals_a_naive_loop_over_the_full_forward():
    model = tiny()
    prompts = ids_of(2, 5, 3)
    continuation = model.begin(prompts, 5 + 8)
    results = generate(continuation, [8, 8, 8], Sampling(temperature=0), row_generators([0, 0, 0]), None, 16)
    for prompt, result in zip(prompts, results):
        assert result.ids == naive_greedy(model, prompt, 8)
        assert result.finish_reason == "length"
    assert len({tuple(r.ids) for r in results}) > 1  # the rows did not all say the same


class Scripted:
    """A continuation whose next token is scripted per row (a large logit on it); records what it is fed."""

    def __init__(self, scripts: list[list[int]]):
        self.scripts, self.fed, self.step = scripts, [], 0
        self.seen = torch.zeros(len(scripts), dtype=torch.long)
        self._set()

    def _set(self):
        self.logits = torch.zeros(len(self.scripts), V)
        for row, script in enumerate(self.scripts):
            self.logits[row, script[min(self.step, len(script) - 1)]] = 10.0

    @property
    def positions_used(self):
        return self.seen

    def feed(self, ids):
        self.fed.append(ids.tolist())
        self.step += 1
        self.seen = self.seen + 1
        self._set()


def test_the_stop_token_ends_a_row_and_is_left_out():
    continuation = Scripted([[5, 7, 3, 9, 9], [4, 4, 4, 4, 4, 4, 4]])
    seen = []
    results = generate(continuation, [6, 6], Sampling(temperature=0), row_generators([0, 0]), 3,
                       on_token=lambda row, token: seen.append((row, token)))
    assert results[0].ids == [5, 7] and results[0].finish_reason == "eos"
    assert results[1].ids == [4] * 6 and results[1].finish_reason == "length"
    assert (0, 3) not in seen and [t for r, t in seen if r == 0] == [5, 7]
    assert len(continuation.fed) == 5  # the batch moves together until its last row is done; never after


def test_max_new_tokens_per_row_and_zero():
    results = generate(Scripted([[5], [6], [7]]), [2, 4, 0], Sampling(temperature=0), row_generators([0] * 3), None)
    assert [r.ids for r in results] == [[5, 5], [6] * 4, []]
    assert [r.finish_reason for r in results] == ["length"] * 3


def test_a_full_context_stops_a_row():
    model = tiny(context_length=6)
    prompts = ids_of(2, 4)
    continuation = model.begin(prompts, 4 + 5)  # as the lm task sizes it: longest + C - shortest + 1
    results = generate(continuation, [20, 20], Sampling(temperature=0), row_generators([0, 0]), None, 6)
    assert [r.finish_reason for r in results] == ["context", "context"]
    assert [len(r.ids) for r in results] == [6 - 2 + 1, 6 - 4 + 1]  # the token predicted from a full window kept
    assert results[0].ids == naive_greedy(model, prompts[0], 5)
    assert results[1].ids == naive_greedy(model, prompts[1], 3)


def test_top_k_one_and_tiny_top_p_are_argmax():
    logits = torch.randn(64, 50, generator=torch.Generator().manual_seed(0)) * 3
    best = logits.argmax(-1)
    for sampling in (Sampling(temperature=1.5, top_k=1), Sampling(temperature=1.5, top_p=1e-6),
                     Sampling(temperature=0)):
        assert torch.equal(choose(logits, sampling, row_generators(range(64))), best)


def draws(logits: torch.Tensor, sampling: Sampling, n: int = 2000) -> torch.Tensor:
    return choose(logits.expand(n, -1), sampling, row_generators(range(n)))


def test_top_k_samples_only_the_k_best():
    logits = torch.tensor([0.5, 2.0, -1.0, 1.9, 0.0, 1.8, 1.7, -3.0])
    got = draws(logits, Sampling(temperature=2.0, top_k=3))
    assert set(got.tolist()) == {1, 3, 5}  # all three, nothing else


def test_top_p_samples_only_the_nucleus_in_proportion():
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    got = draws(probs.log(), Sampling(temperature=1.0, top_p=0.7))  # 0.5 + 0.3 reach 0.7: the 0.15 is out
    assert set(got.tolist()) == {1, 3}
    assert (got == 1).float().mean() == pytest.approx(0.5 / 0.8, abs=0.04)


def test_plain_sampling_follows_the_probabilities():
    probs = torch.tensor([0.1, 0.6, 0.0, 0.3])
    got = draws(probs.log(), Sampling())
    counts = torch.bincount(got, minlength=4).double() / len(got)
    assert counts[2] == 0
    assert torch.allclose(counts, probs.double(), atol=0.04)


def test_a_draw_at_either_edge_picks_an_allowed_token(monkeypatch):
    """torch.rand can return exactly 0 (one draw in 2**24 on the CPU): the pick must still be one of
    the tokens top_k allows, never token 0 of probability 0."""
    logits = torch.tensor([[0.0, 5.0, 4.0, -2.0]])
    for draw in (0.0, 1.0 - 2 ** -24):
        monkeypatch.setattr(decoding.torch, "rand", lambda *a, draw=draw, **k: torch.tensor(draw))
        assert choose(logits, Sampling(top_k=2), row_generators([0])).tolist()[0] in (1, 2), draw


def test_seeds_fix_a_row_whatever_its_batch():
    model = tiny()
    prompts = ids_of(2, 6, 4)
    sampling = Sampling(temperature=1.0)

    def run(rows, seeds):
        continuation = model.begin(rows, max(map(len, rows)) + 10)
        return [r.ids for r in generate(continuation, [10] * len(rows), sampling, row_generators(seeds), None, 16)]

    batch = run(prompts, [11, 12, 13])
    assert run(prompts, [11, 12, 13]) == batch
    for row in range(3):
        assert run([prompts[row]], [11 + row]) == [batch[row]]
    assert run(prompts, [21, 22, 23]) != batch


@pytest.mark.parametrize("temperature, top_k, top_p, key", [(-0.1, 0, 1.0, "temperature"),
                                                            (float("nan"), 0, 1.0, "temperature"),
                                                            (1.0, -1, 1.0, "top_k"),
                                                            (1.0, 0, 0.0, "top_p"),
                                                            (1.0, 0, 1.01, "top_p")])
def test_check_sampling_refuses_sampling_from_nothing(temperature, top_k, top_p, key):
    with pytest.raises(RecipeError, match=key):
        check_sampling(temperature, top_k, top_p)
    with pytest.raises(RecipeError, match=key):
        Sampling(temperature, top_k, top_p)


def test_check_sampling_accepts_the_edges():
    check_sampling(0.0, 0, 1.0)
    assert Sampling(0.0).greedy and not Sampling(0.5, 3, 1e-6).greedy


# ---------------------------------------------------------------- schedule


def test_warmup_cosine_ramps_then_anneals_to_the_final_ratio():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    scheduler = schedules.warmup_cosine(opt, 20, 5, warmup_steps=4, final_ratio=0.1)
    lrs = []
    for _ in range(22):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    assert lrs[:5] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0])  # linear over 4 steps, then the peak
    assert lrs[20] == pytest.approx(0.2) and lrs[21] == pytest.approx(0.2)  # final_ratio x lr, and it stays
    after = lrs[4:21]
    assert all(a > b for a, b in zip(after, after[1:]))
    cosine = [0.2 + 1.8 * 0.5 * (1 + math.cos(math.pi * s / 16)) for s in range(17)]  # 16 steps after warm-up
    assert after == pytest.approx(cosine)
    assert lrs[8] == pytest.approx(0.2 + 0.9 * (1 + math.sqrt(0.5)))  # a quarter of the way: above a straight line
    ratio = schedules.warmup_cosine(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 100, 5,
                                    warmup_ratio=0.1)
    assert ratio.get_last_lr()[0] == pytest.approx(0.1)  # 10 warm-up steps
