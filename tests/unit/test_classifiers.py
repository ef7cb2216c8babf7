"""The text classifiers one family at a time: each against its paper's formulas computed plainly on
one unpadded text, the attention maths against PyTorch's, and a tiny training run per family.

test_models.py covers what every registered model shares (shapes, gradients, checkpoints, padding).
"""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F
from helpers import TOPICS, make_dataset, tiny_kwargs
from torch import nn

from dlcli import api, registry
from dlcli.models.charcnn import LAYERS
from dlcli.nn.attention import AdditiveAttentionPooling, DotAttentionPooling, masked_softmax
from dlcli.nn.transformer import EncoderLayer, MultiHeadSelfAttention, scaled_dot_product, sinusoidal_positions
from dlcli.text.batching import pad

VOCAB, LABELS, PAD, H = 30, 4, 0, 8  # H: TINY_KNOBS' hidden_size
ROWS = [[3, 4, 5, 6, 7, 8], [9, 10], [11], [2, 14, 15, 16]]


def build(name: str, **knobs) -> nn.Module:
    torch.manual_seed(0)
    builder = registry.MODELS["classify"][name]
    return builder(VOCAB, LABELS, PAD, **tiny_kwargs(builder, **knobs)).eval()


def batch(rows: list[list[int]], model: nn.Module | None = None):
    return pad(rows, PAD, getattr(model, "min_length", 1))


def assert_padding_independent(model: nn.Module, texts: list[list[int]], long_text: list[int]) -> None:
    with torch.no_grad():
        for text in texts:
            alone = model(*batch([text], model))[0]
            padded = model(*batch([text, long_text], model))[0]
            assert torch.allclose(alone, padded, atol=1e-6), (len(text), alone, padded)


# ---------------------------------------------------------------- attention pooling


def test_masked_softmax_gives_padding_no_weight_and_an_empty_row_zeros():
    scores = torch.randn(3, 5) * 10
    mask = torch.arange(5) < torch.tensor([[5], [2], [0]])
    weights = masked_softmax(scores, mask)
    assert torch.all(weights[~mask] == 0)
    assert torch.allclose(weights[:2].sum(1), torch.ones(2))
    assert torch.allclose(weights[1, :2], torch.softmax(scores[1, :2], 0))
    assert torch.equal(weights[2], torch.zeros(5))  # not NaN


@pytest.mark.parametrize("pool_cls", [AdditiveAttentionPooling, DotAttentionPooling])
def test_attention_pooling_is_a_weighted_sum_that_ignores_padded_values(pool_cls):
    torch.manual_seed(0)
    pool = pool_cls(6)
    values = torch.randn(2, 5, 6)
    mask = torch.arange(5) < torch.tensor([[5], [3]])
    pooled, weights = pool(values, mask)
    assert torch.allclose(pooled, (weights.unsqueeze(-1) * values).sum(1), atol=1e-6)
    assert torch.allclose(weights.sum(1), torch.ones(2)) and torch.all(weights[~mask] == 0)
    garbage = values.masked_fill(~mask.unsqueeze(-1), 1e3)
    again, same_weights = pool(garbage, mask)
    assert torch.equal(weights, same_weights) and torch.allclose(pooled, again)


# ---------------------------------------------------------------- Zhou et al.'s attention BiLSTM


def reference_attn_lstm(model, row: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zhou et al. 2016, eqs. 9-12, on one text with no padding at all (so no packing either)."""
    states, _ = model.lstm(model.embedding(torch.tensor([row])))  # (1, L, 2H)
    if model.merge == "sum":
        states = states[..., :H] + states[..., H:]  # H = forward + backward
    alpha = torch.softmax(torch.tanh(states) @ model.pool.query, dim=1)  # (1, L)
    r = (alpha.unsqueeze(-1) * states).sum(1)  # (1, D)
    return model.output(torch.tanh(r))[0], alpha[0]


@pytest.mark.parametrize(("merge", "width"), [("sum", H), ("concat", 2 * H)])
def test_attn_lstm_follows_the_paper_and_its_weights_mask_padding(merge, width):
    model = build("attn_lstm", merge=merge)
    assert model.output.in_features == width
    ids, mask = batch(ROWS)
    with torch.no_grad():
        logits, weights = model(ids, mask), model.attention(ids, mask)
        for i, row in enumerate(ROWS):
            want_logits, want_alpha = reference_attn_lstm(model, row)
            assert torch.allclose(logits[i], want_logits, atol=1e-5)
            assert torch.allclose(weights[i, : len(row)], want_alpha, atol=1e-5)
    assert weights.shape == ids.shape
    assert torch.all(weights[~mask] == 0)
    assert torch.allclose(weights.sum(1), torch.ones(len(ROWS)))


def test_attn_lstm_rejects_an_unknown_merge():
    with pytest.raises(ValueError, match="merge must be one of"):
        build("attn_lstm", merge="mean")


# ---------------------------------------------------------------- recurrent classifiers


def reference_last(model, row: list[int]) -> torch.Tensor:
    """Logits from the final states of a plain, unpacked run over the text alone: forward after
    the last token and, for a bidirectional model, backward after the first."""
    states, _ = model.rnn(model.embedding(torch.tensor([row])))  # (1, L, D)
    if not model.rnn.bidirectional:
        return model.output(states[0, -1])
    return model.output(torch.cat([states[0, -1, :H], states[0, 0, H:]]))


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "bilstm", "bigru"])
def test_last_pooling_reads_each_direction_where_it_ends(name):
    model = build(name, num_layers=2)
    assert model.output.in_features == (2 * H if name.startswith("bi") else H)
    with torch.no_grad():
        got = model(*batch(ROWS))
        want = torch.stack([reference_last(model, row) for row in ROWS])
    assert torch.allclose(got, want, atol=1e-5)


def test_a_bidirectional_last_state_sees_the_start_of_the_text_and_a_forward_one_may_not():
    uni, bi = build("lstm"), build("bilstm")
    with torch.no_grad():
        for model, changes in ((uni, False), (bi, True)):
            # a long shared ending washes the first token out of the forward state, not the backward
            a, b = [3] + [4] * 40, [5] + [4] * 40
            outputs = model(*batch([a, b]))
            assert (not torch.allclose(outputs[0], outputs[1], atol=1e-4)) == changes


@pytest.mark.parametrize(("name", "pooling"), [("lstm", "mean"), ("gru", "max"), ("rnn", "attention"),
                                               ("bilstm", "attention"), ("bigru", "mean")])
def test_every_rnn_pooling_is_independent_of_batch_padding(name, pooling):
    model = build(name, pooling=pooling, num_layers=2)
    assert_padding_independent(model, [[5], [5, 6, 7], list(range(2, 25))], list(range(2, 30)) * 2)


def test_rnn_rejects_an_unknown_pooling():
    with pytest.raises(ValueError, match="pooling must be one of"):
        build("gru", pooling="first")


# ---------------------------------------------------------------- RCNN


def reference_rcnn(model, row: list[int]) -> torch.Tensor:
    """Lai et al. 2015, eqs. 1-6, on one unpadded text: contexts exclude the word itself."""
    e = model.embedding(torch.tensor([row]))  # (1, L, E)
    states, _ = model.lstm(e)  # (1, L, 2H)
    forward, backward = states[..., :H], states[..., H:]
    left = torch.cat([model.left_start.view(1, 1, H), forward[:, :-1]], 1)  # c_l(w_1) is learned
    right = torch.cat([backward[:, 1:], model.right_end.view(1, 1, H)], 1)  # so is c_r(w_n)
    y = torch.tanh(model.latent(torch.cat([left, e, right], -1)))  # (1, L, Z)
    return model.output(y.amax(1))[0]


def test_rcnn_follows_the_paper():
    model = build("rcnn")
    with torch.no_grad():
        nn.init.normal_(model.left_start)  # the learned edge contexts start at zero: move them
        nn.init.normal_(model.right_end)
        got = model(*batch(ROWS))
        want = torch.stack([reference_rcnn(model, row) for row in ROWS])
    assert torch.allclose(got, want, atol=1e-5)


# ---------------------------------------------------------------- transformer


def random_qkv(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(3, 2, 6, 4, generator=g) for _ in range(3))  # (B, N, T, K)
    return q, k, v, torch.arange(6) < torch.tensor([[6], [3], [1]])


def test_scaled_dot_product_matches_torch():
    q, k, v, mask = random_qkv()
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
    assert torch.allclose(scaled_dot_product(q, k, v, mask), want, atol=1e-6)


def test_multi_head_self_attention_matches_torch_multihead_attention():
    torch.manual_seed(0)
    ours = MultiHeadSelfAttention(8, 2).eval()
    theirs = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    with torch.no_grad():  # same weights: torch stacks q, k, v row blocks as ours does
        theirs.in_proj_weight.copy_(ours.qkv.weight)
        theirs.in_proj_bias.copy_(ours.qkv.bias)
        theirs.out_proj.weight.copy_(ours.proj.weight)
        theirs.out_proj.bias.copy_(ours.proj.bias)
        x = torch.randn(3, 6, 8)
        mask = torch.arange(6) < torch.tensor([[6], [4], [1]])
        want, _ = theirs(x, x, x, key_padding_mask=~mask, need_weights=False)
        assert torch.allclose(ours(x, mask), want, atol=1e-5)


def test_pre_and_post_norm_layers_differ_and_post_norm_ends_normalised():
    x, mask = torch.randn(2, 5, 8) * 3, torch.arange(5) < torch.tensor([[5], [2]])
    torch.manual_seed(0)
    pre = EncoderLayer(8, 2, 16, dropout=0.0, norm="pre").eval()
    torch.manual_seed(0)
    post = EncoderLayer(8, 2, 16, dropout=0.0, norm="post").eval()
    assert all(torch.equal(a, b) for a, b in zip(pre.state_dict().values(), post.state_dict().values()))
    with torch.no_grad():
        a, b = pre(x, mask), post(x, mask)
    assert not torch.allclose(a, b, atol=1e-3)
    assert torch.allclose(b.mean(-1), torch.zeros(2, 5), atol=1e-5)  # LayerNorm last, initial gain 1
    assert not torch.allclose(a.mean(-1), torch.zeros(2, 5), atol=1e-2)  # a residual stream


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_transformer_variants_are_independent_of_batch_padding(norm, pooling, positions):
    model = build("transformer", norm=norm, pooling=pooling, positions=positions, num_layers=2)
    assert_padding_independent(model, [[5], [5, 6, 7, 8], list(range(2, 20))], list(range(2, 30)) * 3)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_transformer_sees_word_order(positions):
    model = build("transformer", pooling="mean", positions=positions)
    if model.positions is not None:
        nn.init.normal_(model.positions.weight)  # learned positions start small: make them count
    with torch.no_grad():
        a, b = model(*batch([[3, 4, 5, 6], [6, 5, 4, 3]]))
    assert not torch.allclose(a, b, atol=1e-4)  # without positions a mean-pooled encoder could not tell


def test_transformer_keeps_the_first_max_positions_tokens():
    model = build("transformer", positions="learned", max_positions=8)  # [CLS] + 7 tokens
    text = list(range(2, 14))
    with torch.no_grad():
        assert torch.allclose(model(*batch([text]))[0], model(*batch([text[:7]]))[0], atol=1e-6)


def test_sinusoidal_positions_follow_the_formula():
    table = sinusoidal_positions(50, 6)
    for pos, i in [(0, 0), (7, 1), (49, 2)]:
        angle = pos / 10000 ** (2 * i / 6)
        assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
        assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)
    assert sinusoidal_positions(4, 5).shape == (4, 5)


# ---------------------------------------------------------------- character CNN


def plain_stack_length(model, length: int) -> int:
    h = torch.zeros(1, model.embedding.embedding_dim, length)
    for conv, (_, pooled) in zip(model.convs, LAYERS):
        h = model.pool(torch.relu(conv(h))) if pooled else torch.relu(conv(h))
    return h.size(2)


def test_charcnn_min_length_is_the_shortest_input_its_stack_accepts():
    model = build("charcnn")
    assert model.min_length == 123  # 7-1, x3, +7-1, x3, +4 x (3-1), x3 back from one position
    with torch.no_grad():
        assert plain_stack_length(model, model.min_length) == 1
        with pytest.raises(RuntimeError):
            plain_stack_length(model, model.min_length - 1)


def reference_charcnn(model, row: list[int]) -> torch.Tensor:
    """One text padded to its frame, every layer computed over the whole frame, positions that see
    only padding zeroed before each convolution and pooling: no cutting, no batch."""
    ids = torch.tensor([row + [PAD] * (model.min_length - len(row))])  # (1, frame)
    h, seen = model.embedding(ids).transpose(1, 2), len(row)  # (1, E, frame)
    for i, (conv, (_, pooled)) in enumerate(zip(model.convs, LAYERS)):
        h[..., seen:] = 0
        h = conv(h)
        if model.norms is not None:  # eval mode: a fixed affine map per channel
            norm = model.norms[i]
            h = F.batch_norm(h, norm.running_mean, norm.running_var, norm.weight, norm.bias, eps=norm.eps)
        h = torch.relu(h)
        if pooled:
            h[..., seen:] = 0
            h, seen = model.pool(h), math.ceil(seen / 3)
    return model.output(model.fc(h[..., :seen].amax(2)))[0]


def randomise_norms(model: nn.Module) -> nn.Module:
    """Running statistics and affine parameters away from the identity, as after training."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for norm in model.norms or []:
            for t in (norm.weight, norm.bias, norm.running_mean):
                t.copy_(torch.randn(t.shape, generator=g) * 0.5 + (1.0 if t is norm.weight else 0.0))
            norm.running_var.copy_(torch.rand(norm.running_var.shape, generator=g) + 0.5)
    return model


@pytest.mark.parametrize("norm", [None, "batch", "batch_renorm"])
def test_charcnn_matches_a_plain_full_frame_computation(norm):
    model = randomise_norms(build("charcnn", norm=norm))
    g = torch.Generator().manual_seed(0)
    rows = [torch.randint(2, VOCAB, (n,), generator=g).tolist() for n in (1, 5, 40, 122, 123, 150)]
    with torch.no_grad():
        got = model(*batch(rows, model))
        want = torch.stack([reference_charcnn(model, row) for row in rows])
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("norm", [None, "batch", "batch_renorm"])
def test_charcnn_texts_longer_than_its_frame_are_independent_of_batch_padding(norm):
    model = randomise_norms(build("charcnn", norm=norm))
    g = torch.Generator().manual_seed(0)
    texts = [torch.randint(2, VOCAB, (n,), generator=g).tolist() for n in (1, 122, 123, 124, 200, 333)]
    assert_padding_independent(model, texts, torch.randint(2, VOCAB, (500,), generator=g).tolist())


def test_charcnn_batch_norm_trains_on_batch_statistics_of_the_text_positions_only():
    model = build("charcnn", norm="batch", dropout=0.0).train()
    g = torch.Generator().manual_seed(0)
    rows = [torch.randint(2, VOCAB, (n,), generator=g).tolist() for n in (5, 40, 150)]
    ids, mask = batch(rows, model)
    more = F.pad(ids, (0, 60), value=PAD), F.pad(mask, (0, 60), value=False)  # extra padding columns
    with torch.no_grad():
        trained = model(ids, mask)
        assert torch.allclose(trained, model(*more), atol=1e-5)  # padding is not in the statistics
        assert not torch.allclose(trained, model.eval()(ids, mask), atol=1e-3)  # eval: running statistics
        assert int(model.norms[0].num_batches_tracked) == 2


def test_charcnn_batch_renorm_trains_on_the_outputs_eval_mode_gives():
    model = build("charcnn", norm="batch_renorm", dropout=0.0)
    g = torch.Generator().manual_seed(0)
    ids, mask = batch([torch.randint(2, VOCAB, (n,), generator=g).tolist() for n in (5, 40, 150, 90)], model)
    plain = build("charcnn", norm="batch", dropout=0.0).train()
    with torch.no_grad():
        for _ in range(200):  # running statistics settle on this batch's
            trained = model.train()(ids, mask)
        assert torch.allclose(trained, model.eval()(ids, mask), atol=1e-2)
        assert torch.allclose(trained, plain(ids, mask), atol=1e-2)  # and equal plain batch norm there


def test_charcnn_refuses_an_unknown_norm():
    with pytest.raises(ValueError, match="norm must be batch or batch_renorm"):
        build("charcnn", norm="group")


def test_charcnn_first_guesses_are_near_uniform():
    model = build("charcnn", num_filters=64, fc_size=256)
    g = torch.Generator().manual_seed(0)
    ids, mask = batch([torch.randint(2, VOCAB, (n,), generator=g).tolist() for n in (5, 40, 150)], model)
    with torch.no_grad():
        logits = model(ids, mask)
    assert logits.abs().max() < 1.0  # the small output layer: no confident start (PyTorch's init: about 2)


def reference_wide_charcnn(model, row: list[int]) -> torch.Tensor:
    """The wide stack on one unbatched text: per width, k - 1 zeros each side, convolution, ReLU, max."""
    x = model.embedding(torch.tensor([row])).transpose(1, 2)  # (1, E, T)
    pooled = []
    for i, (conv, k) in enumerate(zip(model.convs, model.widths)):
        h = conv(F.pad(x, (k - 1, k - 1)))
        if model.norms is not None:  # eval mode: a fixed affine map per channel
            norm = model.norms[i]
            h = F.batch_norm(h, norm.running_mean, norm.running_var, norm.weight, norm.bias, eps=norm.eps)
        pooled.append(torch.relu(h).amax(2))
    return model.output(model.fc(torch.cat(pooled, 1)))[0]


@pytest.mark.parametrize("norm", [None, "batch_renorm"])
def test_charcnn_wide_stack_matches_a_plain_per_text_computation(norm):
    model = randomise_norms(build("charcnn", widths=[1, 3, 5], norm=norm))
    assert model.min_length == 1 and len(model.convs) == 3
    g = torch.Generator().manual_seed(0)
    rows = [torch.randint(2, VOCAB, (n,), generator=g).tolist() for n in (1, 2, 4, 9, 40)]
    with torch.no_grad():
        got = model(*batch(rows, model))
        want = torch.stack([reference_wide_charcnn(model, row) for row in rows])
    assert torch.allclose(got, want, atol=1e-5)
    assert_padding_independent(model, rows, torch.randint(2, VOCAB, (80,), generator=g).tolist())


@pytest.mark.parametrize("widths", [[], [3, 0]])
def test_charcnn_refuses_bad_widths(widths):
    with pytest.raises(ValueError, match="widths must be a non-empty list"):
        build("charcnn", widths=widths)


# ---------------------------------------------------------------- each family learns


FAMILIES = {  # model, dataset size per label, vocabulary, train section
    "bigru": ({"type": "bigru", "embedding_dim": 16, "hidden_size": 16, "pooling": "attention"}, 40, "word", {}),
    "attn_lstm": ({"type": "attn_lstm", "embedding_dim": 16, "hidden_size": 16, "dropout": 0.2}, 40, "word", {}),
    "rcnn": ({"type": "rcnn", "embedding_dim": 16, "hidden_size": 16, "latent_size": 16}, 40, "word", {}),
    "transformer": ({"type": "transformer", "d_model": 16, "ff_size": 32, "num_heads": 2, "num_layers": 1},
                    40, "word", {"optimizer": {"type": "adam", "lr": 0.01}}),
    # a deep character model needs more data than 40 texts a label (on 40 it learns them by heart)
    "charcnn": ({"type": "charcnn", "embedding_dim": 16, "num_filters": 32, "fc_size": 32, "dropout": 0.1},
                300, "char", {"epochs": 10, "batch_size": 32, "optimizer": {"type": "adam", "lr": 0.01}}),
    "charcnn_wide": ({"type": "charcnn", "widths": [3, 5], "embedding_dim": 16, "num_filters": 32, "fc_size": 32,
                      "dropout": 0.1}, 100, "char", {"epochs": 10, "optimizer": {"type": "adam", "lr": 0.01}}),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_learns_the_synthetic_task(tmp_path, family):
    model, n_train, vocab, train = FAMILIES[family]
    data = make_dataset(tmp_path / "data", n_train=n_train)
    recipe = data.recipe(model=model, vocab={"type": vocab, "lowercase": True}, train={"epochs": 8, **train})
    start = time.perf_counter()
    summary = api.train(recipe, out=tmp_path / "m.pt")
    print(f"{family}: {time.perf_counter() - start:.1f}s, dev accuracy {summary['best']:.3f}")
    assert summary["best"] >= 0.9
    loaded = api.load_model(tmp_path / "m.pt")
    assert loaded.task.min_length == getattr(loaded.model, "min_length", 1)  # charcnn: 123 (wide: 1), kept in the file
    assert api.evaluate(loaded, data.dev)["accuracy"] == pytest.approx(summary["best"])


def test_classify_explain_shows_attention_on_the_keywords(tmp_path, cli, trained):
    model, n_train, vocab, train = FAMILIES["attn_lstm"]
    data = make_dataset(tmp_path / "data", n_train=n_train)
    recipe = data.recipe(model=model, train={"epochs": 8, **train})
    out = api.train(recipe, out=tmp_path / "m.pt")["checkpoint"]
    texts = [text for _, text in data.dev_rows()]
    result = cli("classify", out, "--explain", stdin="".join(t + "\n" for t in texts).encode())
    assert result.code == 0, result.err
    keywords = {word for words in TOPICS.values() for word in words}
    hits = 0
    for text, record in zip(texts, result.records(), strict=True):
        attention = record["attention"]
        assert [a["token"] for a in attention] == text.lower().split()
        assert sum(a["weight"] for a in attention) == pytest.approx(1.0, abs=1e-4)
        hits += max(attention, key=lambda a: a["weight"])["token"] in keywords
    assert hits >= 0.8 * len(texts)  # the weights say something true about the model
    refused = cli("classify", trained, "--explain", stdin=b"a text\n")
    assert refused.code == 1 and "needs a model with word-level attention" in refused.err and refused.out == ""
