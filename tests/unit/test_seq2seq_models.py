"""Encoder-decoders and beam search: step-by-step decoding gives the scores of the whole-target
forward pass, padding changes nothing, `select` moves rows with all they carry, beam search with
a wide enough beam finds the best output that brute force finds, and beam 1 is greedy."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from dlcli import decoding
from dlcli.models.rnn_seq2seq import RNNSeq2Seq
from dlcli.models.transformer_seq2seq import TransformerSeq2Seq
from dlcli.nn.attention import QueryAttention
from dlcli.schedules import inverse_sqrt

SV, TV = 11, 7  # vocabulary sizes; id 2 ends a sentence
EOS = 2


def rnn(**knobs) -> RNNSeq2Seq:
    return RNNSeq2Seq(SV, TV, **{"embedding_dim": 8, "hidden_size": 12, "dropout": 0.0, **knobs})


def transformer(**knobs) -> TransformerSeq2Seq:
    return TransformerSeq2Seq(SV, TV, **{"d_model": 16, "num_heads": 2, "ff_size": 24, "encoder_layers": 2,
                                         "decoder_layers": 2, "dropout": 0.0, "max_positions": 40, **knobs})


MODELS = {
    "transformer_pre": lambda: transformer(),
    "transformer_post": lambda: transformer(norm="post", tie_embeddings="none"),
    "gru_additive_feeding": lambda: rnn(),
    "gru_dot": lambda: rnn(attention="dot", input_feeding=False),
    "lstm_general_2layers": lambda: rnn(cell="lstm", attention="general", num_layers=2),
    "lstm_none_unidirectional": lambda: rnn(cell="lstm", attention="none", bidirectional=False),
    "gru_none_feeding": lambda: rnn(attention="none", tie_embeddings="decoder"),
}


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = [5, 3, 7]
    source = torch.randint(3, SV, (3, 7), generator=g)
    mask = torch.arange(7)[None] < torch.tensor(lengths)[:, None]
    source = source.masked_fill(~mask, 0)
    target_in = torch.randint(3, TV, (3, 6), generator=g)
    target_in[:, 0] = EOS
    return source, mask, target_in


def model_of(name: str):
    torch.manual_seed(0)
    return MODELS[name]().eval()


@pytest.mark.parametrize("name", MODELS)
def test_step_by_step_decoding_equals_the_whole_target_pass(name):
    model = model_of(name)
    source, mask, target_in = batch()
    with torch.no_grad():
        whole = model(source, mask, target_in)  # (B, T, V)
        state = model.start(source, mask)
        steps = [state.step(target_in[:, t])[0] for t in range(target_in.shape[1])]
    torch.testing.assert_close(torch.stack(steps, 1), whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_padding_and_batch_company_change_nothing(name):
    model = model_of(name)
    source, mask, target_in = batch()
    with torch.no_grad():
        together = model(source, mask, target_in)
        alone = model(source[1:2, :3], mask[1:2, :3], target_in[1:2])
    torch.testing.assert_close(alone[0], together[1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_select_moves_rows_with_their_state(name):
    model = model_of(name)
    source, mask, target_in = batch()
    with torch.no_grad():
        state = model.start(source, mask)
        first = state.step(target_in[:, 0])[0]
        state.select(torch.tensor([2, 0, 2]))
        second = state.step(target_in[[2, 0, 2], 1])[0]
        reference = model(source, mask, target_in[:, :2])[:, 1]
    torch.testing.assert_close(first, model(source, mask, target_in[:, :1])[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(second, reference[[2, 0, 2]], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["transformer_pre", "gru_additive_feeding"])
def test_attention_weights_are_distributions_over_the_real_source(name):
    model = model_of(name)
    source, mask, target_in = batch()
    with torch.no_grad():
        state = model.start(source, mask)
        _, weights = state.step(target_in[:, 0], need_weights=True)
    assert weights.shape == mask.shape
    torch.testing.assert_close(weights.sum(1), torch.ones(3))
    assert float(weights[~mask].abs().sum()) == 0.0


def brute_force_best(model, source, mask, max_length: int) -> tuple[list[int], float]:
    """The most probable output of one sentence over every output of at most max_length tokens:
    those ended by EOS, and those cut at max_length (scored without an end token)."""
    best = ([], -math.inf)
    with torch.no_grad():
        for length in range(0, max_length + 1):
            for body in itertools.product([t for t in range(TV) if t != EOS], repeat=length):
                cut = length == max_length
                target = [EOS, *body] if cut else [EOS, *body, EOS]
                ids = torch.tensor([target[:-1]]) if not cut else torch.tensor([target])
                logp = torch.log_softmax(model(source, mask, ids)[0], -1)
                follow = target[1:]
                total = float(sum(logp[t, tok] for t, tok in enumerate(follow)))
                if total > best[1]:
                    best = (list(body), total)
    return best


@pytest.mark.parametrize("name", ["transformer_pre", "lstm_general_2layers"])
def test_a_wide_beam_finds_the_brute_force_best(name):
    model = model_of(name)
    source, mask, _ = batch(3)
    source, mask = source[1:2, :3], mask[1:2, :3]
    want_ids, want_logprob = brute_force_best(model, source, mask, 3)
    state = model.start(source, mask)
    hyps = decoding.beam_search(state, EOS, EOS, [3], beam_size=(TV - 1) ** 3 + 10, alpha=0.0)[0]
    assert hyps[0].ids == want_ids
    assert hyps[0].logprob == pytest.approx(want_logprob, abs=1e-4)


@pytest.mark.parametrize("name", ["transformer_pre", "gru_dot"])
def test_beam_one_is_greedy_and_scores_are_the_models(name):
    model = model_of(name)
    source, mask, _ = batch(5)
    state = model.start(source, mask)
    results = decoding.beam_search(state, EOS, EOS, [6, 6, 6], beam_size=1)
    for row, (hyp,) in enumerate(results):
        ids, total = [EOS], 0.0
        with torch.no_grad():
            for _ in range(6):
                logp = torch.log_softmax(model(source[row:row + 1], mask[row:row + 1], torch.tensor([ids]))[0, -1], -1)
                token = int(logp.argmax())
                total += float(logp[token])
                if token == EOS:
                    break
                ids.append(token)
        assert hyp.ids == ids[1:]
        assert hyp.finish_reason == ("eos" if token == EOS else "length")
        assert hyp.logprob == pytest.approx(total, abs=1e-4)


def test_beam_search_keeps_n_best_in_rank_order_and_attention_per_step():
    model = model_of("gru_additive_feeding")
    source, mask, _ = batch(7)
    hyps = decoding.beam_search(model.start(source, mask), EOS, EOS, [5, 0, 4], beam_size=4, n_best=3,
                                need_weights=True)
    assert [len(h) for h in hyps] == [3, 1, 3]
    assert hyps[1][0].ids == [] and hyps[1][0].finish_reason == "length"  # a length of 0: nothing decoded
    for sentence, limit in zip(hyps, [5, 0, 4]):
        ranks = [h.rank_score for h in sentence]
        assert ranks == sorted(ranks, reverse=True)
        for h in sentence:
            assert len(h.ids) <= limit
            if limit and h.attention is not None:
                steps = len(h.ids) + (h.finish_reason == "eos")
                assert h.attention.shape[0] == steps
    assert decoding.length_penalty(1, 0.0) == 1.0 and decoding.length_penalty(7, 1.0) == 2.0
    with pytest.raises(Exception, match="n_best"):
        decoding.beam_search(model.start(source, mask), EOS, EOS, [3, 3, 3], beam_size=2, n_best=3)


def test_teacher_forcing_below_one_feeds_the_models_own_guesses_in_training():
    torch.manual_seed(0)
    model = rnn(teacher_forcing=0.0, dropout=0.0).train()
    source, mask, target_in = batch()
    own = model(source, mask, target_in)
    model.teacher_forcing = 1.0
    forced = model(source, mask, target_in)
    torch.testing.assert_close(own[:, 0], forced[:, 0])  # the first step reads the start token either way
    assert not torch.allclose(own[:, 1:], forced[:, 1:])


def test_knobs_that_cannot_fit_are_refused():
    with pytest.raises(ValueError, match="dot attention"):
        QueryAttention(8, 12, "dot")
    with pytest.raises(ValueError, match="one vocabulary"):
        rnn(tie_embeddings="all")
    with pytest.raises(ValueError, match="attention"):
        rnn(attention="bahdanau")
    with pytest.raises(ValueError, match="even"):
        rnn(hidden_size=13)
    shared = TransformerSeq2Seq(9, 9, d_model=8, num_heads=2, ff_size=8, tie_embeddings="all")
    assert shared.source_embedding is shared.target_embedding
    assert shared.output.weight is shared.target_embedding.weight


def test_inverse_sqrt_warms_up_then_decays():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = inverse_sqrt(optimizer, 100, 10, warmup_steps=4)
    factors = [schedule.lr_lambdas[0](step) for step in range(16)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[15] == pytest.approx(math.sqrt(4 / 16))
