"""Every registered model: shapes, finite loss, gradients, save -> load, and padding independence."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_kwargs
from torch import nn

from dlcli import api, checkpoint, registry
from dlcli.models.mlp import MLPClassifier
from dlcli.models.textcnn import TextCNN
from dlcli.tasks.classify import ClassifyTask
from dlcli.text.batching import pad
from dlcli.text.vocab import build_word_vocab

VOCAB, LABELS, PAD = 30, 4, 0
MODELS = [("classify", name) for name in registry.MODELS["classify"]]  # taggers: test_tagger.py


def build(task: str, name: str, **knobs) -> nn.Module:
    torch.manual_seed(0)
    builder = registry.MODELS[task][name]
    return builder(VOCAB, LABELS, PAD, **tiny_kwargs(builder, **knobs))


def batch(rows: list[list[int]], min_length: int = 1):
    return pad(rows, PAD, min_length)


ROWS = [[3, 4, 5, 6, 7, 8], [9, 10], [11, 12, 13], [2, 14, 15, 16]]


def min_len(model: nn.Module) -> int:
    return getattr(model, "min_length", 1)


def embedding_of(model: nn.Module) -> nn.Embedding:
    return next(m for m in model.modules() if isinstance(m, nn.Embedding))


def train_a_little(model: nn.Module, steps: int = 3) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    ids, mask = batch(ROWS, min_len(model))
    target = torch.tensor([0, 1, 2, 3])
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(ids, mask), target).backward()
        optimizer.step()


@pytest.mark.parametrize(("task", "name"), MODELS)
def test_forward_loss_backward(task, name):
    model = build(task, name)
    train_a_little(model, steps=1)  # fastText starts with a zero output layer, so no gradient reaches
    model.zero_grad()               # its embeddings on the very first step
    ids, mask = batch(ROWS, min_len(model))
    logits = model(ids, mask)
    assert logits.shape == (len(ROWS), LABELS)
    loss = F.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    grad = embedding_of(model).weight.grad
    assert grad is not None and grad.abs().sum() > 0
    if name != "gpt":  # a gpt reads the padding id as the token its texts start after (<|endoftext|>)
        assert grad[PAD].abs().sum() == 0  # padding never learns


@pytest.mark.parametrize(("task", "name"), MODELS)
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, task, name):
    vocab = build_word_vocab([" ".join(f"w{i}" for i in range(VOCAB - 2))])
    labels = [f"l{i}" for i in range(LABELS)]
    model = build(task, name)
    train_a_little(model)  # moves weights and BatchNorm statistics off their initial values
    model.eval()
    adapter = ClassifyTask(vocab, labels, multi_label=False, max_length=None, min_length=min_len(model))
    component = registry.Component(name, tiny_kwargs(registry.MODELS[task][name]))
    _, kwargs = registry.model_builder(task, component)
    path = tmp_path / "m.pt"
    checkpoint.save(path, {"task": task, "recipe": {}, "model": {"type": name, "kwargs": kwargs},
                           **adapter.payload(), "state_dict": model.state_dict(), "metrics": {}})
    loaded = api.load_model(path)
    assert not loaded.model.training
    ids, mask = batch(ROWS, min_len(model))
    with torch.no_grad():
        assert torch.equal(loaded.model(ids, mask), model(ids, mask))


@pytest.mark.parametrize(("task", "name"), MODELS)
@pytest.mark.parametrize("text", [[5], [5, 6], [5, 6, 7, 8]], ids=["len1", "len2", "len4"])
def test_prediction_does_not_depend_on_batch_padding(task, name, text):
    model = build(task, name)
    train_a_little(model)
    model.eval()
    long_text = list(range(2, 2 + 20))
    with torch.no_grad():
        alone = model(*batch([text], min_len(model)))[0]
        padded = model(*batch([text, long_text], min_len(model)))[0]
    assert torch.allclose(alone, padded, atol=1e-6), (alone, padded)


def reference_textcnn(model: TextCNN, row: list[int]) -> torch.Tensor:
    """Kim's TextCNN spelt out with plain convolutions, one text at a time, no batch padding."""
    x = model.embedding(torch.tensor([row])).transpose(1, 2)  # (1, E, L)
    features = []
    for k, conv in zip(model.kernel_sizes, model.convs):
        if model.edge_padding:  # wide convolution: every window that overlaps the text
            h = F.conv1d(x, conv.weight, conv.bias, padding=k - 1)
        else:  # narrow; a text shorter than k gets one zero-padded window
            h = conv(F.pad(x, (0, max(0, k - x.size(2)))))
        features.append(torch.relu(h).amax(2))  # (1, F)
    return model.output(torch.cat(features, 1))[0]


@pytest.mark.parametrize("edge_padding", [True, False])
def test_textcnn_matches_reference_convolution(edge_padding):
    model = build("classify", "textcnn", dropout=0.0, edge_padding=edge_padding)
    train_a_little(model)
    model.eval()
    rows = [[3, 4, 5, 6, 7], [8, 9], [10]]
    with torch.no_grad():
        got = model(*batch(rows, model.min_length))
        want = torch.stack([reference_textcnn(model, row) for row in rows])
    assert torch.allclose(got, want, atol=1e-5)


def test_textcnn_inference_table_matches_the_training_path_and_follows_weight_changes():
    model = build("classify", "textcnn", dropout=0.0)
    model.eval()
    ids, mask = batch([[3, 4, 5, 6, 7], [8, 9], [10]], model.min_length)
    with torch.no_grad():
        looked_up = model(ids, mask)  # builds and uses the vocabulary table
    assert model._table is not None
    assert torch.allclose(looked_up, model(ids, mask), atol=1e-5)  # grad enabled: the GEMM path
    with torch.no_grad():
        model.convs[0].weight.add_(0.5)  # an optimizer step or load_state_dict changes weights in place
        after = model(ids, mask)
    assert not torch.allclose(after, looked_up, atol=1e-3)
    assert torch.allclose(after, model(ids, mask), atol=1e-5)


def test_textcnn_max_norm_constraint():
    model = TextCNN(VOCAB, LABELS, PAD, embedding_dim=8, kernel_sizes=[2], num_filters=4, max_norm=0.5)
    with torch.no_grad():
        model.output.weight.mul_(100)
    model.after_optimizer_step()
    assert torch.all(model.output.weight.norm(dim=1) <= 0.5 + 1e-6)


def test_mlp_batchnorm_train_and_eval_modes():
    model = MLPClassifier(VOCAB, LABELS, PAD, embedding_dim=8, hidden_sizes=[8], dropout=0.0)
    train_a_little(model, steps=5)
    ids, mask = batch(ROWS)
    with torch.no_grad():
        model.train()
        train_out = model(ids, mask)
        model.eval()
        eval_out = model(ids, mask)
        eval_alone = torch.cat([model(ids[i : i + 1], mask[i : i + 1]) for i in range(len(ROWS))])
        eval_pair = model(ids[:2], mask[:2])
    assert not torch.allclose(train_out, eval_out, atol=1e-4)  # batch statistics vs running averages
    assert torch.allclose(eval_out, eval_alone, atol=1e-6)  # eval mode: no dependence on the batch
    assert torch.allclose(eval_out[:2], eval_pair, atol=1e-6)


@pytest.mark.parametrize("pooling", ["mean", "max", "mean+max"])
def test_mlp_poolings_and_bad_pooling(pooling):
    model = MLPClassifier(VOCAB, LABELS, PAD, embedding_dim=8, hidden_sizes=[8, 6], pooling=pooling, batch_norm=False)
    assert model(*batch(ROWS)).shape == (len(ROWS), LABELS)
    with pytest.raises(ValueError, match="pooling must be one of"):
        MLPClassifier(VOCAB, LABELS, PAD, pooling="median")


def test_mlp_mean_max_pooling_concatenates_masked_mean_and_max():
    model = MLPClassifier(VOCAB, LABELS, PAD, embedding_dim=8, hidden_sizes=[6], pooling="mean+max", batch_norm=False)
    assert model.hidden[0].in_features == 16
    ids, mask = batch(ROWS)
    x = model.embedding(ids)
    pooled = model.pool(x, mask)
    assert torch.allclose(pooled[1], torch.cat([x[1, :2].mean(0), x[1, :2].max(0).values]))  # padding never counts


def test_mlp_embedding_init_is_small_uniform_with_a_zero_pad_row():
    torch.manual_seed(0)
    weight = MLPClassifier(VOCAB, LABELS, PAD, embedding_dim=8, embedding_init=0.125).embedding.weight
    assert weight.abs().max() <= 0.125 and weight.abs().max() > 0.1
    assert not weight[PAD].any()
    assert MLPClassifier(VOCAB, LABELS, PAD, embedding_dim=8).embedding.weight.std() > 0.5  # unset: N(0, 1)
    with pytest.raises(ValueError, match="embedding_init"):
        MLPClassifier(VOCAB, LABELS, PAD, embedding_init=0.0)
