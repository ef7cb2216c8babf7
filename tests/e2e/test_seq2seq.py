"""Seq2seq through the CLI: tiny translators trained from recipes on a made-up language (each word
has one translation) learn it, and `dlcli generate` / `evaluate` give the
records and scores they promise, on good input and bad."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml
from helpers import assert_fails, assert_ok

from dlcli import api, checkpoint

SOURCE = ["ka", "lo", "mi", "nu", "pe", "ri", "so", "tu"]
TARGET = ["cat", "dog", "sun", "moon", "tree", "river", "stone", "bird"]


def pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """Sentences of 2-5 made-up words; the translation is each word's English, a period at the end."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.randrange(len(SOURCE)) for _ in range(rng.randint(2, 5))]
        out.append((" ".join(SOURCE[w] for w in words), " ".join(TARGET[w] for w in words) + "."))
    return out


def write_pairs(path: Path, rows) -> Path:
    path.write_text("".join(f"{s}\t{t}\n" for s, t in rows), encoding="utf-8")
    return path


def recipe(root: Path, name: str, model: dict, training: dict | None = None, **data) -> Path:
    path = root / name
    path.write_text(yaml.safe_dump({
        "task": "seq2seq", "seed": 1, "device": "cpu",
        "data": {"train": "./train.tsv", "dev": "./dev.tsv", "max_source_length": 12, "max_target_length": 12,
                 **data},
        "vocab": {"source": {"type": "word"}, "target": {"type": "word", "pattern": r"\w+|[^\w\s]"}},
        "model": model,
        "train": {"epochs": 12, "batch_size": 16, "optimizer": {"type": "adam", "lr": 0.01}, **(training or {})},
    }, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("seq2seq")
    write_pairs(root / "train.tsv", pairs(400, 1))
    write_pairs(root / "dev.tsv", pairs(40, 2))
    out = {"root": root}
    rnn = recipe(root, "rnn.yaml", {"type": "rnn_seq2seq", "embedding_dim": 16, "hidden_size": 32, "dropout": 0.0})
    transformer = recipe(root, "transformer.yaml", {"type": "transformer_seq2seq", "d_model": 32, "num_heads": 2,
                                                    "ff_size": 64, "encoder_layers": 1, "decoder_layers": 1,
                                                    "dropout": 0.0, "max_positions": 16},
                         {"optimizer": {"type": "adam", "lr": 0.003}})
    for name, path in (("rnn", rnn), ("transformer", transformer)):
        out[name] = root / f"{name}.pt"
        api.train(path, out=out[name], overwrite=True)
    return out


@pytest.mark.parametrize("name", ["rnn", "transformer"])
def test_a_trained_translator_learns_the_made_up_language(cli, models, name):
    metrics = checkpoint.load(models[name])["metrics"]
    assert metrics["bleu"] > 90  # word for word: learnable in a few epochs
    result = cli("generate", models[name], stdin=b"ka lo mi\n\nso nu tu\n")
    assert_ok(result)
    records = result.records()
    assert [r["id"] for r in records] == [1, 2, 3]
    assert set(records[0]) == {"id", "source", "output", "score", "finish_reason"}
    assert records[0]["output"] == "cat dog sun ."
    assert records[0]["score"] < 0 and records[0]["finish_reason"] == "eos"
    assert records[1] == {"id": 2, "source": "", "output": "", "score": 0.0, "finish_reason": "eos"}
    assert records[2]["output"] == "stone moon bird ."


def test_evaluate_gives_sacrebleu_numbers_on_the_same_outputs(cli, models):
    sacrebleu = pytest.importorskip("sacrebleu")
    root = models["root"]
    dev = [line.split("\t") for line in (root / "dev.tsv").read_text(encoding="utf-8").splitlines()]
    for beam in ("1", "4"):
        result = cli("evaluate", models["rnn"], root / "dev.tsv", "--beam-size", beam)
        assert_ok(result)
        scores = json.loads(result.out)
        assert scores["n"] == len(dev) and scores["beam_size"] == int(beam)
        sources = "".join(f"{s}\n" for s, _ in dev).encode()
        outputs = [r["output"] for r in cli("generate", models["rnn"], "--beam-size", beam, stdin=sources).records()]
        references = [t for _, t in dev]
        assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(outputs, [references]).score, abs=1e-9)
        assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(outputs, [references]).score, abs=1e-9)
        assert scores["loss"] > 0 and scores["perplexity"] == pytest.approx(2.718281828 ** scores["loss"])


def test_n_best_max_length_text_format_and_truncation(cli, models):
    model = models["transformer"]
    record = cli("generate", model, "--prompt", "ka lo", "--beam-size", "4", "--n-best", "3").records()[0]
    assert [h["output"] for h in record["n_best"]][0] == record["output"] == "cat dog ."
    assert len(record["n_best"]) == 3 and len({h["output"] for h in record["n_best"]}) == 3
    cut = cli("generate", model, "--prompt", "ka lo mi nu", "--max-length", "2").records()[0]
    assert cut["finish_reason"] == "length" and cut["output"] == "cat dog"
    text = cli("generate", model, "--format", "text", stdin=b"ka lo\nmi\n")
    assert_ok(text)
    assert text.lines == ["cat dog .", "sun ."]
    long = " ".join(["ka"] * 30)
    truncated = cli("generate", model, "--prompt", long).records()[0]
    assert truncated["truncated"] == {"length": 31, "kept": 12}  # the end token counted and kept


def test_attention_pictures(cli, models, tmp_path):
    pytest.importorskip("matplotlib")
    folder = tmp_path / "pictures"
    result = cli("generate", models["rnn"], "--attention-plot", folder, stdin=b"ka lo mi\nnu\n")
    assert_ok(result)
    pictures = sorted(p.name for p in folder.iterdir())
    assert pictures == ["1.png", "2.png"]
    assert (folder / "1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_and_options_get_clear_errors(cli, models, tmp_path):
    model = models["rnn"]
    assert_fails(cli("generate", model, "--prompt", "ka", "--temperature", "0.5"), 2, "--temperature", "seq2seq")
    assert_fails(cli("generate", model, "--prompt", "ka", "--beam-size", "2", "--n-best", "3"), 2, "--n-best")
    assert_fails(cli("generate", model, "--prompt", "ka", "--beam-size", "0"), 2, "--beam-size")
    bad = tmp_path / "bad.tsv"
    bad.write_text("ka lo\tdog cat.\nno tab here\n", encoding="utf-8")
    assert_fails(cli("evaluate", model, bad), 1, f"{bad}:2", "tab-separated")
    root = models["root"]
    broken = recipe(root, "broken.yaml", {"type": "rnn_seq2seq", "hidden_size": 8}, train=str(bad))
    result = cli("train", broken, "--out", tmp_path / "never.pt")
    assert_fails(result, 1, f"{bad}:2")
    assert not (tmp_path / "never.pt").exists()
    tied = recipe(root, "tied.yaml", {"type": "rnn_seq2seq", "tie_embeddings": "all"})
    assert_fails(cli("train", tied, "--out", tmp_path / "tied.pt"), 2, "data.shared_vocab")


def test_one_shared_byte_level_vocabulary_with_all_embeddings_tied(cli, models, tmp_path):
    root = models["root"]
    path = recipe(root, "shared.yaml", {"type": "transformer_seq2seq", "d_model": 16, "num_heads": 2, "ff_size": 16,
                                        "encoder_layers": 1, "decoder_layers": 1, "tie_embeddings": "all"},
                  {"epochs": 1}, shared_vocab=True)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["vocab"] = {"source": {"type": "byte_bpe", "vocab_size": 300, "min_freq": 1}}
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    out = tmp_path / "shared.pt"
    assert_ok(train_cli(cli, path, out))
    content = checkpoint.load(out)
    assert "source_vocab" in content and "target_vocab" not in content  # one vocabulary, stored once
    record = cli("generate", out, "--prompt", "ka lo", "--beam-size", "2").records()[0]
    assert set(record) == {"id", "source", "output", "score", "finish_reason"}
    raw["vocab"]["target"] = {"type": "char"}
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert_fails(train_cli(cli, path, tmp_path / "x.pt"), 2, "vocab.target", "shared_vocab")
    raw["vocab"] = {"source": {"type": "word", "eos": True}}
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert_fails(train_cli(cli, path, tmp_path / "x.pt"), 2, "vocab.source.eos")


def train_cli(cli, path: Path, out: Path):
    return cli("train", path, "--out", out, "--quiet")
