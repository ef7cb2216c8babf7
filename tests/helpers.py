"""Plain helpers the tests import: a tiny learnable synthetic dataset, recipes over it, CLI results."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

# Each label owns a few keywords; every text mixes one or two of them with shared filler words,
# so a bag-of-words model learns the task in a few dozen steps while the filler keeps it honest.
TOPICS = {
    "animal": ["cat", "dog", "horse", "tiger", "parrot", "rabbit"],
    "colour": ["red", "green", "blue", "yellow", "purple", "orange"],
    "number": ["seven", "twelve", "hundred", "dozen", "million", "zero"],
}
FILLER = ["the", "a", "my", "really", "about", "this", "is", "and", "so", "quite", "then", "there"]
LABELS = sorted(TOPICS)

# Small values for whichever of these knobs a model builder takes; new models pick up what applies.
TINY_KNOBS = {"embedding_dim": 8, "hidden_size": 8, "hidden_sizes": [8], "num_filters": 4, "kernel_sizes": [2, 3],
              "num_layers": 1, "num_heads": 2, "d_model": 8, "ff_size": 16, "latent_size": 8, "fc_size": 8,
              "context_length": 16, "max_position_embeddings": 32, "cls_id": 1, "sep_id": 2}
TINY_TEXTCNN = {"type": "textcnn", "embedding_dim": 16, "kernel_sizes": [2, 3], "num_filters": 8, "dropout": 0.2}
TINY_FASTTEXT = {"type": "fasttext", "embedding_dim": 16}


def tiny_kwargs(builder, **knobs) -> dict:
    """The TINY_KNOBS (updated with `knobs`) that `builder` accepts."""
    import inspect

    params = inspect.signature(builder).parameters
    return {k: v for k, v in {**TINY_KNOBS, **knobs}.items() if k in params}


def synthetic_rows(n_per_label: int, seed: int) -> list[tuple[str, str]]:
    """(label, text) pairs, shuffled; texts are 2 to 9 tokens long."""
    rng = random.Random(seed)
    rows = []
    for label, words in TOPICS.items():
        for _ in range(n_per_label):
            tokens = rng.sample(words, rng.randint(1, 2)) + rng.sample(FILLER, rng.randint(1, 7))
            rng.shuffle(tokens)
            rows.append((label, " ".join(tokens)))
    rng.shuffle(rows)
    return rows


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
    return path


def read_tsv(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split("\t", 1)) for line in path.read_text(encoding="utf-8").splitlines()]


def recipe_dict(model: dict | None = None, **sections) -> dict:
    """A tiny recipe over ./train.tsv and ./dev.tsv; keyword sections extend (dicts) or replace the defaults."""
    recipe = {
        "task": "classify",
        "seed": 7,
        "device": "cpu",
        "data": {"train": "./train.tsv", "dev": "./dev.tsv", "format": "tsv"},
        "vocab": {"type": "word", "lowercase": True},
        "model": dict(model or TINY_FASTTEXT),
        "train": {"epochs": 4, "batch_size": 16, "optimizer": {"type": "adam", "lr": 0.05}},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    return recipe


@dataclass
class Dataset:
    """A folder holding train.tsv, dev.tsv and the recipes written over them."""

    root: Path
    train: Path
    dev: Path

    def recipe(self, name: str = "tiny.yaml", model: dict | None = None, **sections) -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(recipe_dict(model, **sections), sort_keys=False), encoding="utf-8")
        return path

    def dev_rows(self) -> list[tuple[str, str]]:
        return read_tsv(self.dev)


def make_dataset(root: Path, n_train: int = 40, n_dev: int = 12) -> Dataset:
    root.mkdir(parents=True, exist_ok=True)
    train = write_tsv(root / "train.tsv", synthetic_rows(n_train, seed=1))
    dev = write_tsv(root / "dev.tsv", synthetic_rows(n_dev, seed=2))
    return Dataset(root, train, dev)


@dataclass
class Result:
    """What one CLI invocation returned and printed."""

    code: int
    out: str
    err: str
    lines: list[str] = field(init=False)

    def __post_init__(self):
        self.lines = self.out.splitlines()

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]

    def json(self) -> dict:
        assert len(self.lines) == 1, f"expected one JSON line, got {len(self.lines)}: {self.out[:500]}"
        return json.loads(self.lines[0])


def train(cli, recipe: Path, out: Path, *extra: str) -> Result:
    """`dlcli train RECIPE --out OUT --quiet ...` through the `cli` fixture."""
    return cli("train", recipe, "--out", out, "--quiet", *extra)


class RunsCodeOnLoad:
    """Unpickling this calls open(marker, 'w'): the marker appears only if code from a pickle ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def assert_ok(result: Result) -> None:
    assert result.code == 0, f"exit {result.code}, stderr: {result.err}"


def assert_fails(result: Result, code: int, *fragments: str) -> None:
    """An expected error: the exit code, each fragment on stderr, nothing on stdout, no traceback."""
    assert result.code == code, f"exit {result.code}, stderr: {result.err}"
    assert result.out == "", f"stdout should stay empty, got: {result.out[:500]}"
    assert "dlcli: error:" in result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in result.err, f"{fragment!r} not in stderr: {result.err}"


def state_tensors(state: dict) -> dict:
    """Only the tensors of a (nested) state dict, keyed by their dotted path."""
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in state_tensors(value).items()})
        elif hasattr(value, "dtype"):
            out[key] = value
    return out


def assert_same_tensors(a: dict, b: dict) -> None:
    import torch

    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different}"


# ---------------------------------------------------------------- tagging data

PEOPLE = [["alice"], ["bob"], ["carol", "smith"], ["dave"]]
PLACES = [["paris"], ["new", "york"], ["rome"], ["san", "jose"]]
OTHER = ["the", "met", "in", "and", "went", "to", "saw", "today", "with", "later"]
LEXICON = ["我们", "喜欢", "北京", "的", "天气", "很", "好", "今天", "中华人民共和国", "在", "上海", "工作"]
POS_OF = {"we": "r", "like": "v", "the": "u", "weather": "n", "very": "d", "good": "a", "in": "p", "work": "v"}


def synthetic_ner(n: int, seed: int) -> list[list[tuple[str, str]]]:
    """Sentences of (token, BIO tag): names are PER, places LOC, everything else O."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        chunks = [[(w, "O")] for w in rng.sample(OTHER, rng.randint(2, 5))]
        for kind, pool in (("PER", PEOPLE), ("LOC", PLACES)):
            if rng.random() < 0.8:
                words = rng.choice(pool)
                chunks.insert(rng.randint(0, len(chunks)),
                              [(w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(words)])
        sentences.append([pair for chunk in chunks for pair in chunk])
    return sentences


def write_conll(path: Path, sentences: list[list[tuple[str, str]]]) -> Path:
    path.write_text("".join("".join(f"{t} {g}\n" for t, g in s) + "\n" for s in sentences), encoding="utf-8")
    return path


def synthetic_segmented(n: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(LEXICON) for _ in range(rng.randint(2, 7))] for _ in range(n)]


def synthetic_pos(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = sorted(POS_OF)
    return [" ".join(f"{w}/{POS_OF[w]}" for w in rng.choices(words, k=rng.randint(2, 8))) for _ in range(n)]


def tag_recipe(root: Path, data: dict, model: dict | None = None, name: str = "tag.yaml", **train) -> Path:
    recipe = {
        "task": "tag", "seed": 3, "device": "cpu",
        "data": {"train": "./train.txt", "dev": "./dev.txt", **data},
        "vocab": {"type": "word"},
        "model": {"type": "bilstm_crf", "embedding_dim": 16, "hidden_size": 16, "dropout": 0.1, **(model or {})},
        "train": {"epochs": 8, "batch_size": 8, "optimizer": {"type": "adam", "lr": 0.02}, **train},
    }
    path = root / name
    path.write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


# facenet-pytorch's layer shapes, the layout of the original weights it ships (out, in, kh, kw).
FACENET_SHAPES = {
    "pnet": {"conv1": (10, 3, 3, 3), "prelu1": (10,), "conv2": (16, 10, 3, 3), "prelu2": (16,),
             "conv3": (32, 16, 3, 3), "prelu3": (32,), "conv4_1": (2, 32, 1, 1), "conv4_2": (4, 32, 1, 1)},
    "rnet": {"conv1": (28, 3, 3, 3), "prelu1": (28,), "conv2": (48, 28, 3, 3), "prelu2": (48,),
             "conv3": (64, 48, 2, 2), "prelu3": (64,), "dense4": (128, 576), "prelu4": (128,),
             "dense5_1": (2, 128), "dense5_2": (4, 128)},
    "onet": {"conv1": (32, 3, 3, 3), "prelu1": (32,), "conv2": (64, 32, 3, 3), "prelu2": (64,),
             "conv3": (64, 64, 3, 3), "prelu3": (64,), "conv4": (128, 64, 2, 2), "prelu4": (128,),
             "dense5": (256, 1152), "prelu5": (256,), "dense6_1": (2, 256), "dense6_2": (4, 256),
             "dense6_3": (10, 256)},
}


# Runs argv[2:] and writes its peak RSS (KB) to argv[1]. Measured from a child of this small
# process, not of the test run: Linux carries the old address space's peak RSS across exec, so a
# child started straight from a big process (pytest, after loading models) would report that
# process's peak as its own, and a memory test could not fail.
PEAK_RSS_LAUNCHER = """import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(argv: list, *, stdin: bytes = b"", env: dict | None = None, cwd=None,
                 timeout: float = 600) -> tuple[int, bytes, str, float]:
    """(exit code, stdout, stderr, peak RSS in MB) of a command run in its own process tree."""
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out, err, peak = (os.path.join(tmp, name) for name in ("out", "err", "peak"))
        with open(out, "wb") as out_fh, open(err, "wb") as err_fh:  # files: a pipe could fill and block it
            done = subprocess.run([sys.executable, "-c", PEAK_RSS_LAUNCHER, peak, *map(str, argv)], input=stdin,
                                  stdout=out_fh, stderr=err_fh, env=env, cwd=cwd, timeout=timeout)
        with open(out, "rb") as out_fh, open(err, "rb") as err_fh, open(peak) as peak_fh:
            return done.returncode, out_fh.read(), err_fh.read().decode("utf-8", "replace"), int(peak_fh.read()) / 1024
