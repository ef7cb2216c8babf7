"""Streams for the CLI: inputs ('-' is stdin), JSON Lines on stdout, people's messages on stderr."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path

from dlcli.errors import DataError


@contextmanager
def open_input(name: str):
    """Yield (binary stream, name for messages); '-' is standard input."""
    if name == "-":
        yield sys.stdin.buffer, "<stdin>"
        return
    from dlcli.text.readers import open_binary

    path = Path(name)
    if not path.is_file():
        raise DataError(f"input not found: {path.resolve()}")
    with open_binary(path) as fh:
        yield fh, str(path)


class JsonlWriter:
    """One JSON object per line on stdout, flushed per batch so pipelines see results early."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout.buffer
        self._encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder, not one per record

    def write(self, records) -> None:
        encode = self._encode
        data = "".join(encode(r) + "\n" for r in records)
        self.stream.write(data.encode("utf-8"))
        self.stream.flush()


def write_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=None) + "\n")
    sys.stdout.flush()


def console(quiet: bool = False):
    from rich.console import Console

    return Console(stderr=True, quiet=quiet, highlight=False)
