"""FastText's fast paths against the reference forward, FastText.forward_bags: the NumPy scorer
(Python loop and compiled), and the Hogwild SGD kernel against autograd SGD on the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlcli.models.fasttext import LOSSES, FastText
from dlcli.models.fasttext_numpy import FastTextScorer

COUNTS = [9, 1, 4, 2, 7]  # label frequencies: an unbalanced Huffman tree for hs
# Empty bags first and last, repeated ids, a single id, the last row, a long bag.
BAGS = [[], [3, 7, 7, 12], [59], [5, 5, 5], list(range(1, 40)), []]


def _reference(loss: str, seed: int = 0) -> FastText:
    torch.manual_seed(seed)
    model = FastText(60, len(COUNTS), 0, embedding_dim=8, loss=loss)
    model.fit_labels(COUNTS)
    with torch.no_grad():
        model.output.normal_()  # a zero output layer would score every label alike
    return model


def _copy(model: FastText) -> FastText:
    twin = FastText(len(model.embedding.weight), len(COUNTS), 0, embedding_dim=8, loss=model.loss_kind)
    twin.load_state_dict(model.state_dict())
    return twin


def _bags(rows: list[list[int]], labels) -> dict[str, np.ndarray]:
    """The batch as ClassifyTask.collate_bags gives it to hogwild_step."""
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    return {"flat": np.concatenate([np.asarray(r, dtype=np.int64) for r in rows]),
            "starts": np.cumsum(lengths) - lengths, "lengths": lengths,
            "target": np.asarray(labels, dtype=np.float32 if np.ndim(labels) == 2 else np.int64)}


def _forward(model: FastText, bags: dict[str, np.ndarray]) -> torch.Tensor:
    return model.forward_bags(torch.from_numpy(bags["flat"]), torch.from_numpy(bags["starts"]))


# ---------------------------------------------------------------- the NumPy scorer


@pytest.mark.parametrize("path", ["scores", "scores_flat"])
@pytest.mark.parametrize("loss", LOSSES)
def test_numpy_scorer_gives_the_reference_scores(loss, path):
    model = _reference(loss).eval()
    scorer = FastTextScorer({k: v.numpy() for k, v in model.state_dict().items()}, {"embedding_dim": 8, "loss": loss})
    bags = _bags(BAGS, [0] * len(BAGS))
    if path == "scores":
        got = scorer.scores([np.asarray(b, dtype=np.int64) for b in BAGS])
    else:
        got = scorer.scores_flat(bags["flat"], bags["lengths"])
    with torch.no_grad():
        expected = _forward(model, bags).numpy()
    assert got.dtype == np.float32 and got.shape == (len(BAGS), len(COUNTS))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.ptp(got[1]) > 0.1  # the scores differ by label, so the comparison means something
    np.testing.assert_array_equal(got[0], got[-1])  # both empty: zero hidden vector


# ---------------------------------------------------------------- the SGD kernel


def _autograd_sgd(model: FastText, bags: dict[str, np.ndarray], lr: float) -> float:
    """One plain SGD step on the summed per-example loss of the reference forward."""
    out, target = _forward(model, bags), torch.from_numpy(bags["target"])
    if model.loss_kind == "ova":
        multi = target if target.dim() == 2 else F.one_hot(target, out.shape[1]).float()
        loss = F.binary_cross_entropy_with_logits(out, multi, reduction="sum")
    elif model.loss_kind == "hs":  # the reference gives log-probabilities
        loss = F.nll_loss(out, target, reduction="sum")
    else:
        loss = F.cross_entropy(out, target, reduction="sum")
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
    return float(loss.detach())


def _assert_same_step(fast: FastText, ref: FastText, start: FastText, lr: float) -> None:
    """The kernel moved every parameter as autograd did: updates compared, scaled by lr, to the
    float32 resolution of the parameters."""
    for name, _ in start.named_parameters():
        before, after, expected = (m.get_parameter(name).detach() for m in (start, fast, ref))
        atol = 4 * torch.finfo(torch.float32).eps * float(before.abs().max()) / lr
        torch.testing.assert_close((after - before) / lr, (expected - before) / lr, rtol=1e-5, atol=atol)
        assert (expected - before).abs().max() > 0, name  # the step moved it, so the check can fail


@pytest.mark.parametrize("lr", [1e-3, 0.5])
@pytest.mark.parametrize("loss", LOSSES)
def test_one_example_on_one_thread_is_autograd_sgd_on_the_reference(loss, lr):
    ref = _reference(loss)
    fast, start = _copy(ref), _copy(ref)
    bags = _bags([[3, 7, 7, 12]], [2])  # a repeated id: its row takes both shares of the step
    expected = _autograd_sgd(ref, bags, lr)
    got = fast.hogwild_step(bags, lr, threads=1)
    assert got == pytest.approx(expected, rel=1e-5)
    _assert_same_step(fast, ref, start, lr)


@pytest.mark.parametrize("loss", LOSSES)
def test_a_batch_on_one_thread_is_sequential_autograd_sgd(loss):
    ref = _reference(loss, seed=1)
    fast, start = _copy(ref), _copy(ref)
    rows, labels = [[1, 2, 3], [], [4, 5], [2, 9, 9, 30, 31]], [0, 4, 2, 1]
    losses = [_autograd_sgd(ref, _bags([row], [label]), lr=0.5) for row, label in zip(rows, labels)]
    got = fast.hogwild_step(_bags(rows, labels), lr=0.5, threads=1)
    # the empty bag moves nothing (its gradient is zero) and the kernel counts it as zero loss
    assert got == pytest.approx((sum(losses) - losses[1]) / len(rows), rel=1e-5)
    _assert_same_step(fast, ref, start, lr=0.5)


def test_multi_label_targets_train_one_sigmoid_each():
    ref = _reference("ova", seed=2)
    fast, start = _copy(ref), _copy(ref)
    bags = _bags([[5, 6, 7, 6]], [[1.0, 0.0, 1.0, 0.0, 0.0]])
    expected = _autograd_sgd(ref, bags, lr=0.2)
    assert fast.hogwild_step(bags, lr=0.2, threads=1) == pytest.approx(expected, rel=1e-5)
    _assert_same_step(fast, ref, start, lr=0.2)
