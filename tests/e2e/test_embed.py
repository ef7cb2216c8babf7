"""Word embeddings end to end: `dlcli train` (task: embed) on a corpus where words come in groups,
`dlcli embed` (vectors, neighbours, analogies, export), `dlcli evaluate` on analogy and
similarity files, `dlcli convert vectors`, and the vectors as `data.vectors` of a classifier."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import assert_fails, assert_ok, train

from dlcli import api
from dlcli.text.vectors import read_vectors

GROUPS = [[f"g{g}w{i}" for i in range(6)] for g in range(8)]


def write_corpus(path: Path, sentences: int = 1500, seed: int = 1) -> None:
    """Sentences of one group's words, one word in five from any group (GloVe can only place
    groups relative to each other through pairs that occur)."""
    rng = random.Random(seed)
    everything = [w for group in GROUPS for w in group]
    lines = [" ".join(rng.choice(everything) if rng.random() < 0.2 else rng.choice(group) for _ in range(10))
             for group in (rng.choice(GROUPS) for _ in range(sentences))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_pairs(path: Path) -> None:
    rng = random.Random(3)
    rows = ["# word1\tword2\tscore"]
    for _ in range(40):
        g, h = rng.sample(range(len(GROUPS)), 2)
        rows.append(f"{rng.choice(GROUPS[g])}\t{rng.choice(GROUPS[g])}\t{rng.uniform(7, 10):.2f}")
        rows.append(f"{rng.choice(GROUPS[g])}\t{rng.choice(GROUPS[h])}\t{rng.uniform(0, 3):.2f}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def embed_recipe(root: Path, model: dict | None = None, **train_cfg) -> Path:
    model = model or {}
    if model.get("type", "word2vec") == "word2vec":
        model = {"type": "word2vec", "embedding_dim": 16, "window": 3, "sample": 0, **model}
    recipe = {"task": "embed", "seed": 5, "device": "cpu",
              "data": {"train": "./corpus.txt", "dev": "./pairs.tsv"},
              "vocab": {"type": "word", "min_freq": 2},
              "model": model,
              "train": {"epochs": 3, "batch_size": 300, "optimizer": {"type": "hogwild_sgd", "lr": 0.05},
                        "lr_schedule": {"type": "warmup_linear", "final_ratio": 0.01}, **train_cfg}}
    path = root / "embed.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path) -> Path:
    write_corpus(tmp_path / "corpus.txt")
    write_pairs(tmp_path / "pairs.tsv")
    return tmp_path


def group_of(word: str) -> str:
    return word.split("w")[0]


@pytest.mark.parametrize("arch", ["skipgram", "cbow"])
@pytest.mark.parametrize("loss", ["negative", "hierarchical"])
def test_word2vec_learns_the_groups(cli, corpus, arch, loss):
    out = corpus / "w2v.pt"
    result = train(cli, embed_recipe(corpus, {"arch": arch, "loss": loss}), out)
    assert_ok(result)
    summary = result.json()
    assert summary["metric"] == "spearman" and summary["best"] > 0.7
    records = cli("embed", out, "--neighbors", "4", stdin=b"g3w1\ng5w0\n").records()
    for record, query in zip(records, ("g3w1", "g5w0")):
        assert record["text"] == query and record["unknown"] == []
        assert [group_of(n["word"]) for n in record["neighbors"]] == [group_of(query)] * 4
        assert query not in [n["word"] for n in record["neighbors"]]


def test_glove_learns_the_groups_counting_within_a_small_memory_budget(cli, corpus):
    out = corpus / "glove.pt"
    model = {"type": "glove", "embedding_dim": 16, "window": 5, "count_memory_mb": 0.05}
    recipe = embed_recipe(corpus, model, epochs=15, batch_size=100_000, lr_schedule={"type": "constant"},
                          optimizer={"type": "hogwild_adagrad", "lr": 0.1})
    result = cli("train", recipe, "--out", out)
    assert_ok(result)
    assert "shards spilled" in result.err and "(0 shards" not in result.err
    summary = json.loads(result.out)
    assert summary["best"] > 0.7
    record = cli("embed", out, "--neighbors", "4", stdin=b"g2w3\n").records()[0]
    assert [group_of(n["word"]) for n in record["neighbors"]] == ["g2"] * 4


@pytest.fixture
def trained(cli, corpus) -> Path:
    out = corpus / "w2v.pt"
    assert_ok(train(cli, embed_recipe(corpus), out))
    return out


def test_embed_records_vectors_words_and_unknowns(cli, trained):
    loaded = api.load_model(trained)
    table = loaded.model.vectors()
    index = loaded.task.vocab.index
    line, word = cli("embed", trained, stdin=b"g1w1 g1w2 nosuchword\n").records()[0], None
    assert line["unknown"] == ["nosuchword"]
    np.testing.assert_allclose(line["vector"], table[[index["g1w1"], index["g1w2"]]].mean(0), atol=1e-5)
    words = cli("embed", trained, "--words", stdin=b"g1w1 nosuchword\n").records()
    assert [(w["id"], w["token"], w["known"]) for w in words] == [(1, "g1w1", True), (1, "nosuchword", False)]
    assert words[1]["vector"] is None and words[0]["vector"] == pytest.approx(table[index["g1w1"]].tolist(), abs=1e-5)
    none = cli("embed", trained, stdin=b"nosuchword\n").records()[0]
    assert none["vector"] is None and none["unknown"] == ["nosuchword"] and word is None


def test_analogy_lines_exclude_the_query_and_report_unknowns(cli, trained):
    records = cli("embed", trained, "--analogy", "--top-k", "3",
                  stdin=b"g1w1 g1w2 g2w1\ng1w1 nosuch g2w1\ng1w1 g1w2\n").records()
    assert len(records[0]["answers"]) == 3
    assert not {"g1w1", "g1w2", "g2w1"} & {a["word"] for a in records[0]["answers"]}
    assert records[1]["unknown"] == ["nosuch"] and records[1]["answers"] == []
    assert "3 words" in records[2]["error"]


def test_export_convert_and_evaluate_agree(cli, trained, corpus):
    loaded = api.load_model(trained)
    words, vectors = loaded.task.export_vectors(loaded.model)
    for kind, name in (("word2vec", "v.txt"), ("word2vec-bin", "v.bin"), ("glove", "v.glove")):
        assert_ok(cli("embed", trained, "--export", kind, "--out", corpus / name))
        read_words, read_matrix = read_vectors(corpus / name)
        assert read_words == words
        np.testing.assert_array_equal(read_matrix, vectors)
    converted = corpus / "converted.pt"
    assert_ok(cli("convert", "vectors", corpus / "v.bin", "--out", converted))
    query = b"g4w4\n"
    assert cli("embed", converted, "--neighbors", "5", stdin=query).records() == \
        cli("embed", trained, "--neighbors", "5", stdin=query).records()
    ours = cli("evaluate", trained, corpus / "pairs.tsv").json()
    assert ours == cli("evaluate", converted, corpus / "pairs.tsv").json()
    assert ours["coverage"] == 1.0 and ours["spearman"] > 0.7

    analogies = corpus / "analogies.txt"
    analogies.write_text(": groups\ng1w1 g1w2 g2w1 g2w2\ng1w1 g1w2 unknown g2w2\n", encoding="utf-8")
    report = cli("evaluate", trained, analogies).json()
    assert report["n_total"] == 2 and report["n"] == 1 and report["coverage"] == 0.5
    assert set(report) >= {"analogy_accuracy", "semantic", "syntactic", "per_section"}


def test_a_classifier_starts_from_the_embeddings_checkpoint(cli, trained, dataset):
    from dlcli import checkpoint

    words = " ".join(w for group in GROUPS for w in group)
    (dataset.root / "train.tsv").write_text(f"a\t{words}\nb\tg1w1 g2w2\n", encoding="utf-8")
    recipe = dataset.recipe(model={"type": "mlp", "embedding_dim": 16}, data={"vectors": str(trained)},
                            train={"max_steps": 1, "optimizer": {"type": "sgd", "lr": 0.0}})
    out = dataset.root / "clf.pt"
    result = cli("train", recipe, "--out", out)
    assert_ok(result)
    assert "initialised 48 of" in " ".join(result.err.split())
    clf = checkpoint.load(out)
    index = {w: i for i, w in enumerate(clf["vocab"]["tokens"].split("\n"))}
    source = api.load_model(trained)
    want = source.model.vectors()[source.task.vocab.index["g3w2"]]
    assert clf["state_dict"]["embedding.weight"][index["g3w2"]].tolist() == pytest.approx(want.tolist(), abs=1e-6)


def test_bad_corpora_and_settings_are_clear_errors(cli, corpus):
    (corpus / "corpus.txt").write_text("\n\n", encoding="utf-8")
    assert_fails(train(cli, embed_recipe(corpus), corpus / "m.pt"), 1, "corpus.txt", "holds no words")
    write_corpus(corpus / "corpus.txt", sentences=20)
    recipe = embed_recipe(corpus)
    assert_fails(cli("train", recipe, "--out", corpus / "m.pt", "--set", "vocab.min_freq=1000"), 1,
                 "vocab.min_freq=1000")
    assert_fails(cli("recipes", "validate", recipe, "--set", "train.optimizer=adam"), 2, "train.optimizer")
    on_gpu = cli("recipes", "validate", recipe, "--set", "device=cuda")  # no hint towards sgd, which embed refuses
    assert_fails(on_gpu, 2, "device: cuda", "use device: cpu (a word2vec model of task embed trains with its kernel "
                 "only)")
    assert "e.g. sgd" not in on_gpu.err
    assert_fails(cli("train", recipe, "--out", corpus / "m.pt", "--set", "model.arch=glove"), 2, "arch")
    assert_fails(cli("train", recipe, "--out", corpus / "m.pt", "--set", "model.loss=hierarchical", "--set",
                     "model.output=sum"), 2, "output sum", "only negative sampling")
    assert not (corpus / "m.pt").exists()


def test_vectors_extend_gives_words_unseen_in_training_their_pretrained_rows(cli, trained, dataset):
    from dlcli import checkpoint

    (dataset.root / "train.tsv").write_text("a\tg1w1 g1w2\nb\tg2w1 g2w2\n", encoding="utf-8")
    frozen = {"max_steps": 1, "optimizer": {"type": "sgd", "lr": 0.0}}
    for extend in (False, True):
        recipe = dataset.recipe(model={"type": "mlp", "embedding_dim": 16}, train=frozen,
                                data={"vectors": str(trained), "vectors_extend": extend})
        out = dataset.root / f"clf{extend}.pt"
        assert_ok(cli("train", recipe, "--out", out, "--quiet"))
        clf = checkpoint.load(out)
        index = {w: i for i, w in enumerate(clf["vocab"]["tokens"].split("\n"))}
        assert ("g7w5" in index) == extend  # never in the training data
    source = api.load_model(trained)
    want = source.model.vectors()[source.task.vocab.index["g7w5"]]
    assert clf["state_dict"]["embedding.weight"][index["g7w5"]].tolist() == pytest.approx(want.tolist(), abs=1e-6)
    assert len(index) == 2 + 4 + 48 - 4  # pad, unk, the training words, the other vector words


@pytest.mark.parametrize(("kind", "binary"), [("word2vec", False), ("word2vec-bin", True)])
def test_gensim_reads_the_export_and_finds_the_same_neighbours(cli, trained, corpus, kind, binary):
    gensim_models = pytest.importorskip("gensim.models")
    out = corpus / f"vectors.{kind}"
    assert_ok(cli("embed", trained, "--export", kind, "--out", out))
    vectors = gensim_models.KeyedVectors.load_word2vec_format(str(out), binary=binary)
    for query in ("g0w0", "g6w3"):
        ours = cli("embed", trained, "--neighbors", "10", stdin=query.encode() + b"\n").records()[0]["neighbors"]
        theirs = vectors.most_similar(query, topn=10)
        assert [n["word"] for n in ours] == [w for w, _ in theirs]
        assert [n["score"] for n in ours] == pytest.approx([s for _, s in theirs], abs=1e-5)


@pytest.mark.parametrize("model", [{"type": "word2vec"}, {"type": "glove", "embedding_dim": 8, "window": 3}])
def test_training_and_querying_word_vectors_never_import_torch(corpus, model):
    """Word vectors are NumPy tables: torch (about 190 MB resident) stays out of `dlcli train`,
    `dlcli embed` and `dlcli evaluate`, so their memory stays below gensim's."""
    import subprocess
    import sys

    optimizer = {"type": "hogwild_adagrad" if model["type"] == "glove" else "hogwild_sgd", "lr": 0.05}
    recipe, out = embed_recipe(corpus, model, epochs=1, optimizer=optimizer), corpus / "m.pt"
    commands = [["train", str(recipe), "--out", str(out), "--quiet"], ["embed", str(out), "--neighbors", "2"],
                ["evaluate", str(out), str(corpus / "pairs.tsv")]]
    for argv in commands:
        code = ("import sys, atexit\natexit.register(lambda: print('torch loaded:', 'torch' in sys.modules, "
                f"file=sys.stderr))\nsys.argv = ['dlcli', *{argv!r}]\nfrom dlcli.cli import main\nmain()")
        done = subprocess.run([sys.executable, "-c", code], input=b"g3w1\n", capture_output=True, cwd=corpus,
                              timeout=300)
        assert done.returncode == 0, done.stderr.decode()
        assert done.stderr.decode().strip().splitlines()[-1] == "torch loaded: False", argv
        assert done.stdout.strip(), argv


def test_checkpoints_written_by_torch_still_load(cli, trained, tmp_path):
    """Before word vectors were NumPy tables their checkpoints were torch.save files of tensors:
    such a file loads and answers as the one it was made from."""
    import torch

    from dlcli import checkpoint

    content = checkpoint.load(trained)  # tensors, as the torch model's state_dict held them
    old = tmp_path / "old.pt"
    torch.save(content, old)
    query = b"g3w1\ng6w2\n"
    assert cli("embed", old, "--neighbors", "3", stdin=query).records() == \
        cli("embed", trained, "--neighbors", "3", stdin=query).records()
