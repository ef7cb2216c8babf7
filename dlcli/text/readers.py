"""Readers for labelled text (TSV/CSV, JSON Lines, fastText) and for raw prediction input.

Every reader decodes line by line so that an error names the file and line, and streams so
that memory stays flat however long the input is.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import select
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dlcli.errors import DataError

FASTTEXT_PREFIX = "__label__"
ENCODING_HINT = "convert the file to UTF-8, or name its encoding with --encoding (data.encoding)"


@dataclass(frozen=True, slots=True)
class BadInput:
    """An input line that could not be read, kept in its place when errors are skipped
    (`--on-error skip`): its record becomes {"id", "error": message}."""

    message: str


@dataclass(slots=True)
class Record:
    text: str
    labels: list[str]
    line: int
    id: Any = None


def open_binary(path: str | Path) -> IO[bytes]:
    path = Path(path)
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rb")
        return open(path, "rb")
    except OSError as exc:
        raise DataError(f"cannot open {path.resolve()}: {exc.strerror or exc}") from None


def file_lines(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(line number, text) of every line of a file (gz allowed), decoded line by line."""
    with open_binary(path) as fh:
        for item in decoded_lines(fh, str(path), encoding):
            if item is not None:
                yield item


def stream_lines(stream: IO[bytes]) -> Iterator[bytes | None]:
    """The lines of a binary stream. From a pipe or terminal it also yields None whenever the
    next line has not arrived yet, so that a consumer can flush what it holds (`tail -f | dlcli
    classify` answers each line as it comes) instead of waiting for a full batch.
    """
    fd = _pipe_fd(stream)
    if fd is None:
        yield from stream
        return
    buffer = bytearray()
    while True:
        if not select.select([fd], [], [], 0)[0]:
            yield None
        chunk = os.read(fd, 1 << 16)  # blocks until input comes or ends
        if not chunk:
            break
        buffer += chunk
        end = buffer.rfind(b"\n", len(buffer) - len(chunk)) + 1  # only the new bytes: a long line costs linear time
        if end:
            lines = bytes(buffer[:end]).split(b"\n")[:-1]
            del buffer[:end]
            yield from (line + b"\n" for line in lines)
    if buffer:
        yield bytes(buffer)


def _pipe_fd(stream: IO[bytes]) -> int | None:
    """The descriptor to read directly when `stream` is a pipe, terminal or socket that nothing
    has read from yet (bytes buffered by the stream object would be skipped)."""
    if isinstance(stream, gzip.GzipFile):
        return None
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return fd if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode) else None


def decoded_lines(
    lines: Iterable[bytes | None], source: str, encoding: str = "utf-8", skip_errors: bool = False
) -> Iterator[tuple[int, str | BadInput] | None]:
    """Yield (line number, text without the line ending), decoding each line on its own.

    A None in `lines` (input not ready yet, see stream_lines) is passed through as None. A line
    that does not decode raises a DataError naming it, or with `skip_errors` comes as a BadInput.
    """
    try:
        codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
        "".encode(codec)
    except LookupError:
        raise DataError(f"unknown text encoding {encoding!r}", "e.g. utf-8, gb18030, latin-1") from None
    number = 0
    try:
        for raw in lines:
            if raw is None:
                yield None
                continue
            number += 1
            try:
                text = raw.decode(codec if number == 1 else encoding)
            except UnicodeDecodeError as exc:
                message = f"{source}:{number}: not valid {encoding} text (byte {exc.start + 1} of the line)"
                if skip_errors:
                    yield number, BadInput(message)
                    continue
                raise DataError(message, ENCODING_HINT) from None
            yield number, text.rstrip("\r\n")
    except (OSError, EOFError) as exc:  # e.g. a truncated gzip file
        raise DataError(f"{source}: read failed: {exc}") from None


def read_labelled(path: str | Path, cfg) -> list[Record]:
    """Read a labelled file as `cfg` (the classify data section, or an object with its fields) says."""
    source = str(path)
    with open_binary(path) as fh:
        lines = decoded_lines(fh, source, cfg.encoding)
        parse = _PARSERS.get(cfg.format)
        if parse is None:
            raise DataError(f"unknown data format {cfg.format!r}", "use tsv, csv, jsonl or fasttext")
        records = list(parse(lines, source, cfg))
    if not records:
        raise DataError(f"{source}: no examples found", "is it empty, or is the format wrong?")
    return records


def _tsv(lines: Iterable[tuple[int, str]], source: str, cfg) -> Iterator[Record]:
    yield from _columns(((n, line.split("\t")) for n, line in lines), source, cfg, "tab-separated")


def _csv(lines: Iterable[tuple[int, str]], source: str, cfg) -> Iterator[Record]:
    numbers: list[int] = []

    def texts():
        for n, line in lines:
            numbers.append(n)
            yield line

    rows = csv.reader(texts())
    try:
        yield from _columns(((numbers[-1], row) for row in rows), source, cfg, "comma-separated")
    except csv.Error as exc:
        raise DataError(f"{source}:{numbers[-1] if numbers else 1}: malformed CSV: {exc}") from None


def _columns(rows, source: str, cfg, kind: str) -> Iterator[Record]:
    need = max(cfg.label_column, cfg.text_column) + 1
    for index, (number, fields) in enumerate(rows):
        if index == 0 and cfg.header:
            continue
        if not any(f.strip() for f in fields):
            continue
        if len(fields) < need:
            raise DataError(
                f"{source}:{number}: expected at least {need} {kind} columns, found {len(fields)}",
                "check data.label_column / data.text_column, or the file's delimiter",
            )
        label = fields[cfg.label_column].strip()
        if not label:
            raise DataError(f"{source}:{number}: empty label in column {cfg.label_column}")
        yield Record(fields[cfg.text_column], [label], number)


def _jsonl(lines: Iterable[tuple[int, str]], source: str, cfg) -> Iterator[Record]:
    for number, line in lines:
        if not line.strip():
            continue
        obj = parse_json_object(line, source, number)
        text = obj.get(cfg.text_field)
        if not isinstance(text, str):
            raise DataError(f"{source}:{number}: field {cfg.text_field!r} missing or not a string")
        labels = obj.get(cfg.label_field)
        if isinstance(labels, str):
            labels = [labels]
        if not labels or not all(isinstance(x, str) and x for x in labels):
            raise DataError(
                f"{source}:{number}: field {cfg.label_field!r} must be a label or a list of labels"
            )
        yield Record(text, list(labels), number, obj.get("id"))


def _fasttext(lines: Iterable[tuple[int, str]], source: str, cfg) -> Iterator[Record]:
    for number, line in lines:
        if not line.strip():
            continue
        labels, text = split_fasttext(line)
        if not labels:
            raise DataError(
                f"{source}:{number}: no {FASTTEXT_PREFIX} label on the line",
                f"fastText lines look like `{FASTTEXT_PREFIX}sports some text`",
            )
        yield Record(text, labels, number)


def split_fasttext(line: str) -> tuple[list[str], str]:
    """Labels are the tokens with the prefix, wherever they stand (fastText's rule); the text is
    the rest. Labels usually lead: then the text is the line after them, as written."""
    labels, rest = [], line.strip()
    while rest.startswith(FASTTEXT_PREFIX):
        label, *tail = rest.split(None, 1)
        labels.append(label[len(FASTTEXT_PREFIX):])
        rest = tail[0] if tail else ""
    if FASTTEXT_PREFIX in rest:  # labels further on: the slow, general path
        tokens = rest.split()
        labels += [t[len(FASTTEXT_PREFIX):] for t in tokens if t.startswith(FASTTEXT_PREFIX)]
        rest = " ".join(t for t in tokens if not t.startswith(FASTTEXT_PREFIX))
    return labels, rest


def parse_json_object(line: str, source: str, number: int) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{source}:{number}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{source}:{number}: expected a JSON object per line")
    return obj


_PARSERS = {"tsv": _tsv, "csv": _csv, "jsonl": _jsonl, "fasttext": _fasttext}


def iter_inputs(
    stream: IO[bytes], source: str, input_format: str = "text", encoding: str = "utf-8",
    text_field: str = "text", skip_errors: bool = False,
) -> Iterator[tuple[Any, str | BadInput] | None]:
    """Prediction input: yield (id, text); text lines get their line number as id. None means
    that more input is not there yet (see stream_lines). A line that cannot be read raises a
    DataError naming it, or with `skip_errors` comes as (line number, BadInput)."""
    for item in decoded_lines(stream_lines(stream), source, encoding, skip_errors):
        if item is None:
            yield None
            continue
        number, line = item
        if input_format == "text" or isinstance(line, BadInput):
            yield number, line
            continue
        if not line.strip():
            continue
        try:
            obj = parse_json_object(line, source, number)
            text = obj.get(text_field)
            if not isinstance(text, str):
                raise DataError(f"{source}:{number}: field {text_field!r} missing or not a string")
        except DataError as exc:
            if not skip_errors:
                raise
            yield number, BadInput(exc.message)
            continue
        yield obj.get("id", number), text


def chunked_inputs(stream: IO[bytes], source: str, input_format: str, encoding: str,
                   chunk: int, skip_errors: bool = False) -> Iterator[tuple[list, list[str | BadInput]]]:
    """(ids, texts) from `iter_inputs` in chunks of `chunk` lines, or fewer whenever the input pauses."""
    ids, texts = [], []
    try:
        for item in iter_inputs(stream, source, input_format, encoding, skip_errors=skip_errors):
            if item is not None:
                ids.append(item[0])
                texts.append(item[1])
            if texts and (item is None or len(texts) >= chunk):
                yield ids, texts
                ids, texts = [], []
    except DataError:
        if texts:  # the lines before the bad one are answered before the error stops the run
            yield ids, texts
        raise
    if texts:
        yield ids, texts
