"""The trainer through `dlcli train`: learning, early stopping, max_steps, EMA, logs, resume, NaN, seeds."""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import signal
from pathlib import Path

import pytest
from helpers import (
    FILLER,
    LABELS,
    TINY_FASTTEXT,
    TINY_TEXTCNN,
    TOPICS,
    assert_fails,
    assert_ok,
    assert_same_tensors,
    read_tsv,
    state_tensors,
    tiny_kwargs,
    train,
)

from dlcli import api, checkpoint, registry
from dlcli.tasks.classify import ClassifyTask

STEPS_PER_EPOCH = 8  # 3 labels x 40 training examples, batches of 16


def metrics_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in checkpoint.sidecar(out, "metrics.jsonl").read_text().splitlines()]


def train_state(out: Path) -> dict:
    return checkpoint.load(checkpoint.sidecar(out, "train-state.pt"), checkpoint.STATE_FORMAT)


def patch_loss(monkeypatch, change) -> None:
    """Route ClassifyTask.loss through change(call_number, loss_fn, self, model, batch)."""
    original = ClassifyTask.loss
    calls = itertools.count(1)

    def loss(self, model, batch):
        return change(next(calls), original, self, model, batch)

    monkeypatch.setattr(ClassifyTask, "loss", loss)


def dev_accuracy(out: Path, dev: Path) -> float:
    return api.evaluate(api.load_model(out), dev)["accuracy"]


# The plain tanh RNN learns this tiny set reliably only with mean pooling; the character CNN needs
# characters and more data, and is trained on its own in tests/unit/test_classifiers.py. A bert
# from random weights learns it in time only with mean pooling ([CLS] has to learn to gather first).
LEARNS_WITH = {"rnn": {"pooling": "mean"}, "bert": {"pooling": "mean", "hidden_size": 16}}
# GPT's and BERT's weights start small (N(0, 0.02), as in the papers): the shared Adam lr of 0.05
# throws them about.
TRAINS_WITH = {name: {"optimizer": {"type": "adamw", "lr": 0.003}} for name in ("gpt", "bert")}
WORD_MODELS = sorted(set(registry.MODELS["classify"]) - {"charcnn"})


@pytest.mark.parametrize("name", WORD_MODELS)
def test_every_model_learns_the_synthetic_task(cli, dataset, name):
    knobs = tiny_kwargs(registry.MODELS["classify"][name], embedding_dim=16, hidden_sizes=[16])
    model = {"type": name, **knobs, **LEARNS_WITH.get(name, {})}
    recipe = dataset.recipe(model=model, train={"epochs": 8, **TRAINS_WITH.get(name, {})})
    out = dataset.root / "m.pt"
    result = train(cli, recipe, out)
    assert_ok(result)
    summary = result.json()
    assert summary["checkpoint"] == str(out) and summary["metric"] == "accuracy"
    assert summary["best"] >= 0.9
    assert dev_accuracy(out, dataset.dev) == pytest.approx(summary["best"])  # the best model was kept


@pytest.mark.parametrize("name", sorted(registry.VOCABS))
def test_every_vocabulary_trains_end_to_end(cli, dataset, name):
    size = 300 if name == "byte_bpe" else 80  # the 256 bytes come first
    vocab = {"type": name, **tiny_kwargs(registry.VOCABS[name], vocab_size=size, min_freq=1, lowercase=True)}
    out = dataset.root / "m.pt"
    result = train(cli, dataset.recipe(model=TINY_TEXTCNN, vocab=vocab, train={"epochs": 8}), out)
    assert_ok(result)
    assert result.json()["best"] >= 0.9
    assert api.load_model(out).task.vocab.kind == name


def write_rows(path: Path, rows: list[tuple[str, str]], fmt: str) -> None:
    if fmt == "jsonl":
        lines = [json.dumps({"text": text, "label": label}) for label, text in rows]
    elif fmt == "csv":
        lines = ["text,label"] + [f'"{text}",{label}' for label, text in rows]
    else:
        lines = [f"__label__{label} {text}" for label, text in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(("fmt", "options"), [
    ("jsonl", {}), ("csv", {"header": True, "text_column": 0, "label_column": 1}), ("fasttext", {})])
def test_training_reads_every_data_format(cli, dataset, fmt, options):
    for split in ("train", "dev"):
        write_rows(dataset.root / f"{split}.{fmt}", read_tsv(getattr(dataset, split)), fmt)
    data = {"train": f"./train.{fmt}", "dev": f"./dev.{fmt}", "format": fmt, **options}
    out = dataset.root / "m.pt"
    result = train(cli, dataset.recipe(data=data, train={"epochs": 6}), out)
    assert_ok(result)
    assert result.json()["best"] >= 0.9
    assert api.load_model(out).task.multi_label is False


def multi_label_rows(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        labels = sorted(rng.sample(LABELS, rng.randint(1, 2)))
        words = [rng.choice(TOPICS[label]) for label in labels] + rng.sample(FILLER, 3)
        rng.shuffle(words)
        lines.append(" ".join([*(f"__label__{label}" for label in labels), *words]))
    return lines


def test_several_labels_per_line_train_a_multi_label_model(cli, dataset):
    for split, n, seed in (("train", 150, 1), ("dev", 30, 2)):
        (dataset.root / f"{split}.txt").write_text("\n".join(multi_label_rows(n, seed)) + "\n")
    data = {"train": "./train.txt", "dev": "./dev.txt", "format": "fasttext"}
    out = dataset.root / "m.pt"
    assert_ok(train(cli, dataset.recipe(data=data, train={"epochs": 10}), out))
    report = cli("evaluate", out, dataset.root / "dev.txt").json()
    assert {"micro_f1", "macro_f1", "precision", "recall", "accuracy", "per_label"} <= report.keys()
    assert report["n"] == 30 and report["micro_f1"] >= 0.9
    classified = cli("classify", out, stdin=b"the red cat\nseven\n").records()
    assert [set(r["labels"]) for r in classified] == [{"animal", "colour"}, {"number"}]  # threshold 0.5


def test_bf16_autocast_on_cpu_learns(cli, dataset):
    recipe = dataset.recipe(model=TINY_TEXTCNN, precision="bf16", train={"epochs": 8})
    result = train(cli, recipe, dataset.root / "m.pt")
    assert_ok(result)
    assert result.json()["best"] >= 0.9


def test_metrics_log_sits_next_to_the_checkpoint(cli, dataset):
    out = dataset.root / "runs" / "tiny.pt"
    assert_ok(train(cli, dataset.recipe(train={"epochs": 3}), out))
    log = metrics_log(out)
    assert (dataset.root / "runs" / "tiny.metrics.jsonl").is_file()
    assert [r["step"] for r in log] == [STEPS_PER_EPOCH * e for e in (1, 2, 3)]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert all({"accuracy", "macro_f1", "n"} <= r["dev"].keys() and isinstance(r["best"], bool) for r in log)
    assert log[0]["best"] is True and log[0]["lr"] == pytest.approx(0.05)


def test_patience_stops_early(cli, dataset):
    out = dataset.root / "m.pt"
    result = train(cli, dataset.recipe(train={"epochs": 40, "patience": 2}), out)
    assert_ok(result)
    log = metrics_log(out)
    last_best = max(i for i, r in enumerate(log) if r["best"])
    assert len(log) - 1 - last_best == 2  # exactly `patience` evaluations without improvement
    assert result.json()["epochs"] == len(log) < 40


def test_max_steps_is_respected(cli, dataset):
    out = dataset.root / "m.pt"
    result = train(cli, dataset.recipe(train={"epochs": 40, "max_steps": 5}), out)
    assert_ok(result)
    assert result.json()["steps"] == 5
    assert [r["step"] for r in metrics_log(out)] == [5]  # evaluated once, at the stop
    assert train_state(out)["trainer"]["progress"]["global_step"] == 5


def test_eval_every_counts_optimizer_steps(cli, dataset):
    out = dataset.root / "m.pt"
    assert_ok(train(cli, dataset.recipe(train={"epochs": 40, "max_steps": 7, "eval_every": 3}), out))
    assert [r["step"] for r in metrics_log(out)] == [3, 6, 7]


def test_eval_every_also_evaluates_the_last_step_when_the_epochs_run_out(cli, dataset):
    out = dataset.root / "m.pt"
    steps = 2 * STEPS_PER_EPOCH
    assert_ok(train(cli, dataset.recipe(train={"epochs": 2, "eval_every": steps - 1}), out))
    assert [r["step"] for r in metrics_log(out)] == [steps - 1, steps]  # the last steps are not lost
    assert checkpoint.load(out)["metrics"]["step"] in (steps - 1, steps)
    out2 = dataset.root / "m2.pt"  # a last step that is an eval_every step is evaluated once
    assert_ok(train(cli, dataset.recipe(train={"epochs": 2, "eval_every": STEPS_PER_EPOCH}), out2))
    assert [r["step"] for r in metrics_log(out2)] == [STEPS_PER_EPOCH, steps]


def test_ema_checkpoint_holds_the_shadow_weights(cli, dataset):
    out = dataset.root / "m.pt"
    recipe = dataset.recipe(data={"dev": None}, train={"epochs": 2, "ema_decay": 0.9})
    assert_ok(train(cli, recipe, out))
    saved = checkpoint.load(out)["state_dict"]
    trainer = train_state(out)["trainer"]
    assert trainer["ema"]["num_updates"] == 2 * STEPS_PER_EPOCH
    shadow, raw = trainer["ema"]["shadow"], trainer["model"]
    assert_same_tensors({k: saved[k] for k in shadow}, shadow)  # without dev data: the final shadow
    assert all(saved[k].equal(raw[k]) for k in saved.keys() - shadow.keys())  # buffers have no shadow
    assert any(not raw[k].equal(saved[k]) for k in saved), "checkpoint holds the raw weights"


def test_same_seed_same_weights_other_seed_other_weights(cli, dataset):
    recipe = dataset.recipe(model=TINY_TEXTCNN, train={"epochs": 2})
    outs = [dataset.root / f"{name}.pt" for name in ("a", "b", "c")]
    for out, seed in zip(outs, ("7", "7", "8")):
        assert_ok(train(cli, recipe, out, "--set", f"seed={seed}"))
    a, b, c = (train_state(out)["trainer"]["model"] for out in outs)
    assert_same_tensors(a, b)
    assert any(not a[k].equal(c[k]) for k in a)


# ---------------------------------------------------------------- interrupt and resume


def interrupt_at(call: int):
    def change(n, loss, task, model, batch):
        if n == call:  # Ctrl-C arrives while this step runs
            os.kill(os.getpid(), signal.SIGINT)
        return loss(task, model, batch)

    return change


def test_interrupted_then_resumed_run_matches_an_uninterrupted_one(cli, dataset, monkeypatch):
    # dropout, EMA and a schedule: all of their state must survive the interruption
    schedule = {"type": "warmup_linear", "warmup_steps": 3}
    recipe = dataset.recipe(model=TINY_TEXTCNN, train={"epochs": 3, "ema_decay": 0.9, "lr_schedule": schedule})
    straight, broken = dataset.root / "straight.pt", dataset.root / "broken.pt"
    assert_ok(train(cli, recipe, straight))

    patch_loss(monkeypatch, interrupt_at(STEPS_PER_EPOCH + 4))  # mid-way through the second epoch
    stopped = train(cli, recipe, broken)
    assert stopped.code == 130 and stopped.out == "" and "interrupted" in stopped.err
    progress = train_state(broken)["trainer"]["progress"]
    assert (progress["epoch"], progress["step_in_epoch"], progress["global_step"]) == (1, 4, STEPS_PER_EPOCH + 4)

    resumed = train(cli, recipe, broken, "--resume")
    assert_ok(resumed)
    assert resumed.json()["steps"] == 3 * STEPS_PER_EPOCH
    assert_same_tensors(state_tensors(train_state(broken)["trainer"]), state_tensors(train_state(straight)["trainer"]))
    assert_same_tensors(checkpoint.load(broken)["state_dict"], checkpoint.load(straight)["state_dict"])
    assert metrics_log(broken) == metrics_log(straight)


def test_resume_can_train_more_epochs(cli, dataset):
    out = dataset.root / "m.pt"
    recipe = dataset.recipe(train={"epochs": 2})
    assert_ok(train(cli, recipe, out))
    more = train(cli, recipe, out, "--resume", "--set", "train.epochs=3")
    assert_ok(more)
    assert more.json()["steps"] == 3 * STEPS_PER_EPOCH
    assert [r["epoch"] for r in metrics_log(out)] == [1, 2, 3]


def test_resume_refuses_a_changed_model(cli, dataset):
    out = dataset.root / "m.pt"
    recipe = dataset.recipe(train={"epochs": 1})
    assert_ok(train(cli, recipe, out))
    assert_fails(train(cli, recipe, out, "--resume", "--set", "model.embedding_dim=8"), 2, "--resume", "model")


def test_resume_without_a_saved_state(cli, dataset):
    out = dataset.root / "never.pt"
    assert_fails(train(cli, dataset.recipe(), out, "--resume"), 1, "nothing to resume",
                 str(checkpoint.sidecar(out, "train-state.pt").resolve()))


# ---------------------------------------------------------------- a loss that goes bad


def nan_after(calls: int):
    def change(n, loss, task, model, batch):
        value = loss(task, model, batch)
        return value * math.nan if n > calls else value

    return change


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(cli, dataset, monkeypatch):
    out = dataset.root / "m.pt"
    patch_loss(monkeypatch, nan_after(STEPS_PER_EPOCH + 2))
    result = train(cli, dataset.recipe(train={"epochs": 4}), out)
    assert_fails(result, 1, "training loss became nan", f"step {STEPS_PER_EPOCH + 3}", "last good checkpoint")
    kept = api.load_model(out)
    assert kept.data["metrics"]["step"] == STEPS_PER_EPOCH  # saved after the first epoch
    assert dev_accuracy(out, dataset.dev) == pytest.approx(kept.data["metrics"]["accuracy"])


def test_nan_loss_leaves_an_older_checkpoint_untouched(cli, dataset, monkeypatch):
    out = dataset.root / "m.pt"
    assert_ok(train(cli, dataset.recipe(train={"epochs": 1}), out))
    before = out.read_bytes()
    patch_loss(monkeypatch, nan_after(0))
    assert_fails(train(cli, dataset.recipe(model=TINY_FASTTEXT, train={"epochs": 1}), out, "--overwrite"), 1, "nan")
    assert out.read_bytes() == before


def test_eval_every_zero_evaluates_once_at_the_end_and_state_every_zero_keeps_no_state(cli, dataset):
    out = dataset.root / "m.pt"
    assert_ok(train(cli, dataset.recipe(train={"epochs": 3, "eval_every": 0, "state_every": 0}), out))
    evaluations = [json.loads(line) for line in (dataset.root / "m.metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in evaluations if "dev" in e] == [3]
    assert out.exists() and not (dataset.root / "m.train-state.pt").exists()
