"""`dlcli train` never loses or damages what is on disk (issue 18): --out must be a regular file,
an earlier run's files need --resume or --overwrite, an overwritten model stays until the new
run finishes, one run at a time holds an --out, killed runs' temporary files go, and file names
that are not UTF-8 come back as valid JSON."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, TINY_FASTTEXT, assert_fails, assert_ok, train

from dlcli import api, checkpoint
from dlcli.files import FileLock
from dlcli.tasks.classify import ClassifyTask

STEPS_PER_EPOCH = 8  # 3 labels x 40 training examples, batches of 16


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def interrupt_at(monkeypatch, call: int):
    """Ctrl-C arrives while the `call`-th training step runs; returns the loss to put back."""
    original, calls = ClassifyTask.loss, itertools.count(1)

    def loss(self, model, batch):
        if next(calls) == call:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, model, batch)

    monkeypatch.setattr(ClassifyTask, "loss", loss)
    return original


# ---------------------------------------------------------------- 1. --out must be a regular file


def test_out_naming_a_directory_is_refused_before_anything_is_written(cli, dataset):
    folder, recipe = dataset.root / "runs", dataset.recipe()
    folder.mkdir()
    before = snapshot(dataset.root)
    result = train(cli, recipe, folder)
    assert_fails(result, 2, f"--out {folder}: is a directory", f"--out {folder / 'model.pt'}")
    assert ".tmp" not in result.err
    assert snapshot(dataset.root) == before and not list(dataset.root.glob("*.metrics.jsonl"))


def test_out_naming_a_fifo_is_refused_and_left_alone(cli, dataset):
    fifo, recipe = dataset.root / "pipe", dataset.recipe()
    os.mkfifo(fifo)
    before = snapshot(dataset.root)
    assert_fails(train(cli, recipe, fifo), 2, "is a FIFO, not a checkpoint file", "hint:")
    assert fifo.is_fifo() and snapshot(dataset.root) == before
    assert not list(dataset.root.glob("pipe.*")) and not list(dataset.root.glob(".pipe*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="as root, a regression would replace the real /dev/null")
def test_out_dev_null_is_refused(cli, dataset):
    assert_fails(train(cli, dataset.recipe(), Path("/dev/null")), 2, "is a character device")
    assert Path("/dev/null").is_char_device() and not Path("/dev/null.metrics.jsonl").exists()


def test_a_directory_where_a_file_beside_the_checkpoint_goes_is_refused(cli, dataset):
    (dataset.root / "m.train-state.pt").mkdir()
    recipe = dataset.recipe()
    before = snapshot(dataset.root)
    assert_fails(train(cli, recipe, dataset.root / "m.pt"), 2, "m.train-state.pt", "is a directory")
    assert snapshot(dataset.root) == before


# ---------------------------------------------------------------- 2. file names that are not UTF-8


def test_a_file_name_that_is_not_utf8_comes_back_as_valid_json(dataset):
    name = os.fsdecode(b"mod\xe8le-\xff.pt")  # Latin-1 bytes: a lone surrogate per byte in Python
    out = dataset.root / name
    recipe = dataset.recipe(model=TINY_FASTTEXT, train={"epochs": 1})
    env = {k: v for k, v in os.environ.items() if k != "DLCLI_DEBUG"}
    done = subprocess.run([sys.executable, "-m", "dlcli", "train", str(recipe), "--out", os.fsencode(out), "-q"],
                          capture_output=True, env={**env, "PYTHONUTF8": "1"}, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    text = done.stdout.decode("utf-8")  # valid UTF-8, whatever the file name's bytes
    summary = json.loads(text)
    assert os.fsencode(summary["checkpoint"]) == os.fsencode(out)  # the exact bytes, carried through
    assert out.is_file() and checkpoint.sidecar(out, "metrics.jsonl").is_file()


# ---------------------------------------------------------------- 3. counts that train nothing


@pytest.mark.parametrize(("setting", "message"), [
    ("train.epochs=0", "train.epochs: must be >= 1, got 0"),
    ("train.epochs=-3", "train.epochs: must be >= 1, got -3"),
    ("train.batch_size=0", "train.batch_size: must be >= 1, got 0"),
    ("train.max_steps=0", "train.max_steps: must be >= 1, got 0"),
    ("train.optimizer.lr=-0.01", "train.optimizer.lr: must be >= 0, got -0.01"),
])
def test_a_run_that_would_train_nothing_fails_and_leaves_the_earlier_run_alone(cli, dataset, setting, message):
    out = dataset.root / "m.pt"
    recipe = dataset.recipe(train={"epochs": 1})
    assert_ok(train(cli, recipe, out))
    before = snapshot(dataset.root)
    for extra in ((), ("--overwrite",), ("--resume",)):
        assert_fails(train(cli, recipe, out, "--set", setting, *extra), 2, message)
    assert snapshot(dataset.root) == before  # metrics log, train state and model untouched
    assert_fails(cli("recipes", "validate", recipe, "--set", setting), 2, message)


def test_a_learning_rate_of_0_trains_with_a_warning(cli, dataset):
    result = cli("train", dataset.recipe(train={"max_steps": 1}), "--out", dataset.root / "m.pt",
                 "--set", "train.optimizer.lr=0")
    assert_ok(result)
    assert "warning: train.optimizer.lr is 0" in " ".join(result.err.split())


# ---------------------------------------------------------------- 4. an earlier run's model


def test_a_new_run_over_an_earlier_model_needs_overwrite(cli, dataset):
    out = dataset.root / "m.pt"
    assert_ok(train(cli, dataset.recipe(train={"epochs": 2}), out))
    other = dataset.recipe("other.yaml", model=TINY_FASTTEXT, train={"epochs": 1})
    before = snapshot(dataset.root)
    result = train(cli, other, out)
    assert_fails(result, 2, f"{out} already holds a classify model (fasttext", "--overwrite", "--resume")
    assert snapshot(dataset.root) == before


def test_overwrite_interrupted_keeps_the_earlier_model_and_resume_finishes_the_new_run(cli, dataset, monkeypatch):
    out, partial = dataset.root / "m.pt", dataset.root / "m.partial.pt"
    good = dataset.recipe(train={"epochs": 3})
    assert_ok(train(cli, good, out))
    kept = out.read_bytes()

    other = dataset.recipe("other.yaml", model=TINY_FASTTEXT, train={"epochs": 3, "optimizer": {"type": "sgd",
                                                                                                "lr": 0.01}})
    original = interrupt_at(monkeypatch, STEPS_PER_EPOCH + 2)  # after epoch 1 saved the new run's first checkpoint
    stopped = train(cli, other, out, "--overwrite")
    assert stopped.code == 130 and stopped.out == ""
    assert out.read_bytes() == kept  # the earlier, better model is where it was
    assert api.load_model(partial).data["metrics"]["step"] == STEPS_PER_EPOCH  # the new run's best so far

    monkeypatch.setattr(ClassifyTask, "loss", original)
    assert_ok(train(cli, other, out, "--resume"))
    assert not partial.exists()
    assert checkpoint.load(out)["model"]["type"] == "fasttext"  # the finished new run replaced it


def test_a_failed_overwrite_leaves_the_earlier_model(cli, dataset):
    out = dataset.root / "m.pt"
    assert_ok(train(cli, dataset.recipe(train={"epochs": 1}), out))
    kept = out.read_bytes()
    (dataset.root / "broken.tsv").write_text("animal\tthe cat\nno tab on this line\n", encoding="utf-8")
    broken = dataset.recipe("broken.yaml", data={"train": "./broken.tsv"})
    assert train(cli, broken, out, "--overwrite").code == 1
    assert out.read_bytes() == kept and not (dataset.root / ".m.pt.lock").exists()


def test_rerunning_a_recipe_into_its_default_output_asks_for_overwrite_or_resume(cli, dataset, monkeypatch):
    monkeypatch.chdir(dataset.root)
    recipe = dataset.recipe(train={"epochs": 1})
    assert_ok(cli("train", recipe, "--quiet"))
    default = Path("runs") / "tiny.pt"
    assert default.is_file()
    assert_fails(cli("train", recipe, "--quiet"), 2, f"{default} already holds", "pass --overwrite", "--resume")
    assert_ok(cli("train", recipe, "--quiet", "--overwrite"))


def test_only_an_empty_file_may_be_written_over_without_overwrite(cli, dataset):
    empty, notes = dataset.root / "empty.pt", dataset.root / "notes.pt"
    empty.touch()  # `mktemp` in a script
    notes.write_text("my notes\n", encoding="utf-8")
    assert_ok(train(cli, dataset.recipe(train={"epochs": 1}), empty))
    assert_fails(train(cli, dataset.recipe(train={"epochs": 1}), notes), 2, "not a dlcli model", "--overwrite")
    assert notes.read_text(encoding="utf-8") == "my notes\n"


def test_resume_and_overwrite_together_are_a_usage_error(cli, dataset):
    assert_fails(train(cli, dataset.recipe(), dataset.root / "m.pt", "--resume", "--overwrite"), 2, "choose one")


def test_overwrite_starts_a_new_log_and_forgets_the_earlier_train_state(cli, dataset):
    out = dataset.root / "m.pt"
    assert_ok(train(cli, dataset.recipe(train={"epochs": 2}), out))
    assert_ok(train(cli, dataset.recipe(train={"epochs": 1, "state_every": 0}), out, "--overwrite"))
    log = checkpoint.sidecar(out, "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == [1]
    assert not checkpoint.sidecar(out, "train-state.pt").exists()  # the earlier run's state would resume it


# ---------------------------------------------------------------- 5. one run at a time


def test_a_second_run_on_the_same_out_fails_at_once_naming_the_first(cli, dataset):
    out = dataset.root / "m.pt"
    lock = FileLock(dataset.root / ".m.pt.lock")
    recipe = dataset.recipe(train={"epochs": 1})
    lock.acquire()  # as a first run holds it
    try:
        before = snapshot(dataset.root)
        result = train(cli, recipe, out)
        assert_fails(result, 1, f"{out} is being written by another training run", f"PID {os.getpid()}", "hint:")
        assert snapshot(dataset.root) == before  # no log truncated, no state replaced
    finally:
        lock.release()
    assert_ok(train(cli, recipe, out))
    assert not (dataset.root / ".m.pt.lock").exists()


def test_two_real_runs_on_one_out(dataset):
    """The first holds --out for its whole length; the second fails at once naming the first."""
    out = dataset.root / "m.pt"
    recipe = dataset.recipe(model=TINY_FASTTEXT, train={"epochs": 100_000})
    env = {k: v for k, v in os.environ.items() if k != "DLCLI_DEBUG"}
    first = subprocess.Popen([sys.executable, "-m", "dlcli", "train", str(recipe), "--out", str(out), "-q"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        state = checkpoint.sidecar(out, "train-state.pt")
        for _ in range(900):
            if state.exists() or first.poll() is not None:
                break
            time.sleep(0.1)
        assert first.poll() is None, first.stderr.read().decode()
        second = subprocess.run([sys.executable, "-m", "dlcli", "train", str(recipe), "--out", str(out), "-q",
                                 "--overwrite"], capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 1 and second.stdout == ""
        assert f"PID {first.pid}" in second.stderr and "--out" in second.stderr
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=60) == 130
    finally:
        first.kill()
        first.wait()
    assert not (dataset.root / ".m.pt.lock").exists()


# ---------------------------------------------------------------- 6. temporary files of killed runs


def test_temporary_files_of_a_killed_run_are_removed_at_the_next_start(cli, dataset):
    stale = [".m.pt.ab12cd34.tmp", ".m.train-state.pt.x_y9zz12.tmp", ".m.partial.pt.00000000.tmp"]
    others = [".m.pt.other.ab12cd34.tmp", ".n.pt.ab12cd34.tmp", ".m.pt.tooooolong.tmp"]
    for name in stale + others:
        (dataset.root / name).write_bytes(b"half a checkpoint")
    assert_ok(train(cli, dataset.recipe(train={"epochs": 1}), dataset.root / "m.pt"))
    assert not any((dataset.root / name).exists() for name in stale)
    assert all((dataset.root / name).exists() for name in others)  # other targets' files are not ours


def test_kill_9_during_a_save_leaves_a_file_the_next_run_removes(cli, dataset):
    out = dataset.root / "m.pt"
    killed = ("from dlcli.files import atomic_write\nimport os, sys\n"
              "with atomic_write(sys.argv[1]) as fh:\n    fh.write(b'half')\n    os.kill(os.getpid(), 9)\n")
    subprocess.run([sys.executable, "-c", killed, str(checkpoint.sidecar(out, "train-state.pt"))], cwd=REPO)
    assert len(list(dataset.root.glob(".m.train-state.pt.*.tmp"))) == 1
    assert_ok(train(cli, dataset.recipe(train={"epochs": 1}), out))
    assert not list(dataset.root.glob(".*.tmp"))


# ---------------------------------------------------------------- torchrun: rank 0 claims --out


def test_under_torchrun_every_rank_fails_when_rank_0_refuses_the_out(dataset, tmp_path):
    """Rank 0 alone checks and locks --out; the other ranks learn its answer instead of waiting."""
    out = tmp_path / "ddp.pt"
    out.write_text("not a model\n", encoding="utf-8")
    recipe = dataset.recipe(model=TINY_FASTTEXT, train={"epochs": 1})
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "dlcli", "train", str(recipe), "--device", "cpu", "--out", str(out), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("a rank hung after rank 0 refused --out")
    assert process.returncode != 0 and stdout == ""
    assert stderr.count("a new run does not replace it without --overwrite") == 2  # both ranks say why
    assert out.read_text(encoding="utf-8") == "not a model\n"
