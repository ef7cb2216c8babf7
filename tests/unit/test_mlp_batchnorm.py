"""The MLP's BatchNorm: running statistics as moving averages (Ioffe & Szegedy 2015, with PyTorch's
momentum convention), batch statistics in training, running ones at inference."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlcli.models.mlp import MLPClassifier
from dlcli.text.batching import pad

VOCAB, LABELS, PAD, MOMENTUM = 30, 3, 0, 0.3
ROWS = [[3, 4, 5, 6, 7, 8], [9, 10], [11, 12, 13], [2, 14, 15, 16], [17], [18, 19, 20, 21, 22, 23, 24]]
TARGET = torch.tensor([0, 1, 2, 0, 1, 2])


def model_and_norm() -> tuple[MLPClassifier, nn.BatchNorm1d]:
    torch.manual_seed(0)
    model = MLPClassifier(VOCAB, LABELS, PAD, embedding_dim=8, hidden_sizes=[6], dropout=0.0, bn_momentum=MOMENTUM)
    return model, next(m for m in model.modules() if isinstance(m, nn.BatchNorm1d))


def test_running_statistics_are_moving_averages_with_the_recipe_momentum():
    model, norm = model_and_norm()
    seen = []  # what BatchNorm read at each training step: the hidden layer's pre-activations (B, U)
    norm.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach().clone()))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    mean, var = torch.zeros(6), torch.ones(6)  # PyTorch's starting running statistics
    model.train()
    for step in range(3):  # different rows each step, and the weights move in between
        rows = ROWS[step:step + 4]
        optimizer.zero_grad()
        F.cross_entropy(model(*pad(rows, PAD)), TARGET[step:step + 4]).backward()
        optimizer.step()
        z = seen[-1]
        mean = (1 - MOMENTUM) * mean + MOMENTUM * z.mean(0)
        var = (1 - MOMENTUM) * var + MOMENTUM * z.var(0, unbiased=True)  # the running variance is unbiased
        assert torch.allclose(norm.running_mean, mean, atol=1e-6), step
        assert torch.allclose(norm.running_var, var, atol=1e-6), step
    assert int(norm.num_batches_tracked) == 3

    before = norm.running_mean.clone(), norm.running_var.clone()
    model.eval()
    with torch.no_grad():
        model(*pad(ROWS, PAD))
    assert torch.equal(norm.running_mean, before[0]) and torch.equal(norm.running_var, before[1])  # eval: no update
    z = seen[-1]
    want = (z - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias  # the inference formula by hand
    with torch.no_grad():
        assert torch.allclose(norm(z), want, atol=1e-5)


def test_train_mode_normalises_by_the_batch_and_eval_mode_by_the_running_averages():
    model, _ = model_and_norm()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    model.train()
    for _ in range(5):  # running statistics move off their (0, 1) start
        optimizer.zero_grad()
        F.cross_entropy(model(*pad(ROWS, PAD)), TARGET).backward()
        optimizer.step()
    first = ROWS[0]
    companions = ([ROWS[1], ROWS[2]], [ROWS[5], ROWS[4], ROWS[3]], [list(range(2, 29))])  # the last pads a lot
    with torch.no_grad():
        model.train()
        train_all = model(*pad(ROWS, PAD))
        in_train = [model(*pad([first, *others], PAD))[0] for others in companions]
        model.eval()
        eval_all = model(*pad(ROWS, PAD))
        alone = model(*pad([first], PAD))[0]
        in_eval = [model(*pad([first, *others], PAD))[0] for others in companions]
    assert not torch.allclose(train_all, eval_all, atol=1e-3)
    # training: a text's output depends on what else is in its batch; inference: it never does
    assert not torch.allclose(in_train[0], in_train[1], atol=1e-3)
    assert all(torch.allclose(out, alone, atol=1e-6) for out in [eval_all[0], *in_eval])
