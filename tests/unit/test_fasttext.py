"""FastText: n-gram features, the Huffman tree, the Hogwild kernel, the NumPy scorer's refusals,
building. The fast paths against the reference forward: test_fasttext_parity.py."""

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

from dlcli.errors import RecipeError
from dlcli.models.fasttext import INIT_BLOCKS, LOSSES, FastText
from dlcli.models.fasttext_numpy import FastTextScorer
from dlcli.nn.hsoftmax import log_probs
from dlcli.nn.huffman import huffman_paths
from dlcli.registry import parse_recipe
from dlcli.tasks.classify import ClassifyTask
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



@pytest.mark.parametrize("counts, paths, codes, depths", [
    ([2, 2, 2, 2, 1], [[3, 2, 0], [3, 1, 0], [3, 1, 0], [3, 2, 0], [3, 2, 0]],
     [[1, 1, 1], [0, 0, 0], [0, 1, 0], [1, 0, 0], [1, 1, 0]], [3, 2, 2, 2, 3]),
    ([5, 1, 1, 1, 1, 1, 1], [[5, 0, 0, 0], [5, 4, 3, 0], [5, 4, 3, 0], [5, 4, 3, 1], [5, 4, 3, 1], [5, 4, 2, 0],
                             [5, 4, 2, 0]],
     [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 1], [1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 1, 0]],
     [1, 4, 4, 4, 4, 3, 3]),
])
def test_huffman_trees_stay_the_ones_checkpoints_were_trained_with(counts, paths, codes, depths):
    # A FastText or word2vec checkpoint stores the counts, not the tree: the tree built from them
    # (ties broken on node id) must not change, or its output rows would mean other nodes.
    got = huffman_paths(counts)
    assert [got[0].tolist(), got[1].astype(int).tolist(), got[2].tolist()] == [paths, codes, depths]


# ---------------------------------------------------------------- the Hogwild kernel


def test_two_threads_learn_a_separable_task():
    rng = np.random.default_rng(0)
    model = FastText(103, 3, 0, embedding_dim=16)
    labels = rng.integers(3, size=600)
    rows = np.concatenate([rng.integers(3, 100, size=(600, 4)), 100 + labels[:, None]], 1)  # (N, 5): 100 + label last
    starts = np.arange(600) * 5
    bags = {"flat": rows.reshape(-1), "starts": starts, "lengths": np.full(600, 5), "target": labels}
    first = model.hogwild_step(bags, lr=0.5, threads=2)
    for _ in range(5):
        last = model.hogwild_step(bags, lr=0.5, threads=2)
    assert last < first / 4 and math.isfinite(last)
    with torch.no_grad():
        predicted = model.forward_bags(torch.from_numpy(bags["flat"]), torch.from_numpy(starts)).argmax(1)
    assert (predicted.numpy() == labels).mean() > 0.95


def test_padding_never_counts_in_the_mean():
    model = FastText(10, 2, 0, embedding_dim=4)
    with torch.no_grad():
        model.output.normal_()
    short = model(torch.tensor([[3, 4]]), torch.tensor([[True, True]]))
    padded = model(torch.tensor([[3, 4, 0, 0, 0]]), torch.tensor([[True, True, False, False, False]]))
    torch.testing.assert_close(short, padded)


# ---------------------------------------------------------------- the NumPy scorer (torch-free prediction)


def test_numpy_scorer_refuses_options_it_does_not_implement():
    state = {k: v.numpy() for k, v in FastText(20, 3, 0, embedding_dim=4, loss="hs").state_dict().items()}
    assert FastTextScorer.unsupported({}) is None
    assert FastTextScorer.unsupported({"embedding_dim": 4, "loss": "hs"}) is None
    assert "dropout" in FastTextScorer.unsupported({"embedding_dim": 4, "loss": "hs", "dropout": 0.1})
    assert "'focal'" in FastTextScorer.unsupported({"embedding_dim": 4, "loss": "focal"})
    for kwargs in [{"embedding_dim": 4, "loss": "hs", "dropout": 0.1}, {"loss": "focal"}]:
        with pytest.raises(ValueError, match=re.escape(FastTextScorer.unsupported(kwargs))):
            FastTextScorer(state, kwargs)


def test_numpy_scoring_imports_neither_torch_nor_numba():
    # numba's import (0.5 s) is what the Python-loop path saves on small inputs; torch's (1.5 s) the whole scorer
    code = ("import json, sys, numpy as np; from dlcli.models.fasttext_numpy import FastTextScorer; "
            "r = np.random.default_rng(0); state = {'embedding.weight': r.random((9, 4), np.float32), "
            "'output': r.random((3, 4), np.float32) - 0.5, "
            "'label_counts': np.array([5, 1, 2, 2])}; "
            "p = np.exp(FastTextScorer(state, {'loss': 'hs'}).scores([np.array([1, 2, 2]), np.array([], int)])); "
            "print(json.dumps([p.sum(1).tolist(), sorted({'torch', 'numba'} & set(sys.modules))]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    sums, imported = json.loads(out)
    assert imported == [] and sums == pytest.approx([1.0, 1.0], abs=1e-6)


def test_large_inputs_switch_to_compiled_prediction_with_the_same_records(tmp_path, monkeypatch):
    import io

    from dlcli import api, numpy_predict

    train = tmp_path / "train.txt"
    train.write_text("".join(f"__label__{i % 3} w{i % 3} x{i % 7} shared{i % 5}\n" for i in range(300)))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"task: classify\nseed: 1\ndevice: cpu\ndata: {{train: {train}, format: fasttext}}\n"
                      "vocab: {type: ngrams, pattern: '\\S+', word_ngrams: 2, buckets: 1000, minn: 0, maxn: 0}\n"
                      "model: {type: fasttext, embedding_dim: 8}\n"
                      "train: {epochs: 2, batch_size: 16, optimizer: {type: hogwild_sgd, lr: 0.5}}\n")
    api.train(recipe, out=tmp_path / "m.pt")
    lines = "".join(f"w{i % 3} x{i % 7} unseen{i} shared{i % 5}\n" for i in range(500)).encode()
    runs = {}
    for name, threshold in [("python", 10**12), ("compiled", 1)]:
        monkeypatch.setattr(numpy_predict, "COMPILED_FROM_CHARS", threshold)
        model = api.load_predictor(tmp_path / "m.pt")
        assert isinstance(model, numpy_predict.FastTextClassifier)
        runs[name] = [r for chunk in api.predict(model, api.text_chunks(io.BytesIO(lines), chunk=128)) for r in chunk]
        assert model.compiled == (name == "compiled")
    assert [r["label"] for r in runs["python"]] == [r["label"] for r in runs["compiled"]]
    np.testing.assert_allclose([r["score"] for r in runs["python"]], [r["score"] for r in runs["compiled"]], atol=2e-6)


def test_collate_kernel_points_at_each_example_ids():
    records = [Record(text, [str(i % 2)], i) for i, text in enumerate(TEXTS)]
    recipe = parse_recipe({"task": "classify", "model": "fasttext", "data": {"train": "x"}})
    task = ClassifyTask.from_records(recipe, {"vocab": (build_ngram_vocab, {"word_ngrams": 2, "buckets": 50})},
                                     records, None)
    bags = task.collate_kernel([2, 0])
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


def test_table_init_is_the_seeded_block_draw():
    torch.manual_seed(5)
    table = FastText(1000, 3, 0, embedding_dim=10).embedding.weight.detach()
    torch.manual_seed(5)
    seeds = torch.randint(2**62, (INIT_BLOCKS,)).tolist()
    size = 1000 // INIT_BLOCKS * 10
    blocks = [np.random.default_rng(seed).random(size, dtype=np.float32) * 0.2 - 0.1 for seed in seeds]
    expected = torch.from_numpy(np.concatenate(blocks).reshape(1000, 10))
    expected[0] = 0.0
    torch.testing.assert_close(table, expected, rtol=0, atol=1e-8)


# ---------------------------------------------------------------- building to load


@pytest.mark.parametrize("loss", LOSSES)
def test_a_model_built_on_meta_draws_nothing_and_adopts_a_checkpoint(loss):
    torch.manual_seed(4)
    saved = FastText(50, 3, 0, embedding_dim=6, loss=loss)
    saved.fit_labels([5, 1, 2])
    with torch.no_grad():
        saved.output.normal_()
    rng = torch.get_rng_state()
    with torch.device("meta"):
        model = FastText(50, 3, 0, embedding_dim=6, loss=loss)
    assert model.embedding.weight.is_meta and torch.equal(torch.get_rng_state(), rng)  # no seed drawn either
    model.load_state_dict(saved.state_dict(), assign=True)
    flat, offsets = torch.tensor([3, 4, 4, 49, 7]), torch.tensor([0, 3, 3])
    with torch.no_grad():
        assert torch.equal(model.forward_bags(flat, offsets), saved.forward_bags(flat, offsets))
