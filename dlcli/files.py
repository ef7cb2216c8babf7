"""Writing files so that a crash or Ctrl-C mid-write never leaves a damaged one behind."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file that replaces `path` only once it is fully written and on disk (temporary file
    in the same folder, fsync, rename); on any error the previous file is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# mkstemp's names: `.<target>.` + 8 characters of tempfile's alphabet + `.tmp` (see atomic_write)
_TEMP_MIDDLE = "[a-z0-9_]{8}"


def stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """The temporary files `atomic_write(path)` leaves when a process is killed mid-write (kill -9,
    power loss). Only call this while holding the lock of the run that writes `path`: a live
    writer's file looks the same."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.{_TEMP_MIDDLE}\.tmp")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    return sorted(path.parent / name for name in names if pattern.fullmatch(name))


class Busy(Exception):
    """Another process holds the lock; `owner` is what it wrote into the lock file (may be empty)."""

    def __init__(self, owner: str):
        super().__init__(owner)
        self.owner = owner


class FileLock:
    """An exclusive advisory lock (flock) on `path`, a small file naming its owner: the PID and
    command line. Taken without waiting (`Busy` if another process holds it); the file is removed
    on release, and one left by a killed process is harmless: the kernel dropped its lock."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> FileLock:
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.read(fd, 4096).decode("utf-8", "replace").strip()
                os.close(fd)
                raise Busy(owner) from None
            except BaseException:
                os.close(fd)
                raise
            # the holder before us may have removed the file between our open and our flock:
            # then we hold a lock nobody else can see, and must lock the file now at the path
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        command = " ".join(sys.argv) if sys.argv and sys.argv[0] else "python"
        os.write(fd, f"{os.getpid()} {command}\n".encode("utf-8", "surrogateescape"))
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still locked: nobody can take the old file
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


_SURROGATE = re.compile("[\ud800-\udfff]")
# Legal unescaped inside JSON strings, but Python's str.splitlines() and JavaScript end a line at
# them: escaped, every record is one line for any reader.
_BREAK = re.compile("[\x85\u2028\u2029]")
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def safe_json(text: str) -> str:
    """JSON text (from json.dumps with ensure_ascii=False) made safe to write as UTF-8 lines:
    U+0085, U+2028 and U+2029 become \\u escapes, and so do lone surrogates, which is how Python
    carries the undecodable bytes of a Linux file name (surrogateescape): `json.loads` turns
    `\\udcXX` back into the same string, so `os.fsencode` gives back the name's bytes."""
    if text.isascii():
        return text
    if _BREAK.search(text):  # searched first: a translation copies the whole text
        text = text.translate(_LINE_BREAKS)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) if _SURROGATE.search(text) else text


def json_text(obj) -> str:
    """`obj` as one line of JSON that is valid UTF-8 (see safe_json)."""
    import json

    return safe_json(json.dumps(obj, ensure_ascii=False))
