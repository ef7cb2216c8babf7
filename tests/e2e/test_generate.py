"""`dlcli generate` and GPT through the CLI: a tiny byte-level GPT trained from a recipe generates
(JSON Lines, streamed text, samples, seeds, long prompts), a recurrent LM continues its corpus,
bad options and the wrong kind of model get clear errors, and a classifier fine-tunes from the GPT."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest
import torch
import yaml
from helpers import assert_fails, assert_ok, make_dataset, synthetic_rows, train

from dlcli import api, checkpoint

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "park", "home"]


def corpus(n: int, seed: int) -> list[str]:
    """Lines that walk WORDS in order from a random start: each word fixes the next."""
    rng = random.Random(seed)
    return [" ".join(WORDS[(start + i) % len(WORDS)] for i in range(rng.randint(3, 8)))
            for start in (rng.randrange(len(WORDS)) for _ in range(n))]


def write_yaml(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


def lm_recipe(root: Path, model: dict, vocab: dict, name: str, **train_knobs) -> Path:
    return write_yaml(root / name, {
        "task": "lm", "seed": 3, "device": "cpu",
        "data": {"train": "./train.txt.gz", "dev": "./dev.txt", "bptt": 6},
        "vocab": vocab, "model": model,
        "train": {"epochs": 3, "batch_size": 8, "grad_clip": 1.0, **train_knobs}})


GPT = {"type": "gpt", "context_length": 64, "embedding_dim": 24, "num_layers": 1, "num_heads": 2, "dropout": 0.0}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A tiny GPT (byte-level BPE) and a tiny rnn_lm (words) trained once on the WORDS corpus."""
    root = tmp_path_factory.mktemp("generate")
    with gzip.open(root / "train.txt.gz", "wt", encoding="utf-8") as fh:
        fh.write("".join(f"{line}\n" for line in corpus(600, 1)))
    (root / "dev.txt").write_text("".join(f"{line}\n" for line in corpus(40, 2)), encoding="utf-8")
    gpt = lm_recipe(root, GPT, {"type": "byte_bpe", "vocab_size": 300, "min_freq": 1}, "gpt.yaml", epochs=20,
                    optimizer={"type": "adamw", "lr": 0.01}, lr_schedule={"type": "warmup_cosine", "warmup_steps": 5})
    rnn = lm_recipe(root, {"type": "rnn_lm", "embedding_dim": 16, "hidden_size": 16, "num_layers": 1},
                    {"type": "word"}, "rnn.yaml", optimizer={"type": "sgd", "lr": 1.0})
    out = {"root": root}
    for name, recipe in (("gpt", gpt), ("rnn", rnn)):
        out[name] = root / f"{name}.pt"
        api.train(recipe, out=out[name], overwrite=True)
    return out


def test_a_trained_gpt_generates_jsonl_records(cli, models):
    summary = checkpoint.load(models["gpt"])["metrics"]
    assert summary["perplexity"] < 4  # each word fixes the next: the model has learned the walk
    stdin = b"the cat sat\n\non a mat and\n"
    result = cli("generate", models["gpt"], "--temperature", "0", "--max-new-tokens", "6", stdin=stdin)
    assert_ok(result)
    records = result.records()
    assert [r["id"] for r in records] == [1, 2, 3]
    assert set(records[0]) == {"id", "prompt", "text", "tokens", "finish_reason"}
    assert records[0]["prompt"] == "the cat sat" and records[0]["text"].startswith(" on a")
    assert records[2]["text"].startswith(" dog")
    assert all(r["finish_reason"] in ("eos", "length") for r in records)
    assert records[0]["finish_reason"] == "length" and len(records[0]["tokens"]) == 6
    assert "".join(records[0]["tokens"]).replace("Ġ", " ") == records[0]["text"]
    again = cli("generate", models["gpt"], "--temperature", "0", "--max-new-tokens", "6", stdin=stdin).records()
    assert again == records


def test_seeds_samples_and_streamed_text(cli, models):
    gpt = models["gpt"]
    sample = ("generate", gpt, "--prompt", "the", "--temperature", "1.5", "--max-new-tokens", "8")
    first = cli(*sample, "--seed", "4").records()
    assert cli(*sample, "--seed", "4").records() == first
    seeds = {cli(*sample, "--seed", str(s)).records()[0]["text"] for s in range(6)}
    assert len(seeds) > 1  # a high temperature over 6 seeds does not give one text
    two = cli(*sample, "--seed", "4", "--num-samples", "2").records()
    assert [(r["id"], r["sample"]) for r in two] == [(1, 0), (1, 1)]
    assert two[0]["text"] == first[0]["text"]  # sample 0 of prompt 1 draws from the same seed either way
    greedy = cli("generate", gpt, "--prompt", "a mat", "--temperature", "0", "-n", "5").records()[0]
    streamed = cli("generate", gpt, "--prompt", "a mat", "--temperature", "0", "-n", "5", "--format", "text")
    assert_ok(streamed)
    assert streamed.out == greedy["text"] + "\n"
    lines = cli("generate", gpt, "--temperature", "0", "-n", "3", "--format", "text", stdin=b"the\ncat\n")
    assert lines.lines == [r["text"] for r in cli("generate", gpt, "--temperature", "0", "-n", "3",
                                                   stdin=b"the\ncat\n").records()]


def test_long_and_empty_prompts(cli, models):
    long = " ".join(corpus(1, 5)[0] for _ in range(40))
    record = cli("generate", models["gpt"], "--prompt", long, "--temperature", "0", "-n", "20").records()[0]
    assert record["truncated"]["kept"] == 64 and record["truncated"]["length"] > 64  # the context: 64 tokens
    assert record["finish_reason"] in ("context", "eos") and len(record["tokens"]) <= 1
    empty = cli("generate", models["gpt"], "--prompt", "", "--temperature", "0", "-n", "4").records()[0]
    assert empty["prompt"] == "" and empty["tokens"]  # a text from nothing


def test_a_recurrent_lm_continues_its_corpus(cli, models):
    records = cli("generate", models["rnn"], "--temperature", "0", "-n", "4", stdin=b"the cat\npark\n").records()
    first = records[0]
    walk = ["sat", "on", "a", "mat"]
    assert first["tokens"] and first["tokens"] == walk[:len(first["tokens"])]  # the walk, until a line ends
    assert first["text"] == " ".join(first["tokens"])
    assert first["finish_reason"] == ("length" if len(first["tokens"]) == 4 else "eos")
    assert records[1]["tokens"][:1] == ["home"]


def test_bad_options_and_models_get_clear_errors(cli, models, tmp_path):
    gpt = models["gpt"]
    assert_fails(cli("generate", gpt, "--prompt", "a", "--top-p", "0"), 2, "--top-p")
    assert_fails(cli("generate", gpt, "--prompt", "a", "--top-p", "1.5"), 2, "--top-p")
    assert_fails(cli("generate", gpt, "--prompt", "a", "--temperature", "-1"), 2, "--temperature")
    assert_fails(cli("generate", gpt, "--prompt", "a", "--num-samples", "0"), 2, "--num-samples")
    assert_fails(cli("generate", gpt, "-", "--prompt", "a"), 2, "--prompt")
    assert_fails(cli("generate", gpt, "--prompt", "a", "--format", "xml"), 2, "--format")
    data = make_dataset(tmp_path)
    classifier = tmp_path / "c.pt"
    assert_ok(train(cli, data.recipe(), classifier))
    assert_fails(cli("generate", classifier, "--prompt", "a"), 1, "does not generate", "dlcli classify")


def test_a_classifier_fine_tunes_from_the_gpt(cli, tmp_path):
    """A GPT pretrained on the texts (labels left out) starts a classifier: the architecture and
    tokenizer come from it, and the fine-tuned model classifies."""
    data = make_dataset(tmp_path, n_train=60)
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(f"{text}\n" for _, text in synthetic_rows(200, 9)), encoding="utf-8")
    pretrain = write_yaml(tmp_path / "lm.yaml", {
        "task": "lm", "seed": 3, "device": "cpu", "data": {"train": "./texts.txt"},
        "vocab": {"type": "byte_bpe", "vocab_size": 400, "min_freq": 2}, "model": {**GPT, "context_length": 32},
        "train": {"epochs": 8, "batch_size": 8, "optimizer": {"type": "adamw", "lr": 0.01}}})
    lm = tmp_path / "lm.pt"
    assert_ok(train(cli, pretrain, lm))
    start = {"data": {"init": str(lm)}, "train": {"epochs": 6, "batch_size": 16,
                                                  "optimizer": {"type": "adamw", "lr": 0.003}}}
    recipe = data.recipe("gpt.yaml", model={"type": "gpt", "lm_weight": 0.5}, **start)
    out = tmp_path / "gpt_cls.pt"
    assert_ok(train(cli, recipe, out))
    saved = checkpoint.load(out)
    kwargs = saved["model"]["kwargs"]
    assert (kwargs["embedding_dim"], kwargs["context_length"], kwargs["num_layers"]) == (24, 32, 1)
    assert saved["recipe"]["model"]["embedding_dim"] == 24 and saved["vocab"]["type"] == "byte_bpe"
    labels = {label for label, _ in data.dev_rows()}
    assert cli("classify", out, stdin=data.dev_rows()[0][1].encode()).records()[0]["label"] in labels

    baseline = train(cli, recipe, tmp_path / "random.pt", "--set", "data.init_weights=false")
    assert_ok(baseline)
    # The texts' words are drawn independently, so pretraining can teach nothing of their labels:
    # the tokenizer and architecture alone are checked to learn them, from random weights.
    assert baseline.json()["best"] >= 0.9
    assert not all(torch.equal(checkpoint.load(tmp_path / "random.pt")["state_dict"][k], v)
                   for k, v in saved["state_dict"].items())
    assert_fails(train(cli, recipe, tmp_path / "x.pt", "--set", "model.embedding_dim=32"), 2, "model.embedding_dim")
    textcnn = data.recipe("textcnn.yaml", model={"type": "textcnn", "embedding_dim": 8, "num_filters": 4},
                          data={"init": str(lm)})
    assert_fails(train(cli, textcnn, tmp_path / "y.pt"), 2, "data.init", "model type gpt")
    scratch = data.recipe("scratch.yaml", model={"type": "gpt"})
    assert_fails(train(cli, scratch, tmp_path / "z.pt"), 2, "embedding_dim", "data.init")
    on_classifier = data.recipe("on_cls.yaml", model={"type": "gpt"}, data={"init": str(out)})
    assert_fails(train(cli, on_classifier, tmp_path / "w.pt"), 1, "data.init", "classify model")
