"""Behaviour that needs a real process: a pipe closed early (`| head -1`) and Ctrl-C during training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from helpers import TINY_FASTTEXT

from dlcli import checkpoint

# More output than a pipe buffers, so the writer must notice that `head` went away.
BIG_INPUT_LINES = 20_000


def test_head_closing_the_pipe_prints_no_traceback(trained, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("".join(f"the red cat number {i}\n" for i in range(BIG_INPUT_LINES)), encoding="utf-8")
    err = tmp_path / "err.txt"
    shell = f'"{sys.executable}" -m dlcli classify "{trained}" "{big}" 2>"{err}" | head -1; exit ${{PIPESTATUS[0]}}'
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120, env=plain_env())
    assert done.returncode == 141  # ended by SIGPIPE, as any Unix filter is
    (line,) = done.stdout.splitlines()
    assert json.loads(line)["id"] == 1
    stderr = err.read_text()
    assert "Traceback" not in stderr and "error" not in stderr.lower(), stderr


def test_a_slow_pipe_gets_each_answer_before_the_next_line_comes(trained):
    """Lines that trickle in (`tail -f | dlcli classify`) are answered as they arrive, not per 4096."""
    process = subprocess.Popen([sys.executable, "-m", "dlcli", "classify", str(trained)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=plain_env())
    try:
        for expected_id in (1, 2):
            process.stdin.write(b"the red cat\n")
            process.stdin.flush()
            answer = json.loads(process.stdout.readline())  # would block forever if output waited for more
            assert answer["id"] == expected_id
        process.stdin.close()
        assert process.stdout.read() == b""
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()


def plain_env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "DLCLI_DEBUG"}


def wait_for(path, process, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, "training ended before it could be interrupted"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_ctrl_c_saves_a_resumable_state_and_exits_130(dataset, tmp_path):
    recipe = dataset.recipe(model=TINY_FASTTEXT, train={"epochs": 100_000})
    out = tmp_path / "m.pt"
    state = checkpoint.sidecar(out, "train-state.pt")
    with open(tmp_path / "err.txt", "w+") as err:
        process = subprocess.Popen([sys.executable, "-m", "dlcli", "train", str(recipe), "--out", str(out)],
                                   stdout=subprocess.PIPE, stderr=err, text=True, env=plain_env())
        try:
            wait_for(state, process)
            process.send_signal(signal.SIGINT)
            stdout, _ = process.communicate(timeout=60)
        finally:
            process.kill()
        err.seek(0)
        stderr = err.read()
    assert process.returncode == 130, stderr
    assert stdout == ""
    assert "interrupted" in stderr and "Traceback" not in stderr
    progress = checkpoint.load(state, checkpoint.STATE_FORMAT)["trainer"]["progress"]
    assert progress["global_step"] > 0 and not progress["done"]
    assert checkpoint.load(out)["task"] == "classify"
