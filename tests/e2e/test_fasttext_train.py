"""FastText end to end: n-gram vocabularies, the three losses, the hogwild_sgd step strategy and the
settings it refuses, autograd training with other optimizers."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import torch
from helpers import LABELS, assert_fails, assert_ok, train

from dlcli import api, checkpoint
from dlcli.models.fasttext import FastText

FASTTEXT_SGD = {"epochs": 8, "batch_size": 16, "deterministic": True, "optimizer": {"type": "hogwild_sgd", "lr": 0.5},
                "lr_schedule": {"type": "warmup_linear"}}
NGRAMS = {"type": "ngrams", "lowercase": True, "word_ngrams": 2, "buckets": 1000}


@pytest.fixture
def hogwild_calls(monkeypatch):
    calls = []
    original = FastText.hogwild_step

    def spy(self, batch, lr, threads, seed):
        calls.append((lr, threads))
        return original(self, batch, lr, threads, seed)

    monkeypatch.setattr(FastText, "hogwild_step", spy)
    return calls


@pytest.mark.parametrize("loss", ["softmax", "hs", "ova"])
def test_each_loss_learns_and_predicts(cli, dataset, hogwild_calls, loss):
    out = dataset.root / "ft.pt"
    recipe = dataset.recipe(vocab=NGRAMS, model={"type": "fasttext", "embedding_dim": 16, "loss": loss},
                            train=FASTTEXT_SGD)
    result = train(cli, recipe, out)
    assert_ok(result)
    assert result.json()["best"] >= 0.9
    assert hogwild_calls
    lrs = [lr for lr, _ in hogwild_calls]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < lrs[0] / 4  # linear decay reaches the kernel
    records = cli("classify", out, stdin=b"my cat and dog\nred and blue\n").records()
    assert [r["label"] for r in records] == ["animal", "colour"]
    scores = [t["score"] for t in cli("classify", out, "--top-k", "3", stdin=b"a blue parrot\n").records()[0]["top_k"]]
    if loss == "ova":  # independent sigmoids
        assert 0 < scores[0] <= 1 and sum(scores) != pytest.approx(1.0, abs=1e-3)
    else:
        assert sum(scores) == pytest.approx(1.0, abs=1e-4)


def test_hierarchical_tree_survives_the_checkpoint(cli, dataset, tmp_path):
    rows = dataset.train.read_text(encoding="utf-8").splitlines()
    skewed = [r for r in rows if r.startswith("animal")] * 5 + rows  # animal much more frequent
    (dataset.root / "skewed.tsv").write_text("\n".join(skewed) + "\n", encoding="utf-8")
    out = dataset.root / "hs.pt"
    recipe = dataset.recipe(data={"train": "./skewed.tsv"}, vocab=NGRAMS, train={**FASTTEXT_SGD, "epochs": 12},
                            model={"type": "fasttext", "embedding_dim": 16, "loss": "hs"})
    assert_ok(train(cli, recipe, out))
    loaded = api.load_model(out)
    counts = loaded.model.label_counts.tolist()
    assert counts[LABELS.index("animal")] > 4 * counts[LABELS.index("colour")]
    paths, codes, depths = loaded.model.tree()
    assert depths[LABELS.index("animal")] == 1
    before = cli("evaluate", out, dataset.dev).json()
    assert before["accuracy"] >= 0.9


@pytest.mark.parametrize("train_cfg", [
    {"optimizer": {"type": "adam", "lr": 0.05}},
    {"optimizer": {"type": "sgd", "lr": 5.0}},  # plain SGD is autograd SGD: the kernel is asked for by name
    {"optimizer": {"type": "sgd", "lr": 0.5, "momentum": 0.9}},
    {"optimizer": {"type": "sgd", "lr": 5.0}, "grad_clip": 1.0},  # autograd SGD steps on the batch mean
])
def test_other_optimisers_train_by_autograd(cli, dataset, hogwild_calls, train_cfg):
    recipe = dataset.recipe(vocab=NGRAMS, train={"epochs": 8, **train_cfg})  # with 6, 1 seed in 4 fell short of 0.9
    result = train(cli, recipe, dataset.root / "m.pt")
    assert_ok(result)
    assert not hogwild_calls
    assert result.json()["best"] >= 0.9


@pytest.mark.parametrize(("setting", "key"), [
    ({"device": "cuda"}, "device"),
    ({"device": "cuda:1"}, "device"),
    ({"precision": "bf16"}, "precision"),
    ({"precision": "fp16"}, "precision"),
    ({"train": {**FASTTEXT_SGD, "grad_clip": 1.0}}, "train.grad_clip"),
    ({"train": {**FASTTEXT_SGD, "optimizer": {"type": "hogwild_sgd", "lr": 0.5, "momentum": 0.9}}},
     "train.optimizer.momentum"),
    ({"model": {"type": "textcnn"}}, "train.optimizer"),
])
def test_hogwild_refuses_what_it_cannot_honour(cli, dataset, hogwild_calls, setting, key):
    sections = {"model": {"type": "fasttext", "embedding_dim": 16}, "train": FASTTEXT_SGD, **setting}
    recipe = dataset.recipe(vocab=NGRAMS, **sections)
    result = train(cli, recipe, dataset.root / "m.pt")
    assert_fails(result, 2, key)
    assert not hogwild_calls and not (dataset.root / "m.pt").exists()
    assert_fails(cli("recipes", "validate", recipe), 2, key)


def test_hogwild_refuses_torchrun_ranks(dataset):
    from dlcli import steps
    from dlcli.device import Placement
    from dlcli.errors import RecipeError
    from dlcli.registry import load_recipe
    from dlcli.tasks.classify import ClassifyTask

    recipe = load_recipe(dataset.recipe(vocab=NGRAMS, model={"type": "fasttext"}, train=FASTTEXT_SGD))
    with pytest.raises(RecipeError, match="train.optimizer: hogwild_sgd trains in one process, not 2"):
        steps.HogwildStep.check(recipe, ClassifyTask, Placement(torch.device("cpu"), 0, 2))


def test_pretrained_vectors_fill_the_word_rows(cli, dataset):
    vectors = dataset.root / "vec.txt"
    vectors.write_text("2 16\ncat " + " ".join(["0.5"] * 16) + "\nblue " + " ".join(["-0.25"] * 16) + "\n",
                       encoding="utf-8")
    frozen = {**FASTTEXT_SGD, "max_steps": 1, "optimizer": {"type": "sgd", "lr": 0.0}}  # autograd, lr 0
    out = dataset.root / "v.pt"
    assert_ok(train(cli, dataset.recipe(vocab=NGRAMS, data={"vectors": "./vec.txt"}, train=frozen), out))
    loaded = api.load_model(out)
    table, index = loaded.model.embedding.weight, loaded.task.vocab.index
    assert table[index["cat"]].tolist() == [0.5] * 16 and table[index["blue"]].tolist() == [-0.25] * 16
    assert table[index["dog"]].abs().max() <= 1 / 16  # fastText's uniform start elsewhere


@pytest.mark.parametrize("loss", ["softmax", "ova"])
def test_classify_scores_fasttext_without_torch_as_the_torch_model_does(dataset, loss):
    out = dataset.root / "ft.pt"
    recipe = dataset.recipe(vocab=NGRAMS, model={"type": "fasttext", "embedding_dim": 16, "loss": loss},
                            train=FASTTEXT_SGD)
    api.train(recipe, out=out)
    texts = b"my cat and dog\nred and blue\n\nan unknown zebra\n"
    code = ("import sys; from dlcli.cli import run; status = run(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(status)")
    threshold = 0.3 if loss == "ova" else None
    options = ["--threshold", str(threshold)] if threshold else []
    done = subprocess.run([sys.executable, "-c", code, "classify", str(out), "--top-k", "2", *options], input=texts,
                          capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    fast = [json.loads(line) for line in done.stdout.decode().splitlines()]
    chunks = api.text_chunks(io.BytesIO(texts))
    reference = [r for batch in api.predict(api.load_model(out), chunks, top_k=2, threshold=threshold) for r in batch]
    assert [r["id"] for r in fast] == [r["id"] for r in reference] == [1, 2, 3, 4]  # a blank line is an empty bag
    for got, want in zip(fast, reference):
        assert [t["label"] for t in got["top_k"]] == [t["label"] for t in want["top_k"]]
        assert [t["score"] for t in got["top_k"]] == pytest.approx([t["score"] for t in want["top_k"]], abs=2e-6)
        assert got.get("labels") == want.get("labels")
        assert ("labels" in got) == (loss == "ova")


def test_classify_refuses_weights_that_do_not_fit_the_vocabulary(cli, dataset):
    out = dataset.root / "ft.pt"
    api.train(dataset.recipe(vocab=NGRAMS, model={"type": "fasttext", "embedding_dim": 16}, train=FASTTEXT_SGD),
              out=out)
    data = checkpoint.load(out)
    data["state_dict"]["embedding.weight"] = data["state_dict"]["embedding.weight"][:10].clone()
    checkpoint.save(out, data)
    assert_fails(cli("classify", out, stdin=b"my cat\n"), 1, "ft.pt", "does not fit", "10 rows")
