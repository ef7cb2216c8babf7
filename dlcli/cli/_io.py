"""Streams for the CLI: inputs ('-' is stdin), JSON Lines on stdout, people's messages on stderr,
and the one loop every prediction command runs (errors per line, progress, threads)."""

from __future__ import annotations

import gzip
import json
import os
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import typer

from dlcli.errors import DataError, RecipeError
from dlcli.files import json_text, safe_json

MAX_WARNINGS = 10  # skipped lines named on stderr; the rest are counted in the final error


@contextmanager
def open_input(name: str):
    """Yield (binary stream, name for messages); '-' is standard input."""
    if name == "-":
        yield sys.stdin.buffer, "<stdin>"
        return
    from dlcli.text.readers import open_binary

    path = Path(name)
    if path.is_dir():
        raise DataError(f"input is a directory: {path.resolve()}",
                        "give a text file (one input per line), or '-' to read standard input")
    if not path.is_file():
        raise DataError(f"input not found: {path.resolve()}", "check the path, or use '-' to read standard input")
    with open_binary(path) as fh:
        yield fh, str(path)


class JsonlWriter:
    """One JSON object per line on stdout (or `render`ed text), flushed per batch so pipelines see
    results early; counts what it wrote and how many records carry an "error"."""

    def __init__(self, stream=None, render: Callable[[dict], str] | None = None):
        self.stream = stream or sys.stdout.buffer
        self.render = render
        self.written = 0
        self.failed = 0
        self._encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder, not one per record

    def write(self, records) -> None:
        failed = sum(1 for r in records if "error" in r)
        if self.render is None:
            encode = self._encode
            if len(records) == 1 and _is_huge(records[0]):  # a very long line's record, written in pieces
                for piece in _json_pieces(records[0], encode):
                    self.stream.write(safe_json(piece).encode("utf-8"))
            else:
                self.stream.write(safe_json("".join(encode(r) + "\n" for r in records)).encode("utf-8"))
        else:  # a text format keeps one output line (or block) per input: an empty one for an error
            render = self.render
            text = "".join("\n" if "error" in r else render(r) for r in records)
            self.stream.write(text.encode("utf-8", "backslashreplace"))
        self.stream.flush()
        self.written += len(records)
        self.failed += failed


PIECE = 8192  # list items encoded at a time in a huge record


def _is_huge(record: dict) -> bool:
    return any(isinstance(v, list) and len(v) > PIECE for v in record.values())


def _json_pieces(record: dict, encode):
    """The record's JSON line, the same text `encode(record) + "\\n"` gives, in pieces: long lists
    are encoded PIECE items at a time, so a record of millions of tokens never exists as one string
    (which, with an emoji in it, takes 4 bytes a character)."""
    yield "{"
    for i, (key, value) in enumerate(record.items()):
        yield f"{', ' if i else ''}{encode(key)}: "
        if isinstance(value, list) and len(value) > PIECE:
            yield "["
            for start in range(0, len(value), PIECE):
                yield (", " if start else "") + encode(value[start: start + PIECE])[1:-1]
            yield "]"
        else:
            yield encode(value)
    yield "}\n"


def write_json(obj) -> None:
    sys.stdout.buffer.write((json_text(obj) + "\n").encode("utf-8"))
    sys.stdout.flush()


def console(quiet: bool = False):
    from rich.console import Console

    return Console(stderr=True, quiet=quiet, highlight=False)


# ---------------------------------------------------------------- options every prediction command takes


def on_error_option():
    return typer.Option("stop", "--on-error", help="stop: an input line that cannot be read ends the run "
                        "(exit 1; the error says how many records were written before it). skip: that line "
                        "gets the record {\"id\", \"error\"} in its place and the run goes on (exit 1 at the end).")


def threads_option():
    return typer.Option(None, "--threads", min=1, help="CPU threads for the forward pass [default: "
                        "$OMP_NUM_THREADS if set, else 1, the fastest on a busy machine; see docs/benchmarks.md].")


def quiet_option():
    return typer.Option(False, "--quiet", "-q", help="No progress bar or warnings on stderr.")


def check_on_error(value: str) -> bool:
    """Whether bad input lines are skipped (`--on-error skip`)."""
    if value not in ("stop", "skip"):
        raise RecipeError(f"--on-error: {value!r} is not stop or skip")
    return value == "skip"


# ---------------------------------------------------------------- the prediction loop


def stream_predictions(predictor, input: str, options: dict, *, input_format: str = "text",
                       encoding: str = "utf-8", on_error: str = "stop", threads: int | None = None,
                       quiet: bool = False, render: Callable[[dict], str] | None = None,
                       transform: Callable[[list[dict]], None] | None = None, run: Callable | None = None) -> None:
    """Predict every input of `input` ('-' = stdin) and write the records to stdout, in order.

    A line that cannot be read stops the run with an error saying the output is incomplete and how
    much was written, or (`on_error` skip) becomes an error record; the run then fails at the end.
    """
    from dlcli import api

    skip = check_on_error(on_error)
    if input_format not in ("text", "jsonl"):
        raise RecipeError(f"--input-format: {input_format!r} is not text or jsonl")
    with open_input(input) as (stream, source), _progress(stream, source, quiet) as advance:
        chunks = api.input_chunks(predictor, stream, source, input_format, encoding, skip)
        write_predictions(predictor, chunks, options, threads=threads, quiet=quiet, render=render,
                          transform=transform, advance=advance, run=run)


def write_predictions(predictor, chunks, options: dict, *, threads: int | None = None, quiet: bool = False,
                      render: Callable[[dict], str] | None = None,
                      transform: Callable[[list[dict]], None] | None = None,
                      advance: Callable[[int], None] | None = None, inputs: str = "inputs",
                      run: Callable | None = None) -> None:
    """Write the records of chunks of (ids, inputs) to stdout as they come (made by `run`:
    api.predict, or api.generate, called as run(predictor, chunks, **options)). Records with an
    "error" are warned about (the first MAX_WARNINGS) and make the run fail at the end; a DataError
    from the input says how many records were written before it."""
    from dlcli import api
    from dlcli.threads import set_inference_threads

    set_inference_threads(threads)
    writer = JsonlWriter(render=render)
    warn = console(quiet)
    try:
        for records in (run or api.predict)(predictor, chunks, **options):
            if transform is not None:
                transform(records)
            shown = writer.failed
            writer.write(records)
            if writer.failed > shown:
                _warn_failures(warn, records, shown)
            if advance is not None:
                advance(len(records))
    except DataError as exc:
        if not writer.written:
            raise
        n = writer.written
        skip_hint = "pass --on-error skip to write an error record for each bad line and go on"
        raise DataError(f"{exc.message} (output incomplete: {n:,} record{'s' if n != 1 else ''} written "
                        "before this error)",
                        f"{exc.hint}; or {skip_hint}" if exc.hint else skip_hint) from None
    if writer.failed:
        raise DataError(f"{writer.failed:,} of {writer.written:,} {inputs} could not be read",
                        "their records carry an \"error\" field; the other records are complete")


def _warn_failures(out, records: list[dict], shown: int) -> None:
    for record in records:
        if "error" not in record:
            continue
        shown += 1
        if shown <= MAX_WARNINGS:
            out.print(f"dlcli: warning: skipped: {record['error']}", markup=False, soft_wrap=True)
        if shown == MAX_WARNINGS:
            out.print("dlcli: warning: further skipped inputs are counted at the end, not shown", markup=False,
                      soft_wrap=True)


@contextmanager
def _progress(stream, source: str, quiet: bool):
    """A progress bar on stderr (bytes read, records, rate, time left) while a regular file is read
    and stderr is a terminal; never for standard input, a pipe, or with --quiet. Yields
    advance(records)."""
    raw = stream.fileobj if isinstance(stream, gzip.GzipFile) else stream
    if quiet or source == "<stdin>" or not sys.stderr.isatty() or not _is_regular(raw):
        yield lambda n: None
        return
    from rich import progress as rp

    columns = (rp.TextColumn("{task.description}"), rp.BarColumn(), rp.DownloadColumn(), rp.TransferSpeedColumn(),
               rp.TextColumn("{task.fields[records]:,} records"), rp.TimeRemainingColumn())
    with rp.Progress(*columns, console=console(), transient=True) as bar:
        task = bar.add_task(Path(source).name, total=os.fstat(raw.fileno()).st_size, records=0)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            bar.update(task, completed=raw.tell(), records=done)

        yield advance


@contextmanager
def count_progress(total: int | None, what: str, quiet: bool):
    """A progress bar over `total` inputs given as arguments (detect-faces' images), on a terminal
    and without --quiet; yields advance(records)."""
    if quiet or not total or not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich import progress as rp

    columns = (rp.TextColumn(what), rp.BarColumn(), rp.MofNCompleteColumn(), rp.TimeRemainingColumn())
    with rp.Progress(*columns, console=console(), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


def _is_regular(raw) -> bool:
    import stat

    try:
        return stat.S_ISREG(os.fstat(raw.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return False
