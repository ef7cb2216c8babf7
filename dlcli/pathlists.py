"""File paths as Linux has them, bytes: read from path lists and shown in messages, whatever the bytes.

A path that is not valid UTF-8 is decoded with "surrogateescape" (as Python decodes command-line
arguments): each undecodable byte becomes a lone surrogate U+DC80..U+DCFF, and `os.fsencode` (which
`open` applies) gives the original bytes back, so the file still opens. Such strings cannot be
encoded to UTF-8 as they are: JSON output writes them as \\udcXX escapes (see cli/_io.JsonlWriter),
messages show them with `display_path`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO

# Linux's PATH_MAX: the system refuses any longer path, so a longer line cannot name a file.
MAX_PATH_BYTES = 4096
_SKIP_CHUNK = 1 << 16
CUT = "..."  # ends a line cut at MAX_PATH_BYTES; the path stays too long to open


def path_lines(stream: IO[bytes], encoding: str = "utf-8") -> Iterator[str]:
    """The path on each non-blank line of a binary stream (the line ending removed), in order.

    Memory stays bounded whatever the input: a line longer than MAX_PATH_BYTES is cut there and
    marked with CUT, and the rest of it is read past in chunks, never held whole. Opening the cut
    path fails ("File name too long"), so it becomes an error record in its place.
    """
    limit = MAX_PATH_BYTES + 2  # room for "\r\n"
    while line := stream.readline(limit):
        complete = line.endswith(b"\n") or len(line) < limit  # else the line goes on
        if not complete:
            _skip_rest_of_line(stream)
        path = line.rstrip(b"\r\n") if complete else line
        if len(path) > MAX_PATH_BYTES:
            yield path[:MAX_PATH_BYTES].decode(encoding, "surrogateescape") + CUT
        elif path.strip():
            yield path.decode(encoding, "surrogateescape")


def _skip_rest_of_line(stream: IO[bytes]) -> None:
    while (chunk := stream.readline(_SKIP_CHUNK)) and not chunk.endswith(b"\n"):
        pass


def display_path(path: str | bytes | os.PathLike, limit: int = 240) -> str:
    """A path as people should read it: bytes that are not UTF-8 as \\xNN, control characters
    escaped the same way (a file name cannot garble a terminal or split a line), and a path
    longer than `limit` characters cut in the middle."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    if not text.isprintable():
        text = "".join(c if c.isprintable() or c == " " else _escaped(c) for c in text)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-(limit // 2):]}"


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
