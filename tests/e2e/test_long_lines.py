"""Lines of any length: `dlcli tag`, `classify`, `embed` and `evaluate` answer a line of hundreds of
thousands of tokens with every token accounted for, the same output as its pieces give, in time
linear in the line and with a bounded amount of memory besides the line's own tokens."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import REPO, assert_ok, run_measured, write_tsv

from dlcli.tasks.classify import MAX_PIECE
from dlcli.text.tagging import split_long

WORDS = ["the", "court", "ruled", "in", "London", "on", "Monday", "that", "Smith", "and", "Jones", "of", "EU"]
PUNCTUATION = [",", ".", ";"]


def words_line(n: int, seed: int, punctuation: float = 0.05) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(PUNCTUATION) if rng.random() < punctuation else rng.choice(WORDS) for _ in range(n)]


def peak_growth_mb(body: str) -> float:
    """Run `body` in a fresh interpreter after `setup()` it defines; the peak RSS it added over what
    the process held after setup, in MB. The body prints one JSON line of its own checks."""
    script = textwrap.dedent(body) + textwrap.dedent("""
        import json, resource, sys
        state = setup()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        checks = run(state)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"growth_mb": (after - before) / 1024, **checks}))
    """)
    code, out, err, _ = run_measured([sys.executable, "-c", script], cwd=REPO,
                                     env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert code == 0, err[-3000:]
    return json.loads(out.decode().strip().splitlines()[-1])


# ---------------------------------------------------------------- tagging


def test_long_line_is_tagged_as_its_pieces_are(cli):
    tokens = words_line(3000, seed=1)
    long = cli("tag", "en-ner", "--tokenize", "whitespace", stdin=(" ".join(tokens) + "\n").encode())
    assert_ok(long)
    [record] = long.records()
    assert record["tokens"] == tokens and len(record["tags"]) == len(tokens)
    pieces = split_long(len(tokens), 256, tokens)
    assert len(pieces) > 10 and all(tokens[e - 1] in PUNCTUATION for s, e in pieces[:-1] if e - s < 256)
    lines = "".join(" ".join(tokens[s:e]) + "\n" for s, e in pieces)
    apart = cli("tag", "en-ner", "--tokenize", "whitespace", stdin=lines.encode())
    assert_ok(apart)
    assert record["tags"] == [t for r in apart.records() for t in r["tags"]]
    offset = {n: s for n, (s, _) in enumerate(pieces)}
    assert [(sp["start"], sp["end"], sp["label"]) for sp in record["spans"]] == \
        [(sp["start"] + offset[n], sp["end"] + offset[n], sp["label"])
         for n, r in enumerate(apart.records()) for sp in r["spans"]]


def test_n_best_of_a_long_line_combines_its_pieces(cli):
    tokens = words_line(600, seed=2, punctuation=0.0)  # 600 tokens: pieces of 256, 256, 88
    result = cli("tag", "en-ner", "--n-best", "3", "--tokenize", "whitespace", stdin=(" ".join(tokens) + "\n").encode())
    assert_ok(result)
    [record] = result.records()
    best = record["n_best"]
    assert best[0]["tags"] == record["tags"] and all(len(b["tags"]) == 600 for b in best)
    assert len({tuple(b["tags"]) for b in best}) == 3
    plain = cli("tag", "en-ner", "--tokenize", "whitespace", stdin=(" ".join(tokens) + "\n").encode())
    assert plain.records()[0]["tags"] == record["tags"]
    # the runners-up differ from the best in one piece only: its second-best there, the rest kept
    differ = [n for n, (s, e) in enumerate(split_long(600, 256, tokens)) if best[1]["tags"][s:e] != record["tags"][s:e]]
    assert len(differ) == 1


def test_combined_n_best_is_the_best_of_every_combination():
    import itertools
    import math

    from dlcli.tasks.tag import _combined_nbest

    rng = random.Random(4)
    pieces = [[([f"{p}{k}"], math.log(rng.random())) for k in range(3)] for p in "abcd"]
    for pieces_ in pieces:
        pieces_.sort(key=lambda alternative: -alternative[1])
    every = sorted(((sum(lp for _, lp in combo), [t for tags, _ in combo for t in tags])
                    for combo in itertools.product(*pieces)), key=lambda c: -c[0])
    got = _combined_nbest(pieces, 5)
    assert [tags for tags, _ in got] == [tags for _, tags in every[:5]]
    assert [p for _, p in got] == pytest.approx([math.exp(lp) for lp, _ in every[:5]])
    assert _combined_nbest([pieces[0], []], 3) == [] and _combined_nbest([], 3) == []


def test_chinese_long_line_keeps_every_character(cli):
    text = "中国人民银行今天宣布降低利率，市场反应积极。" * 500  # 11,000 characters
    result = cli("tag", "zh-seg", "--format", "text", stdin=(text + "\n").encode())
    assert_ok(result)
    assert result.out.replace(" ", "").strip() == text
    words = result.out.split()
    assert "，" in words and "。" in words  # pieces were cut after punctuation, not inside words


def test_tagging_memory_stays_bounded_on_a_huge_line():
    """200,000 tokens on one line: the untouched whole-line tagger took over 1 GB more than the model
    itself (and 6 GB at a million); in pieces it takes what the tokens and a few batches need."""
    checks = peak_growth_mb("""
        def setup():
            from dlcli import api
            return api.load_model("en-ner", "cpu")

        def run(loaded):
            from dlcli import api
            text = " ".join(["word", "in", "London", ","] * 50_000)
            [record] = next(api.predict(loaded, iter([([1], [text])]), tokenize="whitespace"))
            json.dumps(record)
            return {"tokens": len(record["tokens"]), "tags": len(record["tags"])}
    """)
    assert checks["tokens"] == checks["tags"] == 200_000
    assert checks["growth_mb"] < 400, checks


# ---------------------------------------------------------------- classification


def test_long_text_is_classified_as_the_mean_of_its_pieces(cli, trained):
    rng = random.Random(3)
    words = [rng.choice(["cat", "dog", "red", "the", "really", "seven"]) for _ in range(2 * MAX_PIECE + 500)]
    labels = 3
    long = cli("classify", trained, "--top-k", str(labels), "--tokenize", "whitespace",
               stdin=(" ".join(words) + "\n").encode())
    assert_ok(long)
    [record] = long.records()
    assert record["pieces"] == 3 and "truncated" not in record
    bounds = [len(words) * k // 3 for k in range(4)]
    lines = "".join(" ".join(words[a:b]) + "\n" for a, b in zip(bounds, bounds[1:]))
    apart = cli("classify", trained, "--top-k", str(labels), "--tokenize", "whitespace", stdin=lines.encode())
    assert_ok(apart)
    weights = np.diff(bounds) / len(words)
    expected = {}
    for w, piece in zip(weights, apart.records()):
        for entry in piece["top_k"]:
            expected[entry["label"]] = expected.get(entry["label"], 0.0) + w * entry["score"]
    got = {entry["label"]: entry["score"] for entry in record["top_k"]}
    assert got == pytest.approx(expected, abs=1e-5)
    assert record["label"] == max(expected, key=expected.get)
    short = cli("classify", trained, stdin=b"the red cat\n").records()[0]
    assert "pieces" not in short and "truncated" not in short


@pytest.mark.parametrize("name", ["attn_lstm", "transformer"])
def test_models_read_long_texts_in_pieces_of_what_they_can_read(monkeypatch, name):
    """Pieces of MAX_PIECE ids, or of a transformer's positions: probabilities are the pieces'
    length-weighted mean, attention weights keep summing to one over the whole text."""
    import torch
    from helpers import tiny_kwargs

    from dlcli import registry
    from dlcli.tasks import classify
    from dlcli.text.vocab import build_word_vocab

    monkeypatch.setattr(classify, "MAX_PIECE", 9)
    torch.manual_seed(0)
    builder = registry.MODELS["classify"][name]
    vocab = build_word_vocab([" ".join(f"w{i}" for i in range(20))])
    model = builder(vocab.size, 3, vocab.pad_id, **tiny_kwargs(builder, max_positions=8)).eval()
    task = classify.ClassifyTask(vocab, ["a", "b", "c"], multi_label=False, max_length=None)
    size = 7 if name == "transformer" else 9  # [CLS] + 7 tokens fill the transformer's 8 positions
    assert task.piece_length(model) == size
    text = list(range(2, 22)) + list(range(2, 12))  # 30 ids: pieces of 7/8 or 10
    probs = task.scores(model, [text, [3, 4]])
    pieces, _ = classify.split_pieces([text], size)
    assert len(pieces) == -(-30 // size) and sum(map(len, pieces)) == 30
    alone = task.scores(model, pieces)
    weights = torch.tensor([len(p) / 30 for p in pieces])
    assert torch.allclose(probs[0], (alone * weights[:, None]).sum(0), atol=1e-6)
    assert torch.allclose(probs[1], task.scores(model, [[3, 4]])[0])
    if name == "attn_lstm":
        [attention] = task.attention(model, [text])
        assert len(attention) == 30 and sum(attention) == pytest.approx(1.0, abs=1e-5)


def test_truncation_by_max_length_is_in_the_record(cli, dataset):
    recipe = dataset.recipe(data={"max_length": 5})
    out = dataset.root / "fasttext.pt"
    assert_ok(cli("train", recipe, "--out", out, "--quiet"))
    result = cli("classify", out, "--tokenize", "whitespace", stdin=b"the red cat is really red and blue\nred cat\n")
    assert_ok(result)
    cut, whole = result.records()
    assert cut["truncated"] == {"length": 8, "kept": 5} and "truncated" not in whole
    first = cli("classify", out, "--tokenize", "whitespace", stdin=b"the red cat is really\n").records()[0]
    assert (cut["label"], cut["score"]) == (first["label"], first["score"])


def test_evaluate_scores_a_huge_line(cli, trained, tmp_path):
    rows = [("animal", " ".join(["cat", "dog", "the"] * 3000)), ("colour", "red blue green"),
            ("number", "seven twelve")]
    data = write_tsv(tmp_path / "long.tsv", rows)
    report = cli("evaluate", trained, data).json()
    assert report["n"] == 3 and report["accuracy"] == 1.0


def test_fasttext_mean_of_a_huge_bag_is_exact(dataset):
    """The NumPy FastText scorer sums a long bag in blocks: the same scores as one gather."""
    from dlcli.models.fasttext_numpy import BLOCK, FastTextScorer

    rng = np.random.default_rng(0)
    table = rng.standard_normal((50, 8)).astype(np.float32)
    scorer = FastTextScorer({"embedding.weight": table, "output": rng.standard_normal((3, 8)).astype(np.float32)},
                            {"embedding_dim": 8})
    bag = rng.integers(0, 50, 3 * BLOCK + 17)
    expected = (table[bag].astype(np.float64).mean(0) @ scorer.output.T.astype(np.float64))
    assert scorer.scores([bag])[0] == pytest.approx(expected, abs=1e-4)


# ---------------------------------------------------------------- embeddings


@pytest.fixture(scope="module")
def vectors_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("vectors")
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(20)]
    table = rng.standard_normal((len(words), 256)).astype(np.float32)
    text = f"{len(words)} 256\n" + "".join(w + " " + " ".join(f"{v:.5f}" for v in row) + "\n"
                                          for w, row in zip(words, table))
    (root / "v.txt").write_text(text, encoding="utf-8")
    out = root / "v.pt"
    result = subprocess.run([sys.executable, "-m", "dlcli", "convert", "vectors", str(root / "v.txt"), "--out",
                             str(out)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return out


def test_embedding_of_a_huge_line_is_its_mean_in_bounded_memory(vectors_model):
    """A line of 400,000 words of 256 dimensions: one gather of their rows took 310 MB more than
    the words themselves (and summed them in float32, 6e-4 off); in blocks it takes 70 MB."""
    checks = peak_growth_mb(f"""
        def setup():
            from dlcli import api
            return api.load_model({str(vectors_model)!r}, "cpu")

        def run(loaded):
            import numpy as np
            from dlcli import api
            words = [f"w{{i % 23}}" for i in range(400_000)]
            [record] = next(api.predict(loaded, iter([([1], [" ".join(words)])])))
            known = [w for w in words if w in loaded.task.vocab.index]
            rows = [loaded.task.vocab.index[w] for w in known]
            vectors = loaded.task.word_vectors(loaded.model)
            mean = np.zeros(vectors.shape[1])
            for start in range(0, len(rows), 1000):
                mean += vectors[rows[start:start + 1000]].sum(0, dtype=np.float64)
            error = float(np.abs(np.array(record["vector"]) - mean / len(rows)).max())
            return {{"unknown": len(record["unknown"]), "expected_unknown": len(words) - len(known), "error": error}}
    """)
    assert checks["unknown"] == checks["expected_unknown"] > 0
    assert checks["error"] < 1e-5
    assert checks["growth_mb"] < 160, checks


# ---------------------------------------------------------------- fuzz


@pytest.mark.slow
def test_fuzz_random_line_lengths_keep_memory_and_time_bounded():
    """Random line lengths up to a million tokens through the shipped word and character taggers:
    every token tagged, CPU time per token and memory per token within fixed bounds."""
    checks = peak_growth_mb("""
        def setup():
            from dlcli import api
            return {name: api.load_model(name, "cpu") for name in ("en-ner", "zh-seg")}

        def run(models):
            import random, time
            from dlcli import api
            rng = random.Random(11)
            seconds, total = 0.0, 0
            for n in [rng.randint(1, 1_000_000) for _ in range(4)] + [1_000_000]:
                for name, loaded in models.items():
                    unit = ["word ", "London , "] if name == "en-ner" else ["中", "国。"]
                    text = "".join(rng.choice(unit) for _ in range(n // 2 + 1))
                    began = time.process_time()
                    [record] = next(api.predict(loaded, iter([([1], [text])])))
                    seconds += time.process_time() - began
                    assert len(record["tags"]) == len(record["tokens"]) > 0
                    total += len(record["tokens"])
                    del record
            return {"tokens": total, "us_per_token": 1e6 * seconds / total}
    """)
    assert checks["us_per_token"] < 100, checks
    assert checks["growth_mb"] < 1200, checks
