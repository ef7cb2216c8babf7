"""dlcli/files.py: atomic writes, the lock a training run holds on its --out, the temporary files
a killed writer leaves, and JSON for file names that are not UTF-8."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import REPO

from dlcli.files import Busy, FileLock, atomic_write, json_text, stale_temp_files


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(path) as fh:
        fh.write(b"half")
        raise RuntimeError("crash")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["m.pt"]


def test_a_killed_writer_leaves_a_temporary_file_that_stale_temp_files_names(tmp_path):
    path = tmp_path / "m.pt"
    killed = ("from dlcli.files import atomic_write\nimport os, sys\n"
              "with atomic_write(sys.argv[1]) as fh:\n    os.kill(os.getpid(), 9)\n")
    subprocess.run([sys.executable, "-c", killed, str(path)], cwd=REPO)
    (tmp_path / ".m.pt.x.abcdefgh.tmp").touch()  # atomic_write("m.pt.x")'s, not ours
    (stale,) = stale_temp_files(path)
    assert stale.name.startswith(".m.pt.") and stale.name.endswith(".tmp")
    assert stale_temp_files(tmp_path / "missing" / "m.pt") == []


def test_stale_temp_files_escapes_the_name(tmp_path):
    (tmp_path / ".a.b.abcdefgh.tmp").touch()
    assert stale_temp_files(tmp_path / "a?b") == [] and stale_temp_files(tmp_path / "a.b") != []


def test_a_second_lock_fails_at_once_naming_the_first(tmp_path):
    path = tmp_path / ".m.pt.lock"
    with FileLock(path):
        assert path.read_text().startswith(f"{os.getpid()} ")
        with pytest.raises(Busy) as info:
            FileLock(path).acquire()
        assert info.value.owner.split()[0] == str(os.getpid())
    assert not path.exists()  # no litter
    with FileLock(path):  # free again
        pass


def test_a_lock_file_left_by_a_killed_process_is_harmless(tmp_path):
    path = tmp_path / ".m.pt.lock"
    path.write_text("99999999 dlcli train killed.yaml\n")
    with FileLock(path):
        assert path.read_text().startswith(f"{os.getpid()} ")


def test_a_lock_file_removed_while_waiting_is_not_trusted(tmp_path, monkeypatch):
    """A run that opened the file just before its holder removed it must lock the file at the path."""
    import fcntl

    path = tmp_path / ".m.pt.lock"
    path.write_text("")
    calls = []
    real_flock = fcntl.flock

    def flock(fd, op):
        if not calls:  # the holder releases and removes the file between our open and our flock
            path.unlink()
        calls.append(fd)
        return real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    lock = FileLock(path).acquire()
    try:
        assert len(calls) == 2 and path.exists()
        monkeypatch.setattr(fcntl, "flock", real_flock)
        with pytest.raises(Busy):
            FileLock(path).acquire()
    finally:
        lock.release()


def test_json_text_is_valid_utf8_and_gives_the_bytes_back():
    name = os.fsdecode(b"runs/caf\xe9.pt")
    text = json_text({"checkpoint": name, "label": "café"})
    text.encode("utf-8")  # no lone surrogates left
    assert "café" in text  # other text stays readable
    assert os.fsencode(json.loads(text)["checkpoint"]) == b"runs/caf\xe9.pt"
