"""The files one training run writes for its `--out`, and claiming them before anything is written:
a regular file or nothing at each path, one run at a time (a lock), no leftovers of killed runs,
and an earlier run's model replaced only when asked (`--overwrite`) and only once the new run has
finished (until then it writes `<stem>.partial.pt`)."""

from __future__ import annotations

import dataclasses
import os
import stat
import time
from contextlib import contextmanager
from pathlib import Path

from dlcli import checkpoint
from dlcli.errors import CheckpointError, DlcliError, RecipeError, TrainingError
from dlcli.files import Busy, FileLock, stale_temp_files


@dataclasses.dataclass(frozen=True)
class Outputs:
    """The files a run writes for one `--out`: the model, its metrics log and resumable train
    state beside it, the best model so far while an earlier model is kept at `model` (`partial`),
    and the lock that keeps two runs from writing them at once; `picture`, the log drawn by
    `dlcli train --plot`."""

    model: Path
    log: Path
    state: Path
    partial: Path
    lock: Path
    picture: Path

    @classmethod
    def of(cls, out: Path) -> Outputs:
        out = Path(out)
        return cls(out, checkpoint.sidecar(out, "metrics.jsonl"), checkpoint.sidecar(out, "train-state.pt"),
                   checkpoint.sidecar(out, "partial.pt"), out.with_name(f".{out.name}.lock"),
                   checkpoint.sidecar(out, "metrics.png"))

    def files(self) -> tuple[Path, ...]:
        return self.model, self.log, self.state, self.partial


def start_new(outputs: Outputs) -> None:
    """A new run: what an earlier one left beside --out goes (claimed with --overwrite); its model
    stays. Its picture goes too: it drew the log that the new run starts afresh."""
    outputs.partial.unlink(missing_ok=True)
    outputs.state.unlink(missing_ok=True)
    if outputs.picture.is_file():
        outputs.picture.unlink()
    outputs.log.write_text("", encoding="utf-8")


def finish(outputs: Outputs, staged: bool) -> None:
    """The finished run's model at --out (moved there from `partial` when it was staged)."""
    if staged and outputs.partial.exists():
        os.replace(outputs.partial, outputs.model)
    if not outputs.model.is_file():
        raise TrainingError(f"the run ended without writing a checkpoint: {outputs.model}",
                            "train for at least one step (train.epochs, train.max_steps)")


def kept_note(outputs: Outputs) -> str:
    best = (f"; this run's best model so far is {outputs.partial}, which replaces it when the run finishes"
            if outputs.partial.exists() else "")
    return f"note: {outputs.model} still holds the earlier model{best}"


@contextmanager
def claimed(outputs: Outputs, resume: bool, overwrite: bool, placement):
    """Hold --out for the run (see `claim`); yields whether an earlier model is there. Under torchrun
    rank 0 claims and tells the other ranks, so that they fail with it rather than wait for it."""
    lock, replaces, error = None, False, None
    if placement.is_main:
        try:
            lock, replaces = claim(outputs, resume, overwrite)
        except Exception as exc:
            error = exc
    if placement.distributed:
        import torch.distributed as dist

        box = [None if error is None else (getattr(error, "exit_code", 1), getattr(error, "message", str(error)),
                                           getattr(error, "hint", None))]
        dist.broadcast_object_list(box, src=0)
        if not placement.is_main and box[0] is not None:
            code, message, hint = box[0]
            raise (RecipeError if code == RecipeError.exit_code else DlcliError)(message, hint)
    if error is not None:
        raise error
    try:
        yield replaces
    finally:
        if lock is not None:
            lock.release()


def claim(outputs: Outputs, resume: bool, overwrite: bool) -> tuple[FileLock, bool]:
    """Check and lock --out before anything is written: every path the run writes is a regular file
    or absent; no other run holds the lock; temporary files of killed runs go; an earlier run's
    files need --resume or --overwrite. Returns the held lock and whether an earlier model is at --out."""
    _refuse_non_files(outputs)
    outputs.model.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(outputs.lock)
    try:
        lock.acquire()
    except Busy as exc:
        pid, _, command = exc.owner.partition(" ")
        owner = f" (PID {pid}: {command})" if command else f" (PID {pid})" if pid else ""
        raise DlcliError(f"{outputs.model} is being written by another training run{owner}",
                         "wait for that run to finish, or train into another --out") from None
    try:
        for target in outputs.files():
            for stale in stale_temp_files(target):
                stale.unlink(missing_ok=True)
        if not resume:
            _refuse_earlier_run(outputs, overwrite)
    except BaseException:
        lock.release()
        raise
    return lock, _has_content(outputs.model)


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def refuse_directory(out: Path) -> Path:
    if out.is_dir() or out.name in ("", ".", ".."):
        raise RecipeError(f"--out {out}: is a directory, not a checkpoint file",
                          f"name the checkpoint file to write, e.g. --out {out / 'model.pt'}")
    return out


def _refuse_non_files(outputs: Outputs) -> None:
    parent = outputs.model.parent
    if parent.exists() and not parent.is_dir():
        raise RecipeError(f"--out {outputs.model}: {parent} is not a directory",
                          "name a checkpoint file inside a directory, e.g. --out runs/model.pt")
    for path in (*outputs.files(), outputs.lock):
        try:
            mode = os.stat(path).st_mode  # through a symbolic link: what would be written over
        except FileNotFoundError:
            continue
        if stat.S_ISREG(mode):
            continue
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        if path == outputs.model:
            raise RecipeError(f"--out {path}: is {kind}, not a checkpoint file",
                              "name the checkpoint file to write, e.g. --out runs/model.pt")
        raise RecipeError(f"--out {outputs.model}: {path}, where the run would write beside it, is {kind}",
                          "move it away, or train into another --out")


def _has_content(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _refuse_earlier_run(outputs: Outputs, overwrite: bool) -> None:
    """Without --overwrite, a new run never writes over what an earlier one left at --out."""
    earlier = [p for p in outputs.files() if _has_content(p)]
    if not earlier or overwrite:
        return
    if _has_content(outputs.model):
        what = f"{outputs.model} already holds {_describe(outputs.model)}"
    else:
        what = f"an earlier run left {', '.join(map(str, earlier))}"
    resume = ", --resume to continue that run" if _has_content(outputs.state) else ""
    raise RecipeError(f"{what}; a new run does not replace it without --overwrite",
                      f"pass --overwrite to replace it (the earlier model stays until the new run finishes){resume}, "
                      "or train into another --out")


def _describe(path: Path) -> str:
    written = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    try:
        content = checkpoint.read(path)
    except CheckpointError:
        return f"a file that is not a dlcli model (modified {written})"
    model = (content.get("model") or {}).get("type", "?")
    return f"a {content.get('task', '?')} model ({model}, written {written})"
