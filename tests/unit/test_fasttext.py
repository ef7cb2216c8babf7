"""FastText: n-gram features, the Huffman tree, and the Hogwild kernel against autograd SGD."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlcli.errors import RecipeError
from dlcli.models.fasttext import FastText
from dlcli.models.fasttext_numpy import FastTextScorer
from dlcli.nn.hsoftmax import log_probs
from dlcli.nn.huffman import huffman_paths
from dlcli.recipe import DataConfig
from dlcli.tasks.classify import ClassifyTask
from dlcli.tasks.classify_output import probabilities
from dlcli.text.ngrams import build_ngram_vocab, ngram_vocab_from_dict
from dlcli.text.readers import Record

TEXTS = ["the cat sat on the mat", "the dog sat", "a cat and a dog", "the mat"]


# ---------------------------------------------------------------- features


def test_words_then_bigram_buckets():
    vocab = build_ngram_vocab(TEXTS, word_ngrams=2, buckets=1000)
    feats = vocab.encode("the cat sat")
    words = [vocab.index[w] for w in ("the", "cat", "sat")]
    assert feats[:3].tolist() == words
    assert len(feats) == 5 and all(vocab.num_words <= f < vocab.num_words + 1000 for f in feats[3:])
    assert vocab.size == vocab.num_words + 1000
    assert feats[3] != feats[4]  # "the cat" and "cat sat" hash apart (a collision here would be a bad hash)


def test_trigrams_and_order_matters():
    vocab = build_ngram_vocab(TEXTS, word_ngrams=3, buckets=10_000)
    assert len(vocab.encode("the cat sat")) == 3 + 2 + 1
    assert set(vocab.encode("the cat sat")[3:]) != set(vocab.encode("sat cat the")[3:])


def test_unknown_words_leave_the_bag_but_their_ngrams_stay():
    vocab = build_ngram_vocab(TEXTS, word_ngrams=2, buckets=1000)
    feats = vocab.encode("the zebra")
    assert feats.tolist()[:1] == [vocab.index["the"]] and len(feats) == 2  # "the", then "the zebra"
    assert vocab.encode("the zebra")[1] != vocab.encode("the okapi")[1]


def test_character_ngrams_include_unknown_words():
    vocab = build_ngram_vocab(TEXTS, minn=2, maxn=3, buckets=100_000)
    grams = {"<z", "ze", "eb", "br", "ra", "a>", "<ze", "zeb", "ebr", "bra", "ra>"}
    assert len(vocab.encode("zebra")) == len(grams)  # the unknown word itself is left out
    assert len(vocab.encode("cat")) == 1 + len({"<c", "ca", "at", "t>", "<ca", "cat", "at>"})
    assert not np.array_equal(vocab.encode("zebra"), vocab.encode("zebu"))


def test_hashes_are_stable_across_processes_and_round_trips():
    vocab = build_ngram_vocab(TEXTS, word_ngrams=2, minn=2, maxn=4, buckets=5000)
    again = ngram_vocab_from_dict(vocab.to_dict())
    for text in ["the cat sat", "unseen words here", "a"]:
        assert np.array_equal(vocab.encode(text), again.encode(text))
    # another interpreter with another string-hash seed computes the same ids (Python's hash() would not)
    code = (f"from dlcli.text.ngrams import build_ngram_vocab as b; "
            f"print(b({TEXTS!r}, word_ngrams=2, minn=2, maxn=4, buckets=5000).encode('unseen words here').tolist())")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert json.loads(out) == vocab.encode("unseen words here").tolist()


def test_whitespace_pattern_is_str_split():
    vocab = build_ngram_vocab(["a b"], pattern=r"\S+", lowercase=True)
    text = "Hello,  world!\tit's\u00a0fine"
    assert vocab.tokenize(text) == re.findall(r"\S+", text.lower())


def test_chinese_gets_character_ngrams_by_default():
    zh = build_ngram_vocab(["酒店的服务很好", "房间太小了"])
    assert (zh.minn, zh.maxn) == (1, 2)
    assert (build_ngram_vocab(TEXTS).minn, build_ngram_vocab(TEXTS).maxn) == (0, 0)
    assert build_ngram_vocab(["酒店的服务很好"], unit="char").maxn == 0  # characters already
    assert build_ngram_vocab(["酒 店 的 服 务 很 好"]).maxn == 0  # split into characters by spaces


def test_bad_knobs_name_the_field():
    with pytest.raises(RecipeError, match="vocab.minn/maxn"):
        build_ngram_vocab(TEXTS, minn=3, maxn=2)
    with pytest.raises(RecipeError, match="vocab.unit"):
        build_ngram_vocab(TEXTS, unit="syllable")


# ---------------------------------------------------------------- hierarchical softmax


@pytest.mark.parametrize("counts", [[5, 1], [10, 1, 1, 3, 7], [1] * 9, [100, 50, 25, 12, 6, 3, 1]])
def test_huffman_probabilities_sum_to_one(counts):
    paths, codes, depths = (torch.from_numpy(t) for t in huffman_paths(counts))
    nodes = torch.randn(len(counts) - 1, 6)
    total = log_probs(torch.randn(4, 6), nodes, paths, codes, depths).exp().sum(1)
    torch.testing.assert_close(total, torch.ones(4))


def test_huffman_gives_frequent_labels_short_paths_and_unique_codes():
    counts = [100, 50, 25, 12, 6, 3, 1]
    paths, codes, depths = huffman_paths(counts)
    assert depths.tolist() == sorted(depths.tolist())  # counts fall, depths never shrink
    words = {tuple(codes[c, : depths[c]].tolist()) for c in range(len(counts))}
    assert len(words) == len(counts)
    assert not any(a != b and b[: len(a)] == a for a in words for b in words)  # prefix-free
    assert (huffman_paths(counts)[0] == paths).all()


# ---------------------------------------------------------------- the Hogwild kernel


def _batch(rows: list[list[int]], labels) -> dict[str, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    return {"ids": ids, "mask": ids != 0, "target": torch.as_tensor(labels)}


def _bags(rows: list[list[int]], labels) -> dict[str, np.ndarray]:
    """The same batch as ClassifyTask.collate_bags gives it to hogwild_step."""
    lengths = np.array([len(r) for r in rows])
    return {"flat": np.concatenate(rows), "starts": np.cumsum(lengths) - lengths, "lengths": lengths,
            "target": np.asarray(labels, dtype=np.float32 if np.ndim(labels) == 2 else np.int64)}


def _autograd_sgd(model: FastText, batch: dict, lr: float) -> float:
    """One plain SGD step on the summed per-example loss the kernel minimises."""
    out = model(batch["ids"], batch["mask"])
    target = batch["target"]
    if model.loss_kind == "ova":
        multi = target.float() if target.dim() == 2 else F.one_hot(target, out.shape[1]).float()
        loss = F.binary_cross_entropy_with_logits(out, multi, reduction="sum")
    else:  # hs gives log-probabilities, and log_softmax leaves them as they are
        loss = F.cross_entropy(out, target, reduction="sum")
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
    return float(loss.detach())


@pytest.mark.parametrize("loss", ["softmax", "hs", "ova"])
def test_one_example_matches_autograd_sgd(loss):
    torch.manual_seed(0)
    ref = FastText(30, 5, 0, embedding_dim=8, loss=loss)
    ref.fit_labels([9, 1, 4, 2, 7])
    with torch.no_grad():
        ref.output.normal_()  # a zero output layer would hide the input-row update
    fast = FastText(30, 5, 0, embedding_dim=8, loss=loss)
    fast.load_state_dict(ref.state_dict())
    expected = _autograd_sgd(ref, _batch([[3, 7, 7, 12]], [2]), lr=0.3)
    got = fast.hogwild_step(_bags([[3, 7, 7, 12]], [2]), lr=0.3, threads=1)
    assert got == pytest.approx(expected, rel=1e-4)
    torch.testing.assert_close(fast.embedding.weight, ref.embedding.weight, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fast.output, ref.output, atol=1e-6, rtol=1e-5)


def test_a_batch_on_one_thread_is_sequential_per_example_sgd():
    torch.manual_seed(1)
    ref = FastText(40, 3, 0, embedding_dim=6)
    with torch.no_grad():
        ref.output.normal_()
    fast = FastText(40, 3, 0, embedding_dim=6)
    fast.load_state_dict(ref.state_dict())
    rows, labels = [[1, 2, 3], [4, 5], [2, 9, 9, 30, 31]], [0, 2, 1]
    for row, label in zip(rows, labels):
        _autograd_sgd(ref, _batch([row], [label]), lr=0.5)
    fast.hogwild_step(_bags(rows, labels), lr=0.5, threads=1)
    torch.testing.assert_close(fast.embedding.weight, ref.embedding.weight, atol=1e-6, rtol=1e-5)


def test_multi_label_targets_train_one_sigmoid_each():
    torch.manual_seed(2)
    ref = FastText(20, 4, 0, embedding_dim=5, loss="ova")
    with torch.no_grad():
        ref.output.normal_()
    fast = FastText(20, 4, 0, embedding_dim=5, loss="ova")
    fast.load_state_dict(ref.state_dict())
    _autograd_sgd(ref, _batch([[5, 6, 7]], [[1.0, 0.0, 1.0, 0.0]]), lr=0.2)
    fast.hogwild_step(_bags([[5, 6, 7]], [[1.0, 0.0, 1.0, 0.0]]), lr=0.2, threads=1)
    torch.testing.assert_close(fast.output, ref.output, atol=1e-6, rtol=1e-5)


def test_two_threads_learn_a_separable_task():
    rng = np.random.default_rng(0)
    model = FastText(103, 3, 0, embedding_dim=16)
    rows, labels = [], []
    for _ in range(600):
        label = int(rng.integers(3))
        rows.append([int(rng.integers(3, 100)) for _ in range(4)] + [100 + label])
        labels.append(label)
    batch, bags = _batch(rows, labels), _bags(rows, labels)
    first = model.hogwild_step(bags, lr=0.5, threads=2)
    for _ in range(5):
        last = model.hogwild_step(bags, lr=0.5, threads=2)
    assert last < first / 4 and math.isfinite(last)
    with torch.no_grad():
        accuracy = (model(batch["ids"], batch["mask"]).argmax(1) == batch["target"]).float().mean()
    assert accuracy > 0.95


def test_padding_never_counts_in_the_mean():
    model = FastText(10, 2, 0, embedding_dim=4)
    with torch.no_grad():
        model.output.normal_()
    short = model(torch.tensor([[3, 4]]), torch.tensor([[True, True]]))
    padded = model(torch.tensor([[3, 4, 0, 0, 0]]), torch.tensor([[True, True, False, False, False]]))
    torch.testing.assert_close(short, padded)


# ---------------------------------------------------------------- the NumPy scorer (torch-free prediction)


@pytest.mark.parametrize("loss", ["softmax", "hs", "ova"])
def test_numpy_scorer_gives_the_torch_model_probabilities(loss):
    torch.manual_seed(3)
    model = FastText(60, 5, 0, embedding_dim=8, loss=loss).eval()
    model.fit_labels([9, 1, 4, 2, 7])
    with torch.no_grad():
        model.output.normal_()
    bags = [np.array([3, 7, 7, 12]), np.array([], dtype=np.int64), np.array([59]), np.arange(1, 40)]
    scorer = FastTextScorer({k: v.numpy() for k, v in model.state_dict().items()}, {"loss": loss})
    got = probabilities(scorer.scores(bags), sigmoid=loss == "ova")
    flat = torch.from_numpy(np.concatenate(bags))
    lengths = torch.tensor([len(b) for b in bags])
    with torch.no_grad():
        out = model.forward_bags(flat, torch.cumsum(lengths, 0) - lengths)
    expected = torch.sigmoid(out) if loss == "ova" else torch.softmax(out, -1)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert got.dtype == np.float32 and got.shape == (4, 5)
    compiled = scorer.scores_flat(np.concatenate(bags), np.array([len(b) for b in bags]))
    np.testing.assert_allclose(compiled, scorer.scores(bags), rtol=1e-5, atol=1e-6)
    assert compiled.dtype == np.float32


def test_large_inputs_switch_to_compiled_prediction_with_the_same_records(tmp_path, monkeypatch):
    import io

    from dlcli import api, checkpoint, numpy_predict

    train = tmp_path / "train.txt"
    train.write_text("".join(f"__label__{i % 3} w{i % 3} x{i % 7} shared{i % 5}\n" for i in range(300)))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"task: classify\nseed: 1\ndevice: cpu\ndata: {{train: {train}, format: fasttext}}\n"
                      "vocab: {type: ngrams, pattern: '\\S+', word_ngrams: 2, buckets: 1000, minn: 0, maxn: 0}\n"
                      "model: {type: fasttext, embedding_dim: 8}\n"
                      "train: {epochs: 2, batch_size: 16, optimizer: {type: sgd, lr: 0.5}}\n")
    api.train(recipe, out=tmp_path / "m.pt")
    lines = "".join(f"w{i % 3} x{i % 7} unseen{i} shared{i % 5}\n" for i in range(500)).encode()
    runs = {}
    for name, threshold in [("python", 10**12), ("compiled", 1)]:
        monkeypatch.setattr(numpy_predict, "COMPILED_FROM_CHARS", threshold)
        model = numpy_predict.load_classifier(tmp_path / "m.pt", checkpoint.read(tmp_path / "m.pt"))
        runs[name] = [r for chunk in model.classify(io.BytesIO(lines), chunk=128) for r in chunk]
        assert model.compiled == (name == "compiled")
    assert [r["label"] for r in runs["python"]] == [r["label"] for r in runs["compiled"]]
    np.testing.assert_allclose([r["score"] for r in runs["python"]], [r["score"] for r in runs["compiled"]], atol=2e-6)


def test_collate_bags_points_at_each_example_ids():
    records = [Record(text, [str(i % 2)], i) for i, text in enumerate(TEXTS)]
    task = ClassifyTask.from_records(build_ngram_vocab, {"word_ngrams": 2, "buckets": 50},
                                     DataConfig(train="x"), records, None)
    bags = task.collate_bags([2, 0])
    for row, i in enumerate([2, 0]):
        start, length = bags["starts"][row], bags["lengths"][row]
        np.testing.assert_array_equal(bags["flat"][start : start + length], task.splits["train"][0][i])
    assert bags["target"].tolist() == [0, 0]


def test_table_init_depends_on_the_seed_not_the_thread_count():
    threads = torch.get_num_threads()
    tables = []
    try:
        for count in (1, 2, 1):
            torch.set_num_threads(count)
            torch.manual_seed(5)
            tables.append(FastText(1000, 3, 0, embedding_dim=10).embedding.weight.detach().clone())
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(tables[0], tables[1]) and torch.equal(tables[0], tables[2])
    assert tables[0][0].abs().max() == 0  # the padding row
    assert tables[0].abs().max() <= 0.1 and tables[0][1:].std() > 0.05  # uniform in +-1/dim
