"""A task and model plugged in from this module alone: registered, trained with `dlcli train`,
predicting through `dlcli predict`, evaluated with `dlcli evaluate`, without touching api.py,
trainer.py, registry.py or cli/. The task's metric is lower-is-better, so the run must keep the
checkpoint with the lowest dev error."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from helpers import assert_fails, assert_ok, train
from torch import nn

from dlcli import registry
from dlcli.errors import DataError
from dlcli.recipe import choice
from dlcli.tasks import DataSection, PredictSection, Task
from dlcli.text.batching import pad, shuffled_batches

WORDS = ("sun", "rain")


@dataclass(frozen=True)
class MajorityData(DataSection):
    format: str = choice("lines", ("lines",))  # "<label> <words...>" per line


@dataclass(frozen=True)
class MajorityPredict(PredictSection):
    shout: bool = False  # upper-case the answer


class MajorityTask(Task):
    """Which of two words a line holds more often."""

    name = "majority"
    data_section = MajorityData
    predict_section = MajorityPredict
    metrics = {"error": False, "accuracy": True}
    evaluate_options = frozenset()

    def __init__(self, vocab):
        self.vocab = vocab
        self.notes = []
        self.splits = {}

    @classmethod
    def read(cls, path, data):
        rows = []
        for number, line in enumerate(Path(path).read_text(encoding=data.encoding).splitlines(), 1):
            label, _, text = line.partition(" ")
            if label not in WORDS:
                raise DataError(f"{path}:{number}: unknown label {label!r}")
            rows.append((WORDS.index(label), text))
        return rows

    @classmethod
    def from_records(cls, recipe, vocabs, train, dev, init=None):
        builder, kwargs = vocabs["vocab"]
        task = cls(builder((text for _, text in train), **kwargs))
        task.splits["train"] = [(task.vocab.encode(t), y) for y, t in train]
        if dev:
            task.splits["dev"] = [(task.vocab.encode(t), y) for y, t in dev]
        return task

    @classmethod
    def from_checkpoint(cls, content):
        from dlcli.text import vocabularies

        return cls(vocabularies.from_dict(content["vocab"]))

    def payload(self):
        return {"vocab": self.vocab.to_dict()}

    def model_sizes(self):
        return self.vocab.size, len(WORDS), self.vocab.pad_id

    @property
    def has_dev(self):
        return "dev" in self.splits

    @property
    def num_train(self):
        return len(self.splits["train"])

    def train_batches(self, batch_size, generator):
        return shuffled_batches(self.num_train, batch_size, generator)

    def _batch(self, rows):
        ids, mask = pad([ids for ids, _ in rows], self.vocab.pad_id)
        return {"ids": ids, "mask": mask, "target": torch.tensor([y for _, y in rows])}

    def collate(self, indices):
        return self._batch([self.splits["train"][i] for i in indices])

    def loss(self, model, batch):
        return F.cross_entropy(model(batch["ids"], batch["mask"]), batch["target"])

    @torch.inference_mode()
    def evaluate(self, model, records=None, options=None):
        rows = self.splits["dev"] if records is None else [(self.vocab.encode(t), y) for y, t in records]
        batch = self._batch(rows)
        right = (model(batch["ids"], batch["mask"]).argmax(1) == batch["target"]).float().mean().item()
        return {"error": 1 - right, "accuracy": right, "n": len(rows)}

    @torch.inference_mode()
    def predict(self, model, ids, texts, options):
        batch = self._batch([(self.vocab.encode(t), 0) for t in texts])
        answers = [WORDS[i] for i in model(batch["ids"], batch["mask"]).argmax(1).tolist()]
        return [{"id": i, "answer": a.upper() if options["shout"] else a} for i, a in zip(ids, answers)]


class BagOfWords(nn.Module):
    def __init__(self, vocab_size: int, num_labels: int, pad_id: int, *, dim: int = 8):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.output = nn.Linear(dim, num_labels)

    def forward(self, ids, mask):
        summed = (self.embedding(ids) * mask.unsqueeze(-1)).sum(1)  # (B, dim): counts of each word
        return self.output(summed)


@pytest.fixture
def majority_task():
    registry.register_task("majority", MajorityTask, {"bag": BagOfWords})
    yield
    registry.TASKS.pop("majority")
    registry.MODELS.pop("majority")


def write_lines(path: Path, n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.choice((3, 5, 7)))]
        rows.append((max(WORDS, key=words.count), " ".join(words)))
    path.write_text("".join(f"{label} {text}\n" for label, text in rows), encoding="utf-8")
    return rows


@pytest.fixture
def majority_recipe(tmp_path) -> Path:
    write_lines(tmp_path / "train.txt", 200, 1)
    write_lines(tmp_path / "dev.txt", 40, 2)
    recipe = {"task": "majority", "seed": 3, "device": "cpu",
              "data": {"train": "./train.txt", "dev": "./dev.txt"},
              "model": {"type": "bag", "dim": 4},
              "train": {"epochs": 4, "batch_size": 8, "eval_every": 2, "optimizer": {"type": "adam", "lr": 0.01}},
              "predict": {"shout": True}}
    path = tmp_path / "majority.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def test_a_task_plugged_in_from_outside_trains_predicts_and_evaluates(cli, majority_task, majority_recipe, tmp_path):
    out = tmp_path / "m.pt"
    result = train(cli, majority_recipe, out)
    assert_ok(result)
    summary = result.json()
    assert summary["metric"] == "error"
    log = [json.loads(line) for line in (tmp_path / "m.metrics.jsonl").read_text().splitlines()]
    errors = [entry["dev"]["error"] for entry in log]
    assert max(errors) > min(errors)  # so keeping the highest would show
    assert summary["best"] == pytest.approx(min(errors)) and summary["best"] <= 0.1  # lowest kept, and it learned

    info = cli("info", out).json()
    assert info["metrics"]["error"] == pytest.approx(min(errors))
    assert set(info["recipe"]["data"]) == {"train", "dev", "encoding", "format"}  # its own section only
    assert info["recipe"]["predict"] == {"batch_size": 256, "shout": True}

    records = cli("predict", out, stdin=b"sun sun rain\nrain rain rain sun sun\n").records()
    assert [r["answer"] for r in records] == ["SUN", "RAIN"] and [r["id"] for r in records] == [1, 2]
    quiet = cli("predict", out, "--set", "shout=false", stdin=b"rain\n").records()
    assert quiet == [{"id": 1, "answer": "rain"}]

    evaluated = cli("evaluate", out, tmp_path / "dev.txt").json()
    assert evaluated["error"] == pytest.approx(min(errors)) and evaluated["n"] == 40


def test_a_plugged_in_task_refuses_foreign_keys_and_other_commands(cli, majority_task, majority_recipe, tmp_path):
    recipe = yaml.safe_load(majority_recipe.read_text())
    recipe["data"]["label_column"] = 1  # a classify key, not this task's
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert_fails(cli("recipes", "validate", bad), 2, "data.label_column: unknown key")

    out = tmp_path / "m.pt"
    assert_ok(train(cli, majority_recipe, out))
    assert_fails(cli("classify", out, stdin=b"sun\n"), 1, "needs a classify model", "use dlcli predict")
    assert_fails(cli("evaluate", out, tmp_path / "dev.txt", "--threshold", "0.5"), 2,
                 "--threshold does not apply to a majority model")
