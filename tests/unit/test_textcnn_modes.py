"""TextCNN's pretrained-vector variants (Kim 2014): rand, static, non_static, multichannel.

Loading real vector files through a recipe: tests/e2e/test_train_vectors.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlcli import api, checkpoint, registry
from dlcli.models.textcnn import TextCNN
from dlcli.tasks.classify import ClassifyTask
from dlcli.text.batching import pad
from dlcli.text.vocab import build_word_vocab

VOCAB, LABELS, PAD = 30, 4, 0
KNOBS = {"embedding_dim": 8, "kernel_sizes": [2, 3], "num_filters": 4, "dropout": 0.0}
ROWS = [[3, 4, 5, 6, 7], [8, 9], [10], [11, 12, 13]]
TARGET = torch.tensor([0, 1, 2, 3])


def build(mode: str, **knobs) -> TextCNN:
    torch.manual_seed(0)
    model = TextCNN(VOCAB, LABELS, PAD, **{**KNOBS, **knobs}, embedding_mode=mode)
    with torch.no_grad():  # stands in for data.vectors: a table unlike the random start
        model.embedding.weight[1:].normal_()
    model.after_init_vectors()
    return model


def train_a_little(model: TextCNN, steps: int = 3) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(*pad(ROWS, PAD)), TARGET).backward()
        optimizer.step()
    model.eval()


@pytest.mark.parametrize(("mode", "trains_embedding"),
                         [("rand", True), ("static", False), ("non_static", True), ("multichannel", True)])
def test_each_mode_trains_exactly_the_tables_it_should(mode, trains_embedding):
    model = build(mode)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    if mode == "multichannel":  # both channels start from the same vectors
        assert torch.equal(start["static_embedding.weight"], start["embedding.weight"])
    else:
        assert model.static_embedding is None and "static_embedding.weight" not in start
    train_a_little(model)
    after = model.state_dict()
    assert torch.equal(after["embedding.weight"], start["embedding.weight"]) != trains_embedding
    assert model.embedding.weight.requires_grad == trains_embedding
    if mode == "multichannel":
        assert torch.equal(after["static_embedding.weight"], start["static_embedding.weight"])
        assert not model.static_embedding.weight.requires_grad
    assert not torch.equal(after["convs.0.weight"], start["convs.0.weight"])  # the filters always learn


def reference(model: TextCNN, row: list[int]) -> torch.Tensor:
    """Kim's multichannel network spelt out: each filter over each channel, the two results added."""
    ids = torch.tensor([row])
    channels = [model.embedding(ids), model.static_embedding(ids)]  # 2 x (1, L, E)
    features = []
    for k, conv in zip(model.kernel_sizes, model.convs):
        c = sum(F.conv1d(x.transpose(1, 2), conv.weight, padding=k - 1) for x in channels) + conv.bias[:, None]
        features.append(torch.relu(c).amax(2))  # (1, F)
    return model.output(torch.cat(features, 1))[0]


def test_multichannel_matches_the_paper_and_both_inference_paths_agree():
    model = build("multichannel")
    train_a_little(model)  # the channels now differ
    assert not torch.equal(model.embedding.weight, model.static_embedding.weight)
    ids, mask = pad(ROWS, PAD)
    with torch.no_grad():
        looked_up = model(ids, mask)  # eval + no_grad: the vocabulary table over both channels
        assert model._table is not None
        want = torch.stack([reference(model, row) for row in ROWS])
    assert torch.allclose(looked_up, want, atol=1e-5)
    assert torch.allclose(model(ids, mask), want, atol=1e-5)  # grad enabled: the training path
    with torch.no_grad():
        model.static_embedding.weight[ROWS[1]] += 1.0  # the table follows the fixed channel too
        moved = model(ids, mask)
    assert not torch.allclose(moved[1], looked_up[1], atol=1e-3)
    assert torch.allclose(moved, model(ids, mask), atol=1e-5)


@pytest.mark.parametrize("mode", ["static", "multichannel"])
def test_pretrained_modes_are_independent_of_batch_padding(mode):
    model = build(mode)
    train_a_little(model)
    long_text = list(range(2, 22))
    with torch.no_grad():
        for text in ([5], [5, 6], [5, 6, 7, 8]):
            alone = model(*pad([text], PAD))[0]
            assert torch.allclose(alone, model(*pad([text, long_text], PAD))[0], atol=1e-6)


@pytest.mark.parametrize("mode", ["static", "multichannel"])
def test_checkpoint_round_trip_keeps_both_channels_and_which_is_fixed(tmp_path, mode):
    model = build(mode)
    train_a_little(model)
    vocab = build_word_vocab([" ".join(f"w{i}" for i in range(VOCAB - 2))])
    adapter = ClassifyTask(vocab, [f"l{i}" for i in range(LABELS)], multi_label=False, max_length=None)
    _, kwargs = registry.model_builder("classify", registry.Component("textcnn", {**KNOBS, "embedding_mode": mode}))
    path = tmp_path / "m.pt"
    checkpoint.save(path, {"task": "classify", "recipe": {}, "model": {"type": "textcnn", "kwargs": kwargs},
                           **adapter.payload(), "state_dict": model.state_dict(), "metrics": {}})
    loaded = api.load_model(path).model
    assert loaded.embedding_mode == mode
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    fixed = loaded.static_embedding if mode == "multichannel" else loaded.embedding
    assert not fixed.weight.requires_grad
    ids, mask = pad(ROWS, PAD)
    with torch.no_grad():
        assert torch.equal(loaded(ids, mask), model(ids, mask))


def test_unknown_embedding_mode():
    with pytest.raises(ValueError, match="embedding_mode must be one of rand, static, non_static, multichannel"):
        TextCNN(VOCAB, LABELS, PAD, embedding_mode="frozen")
