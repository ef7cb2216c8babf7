"""Path lists read as bytes (any file name, any junk) and paths shown in messages."""

from __future__ import annotations

import io
import json
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from dlcli.cli._io import JsonlWriter
from dlcli.pathlists import CUT, MAX_PATH_BYTES, display_path, path_lines


def lines_of(data: bytes) -> list[str]:
    return list(path_lines(io.BytesIO(data)))


def test_lines_are_paths_whatever_their_bytes():
    data = b"a.png\r\n\n  \nb\xff\xfe.jpg\nc\x00d\n\xe4\xbd\xa0.png"
    assert [os.fsencode(p) for p in lines_of(data)] == [b"a.png", b"b\xff\xfe.jpg", b"c\x00d", "你".encode() + b".png"]


def test_a_line_too_long_for_a_path_is_cut_and_the_next_line_still_read():
    long = b"y" * (5 * MAX_PATH_BYTES + 3)
    paths = lines_of(b"a\n" + long + b"\r\nb\n" + b"z" * (MAX_PATH_BYTES + 1) + b"\r\n" + b"w" * MAX_PATH_BYTES
                     + b"\r\n" + long)
    assert paths[0] == "a" and paths[2] == "b"
    assert paths[1] == "y" * MAX_PATH_BYTES + CUT and paths[5] == paths[1]
    assert paths[3] == "z" * MAX_PATH_BYTES + CUT  # one byte too long, and its "\r\n" past the read limit
    assert paths[4] == "w" * MAX_PATH_BYTES  # the longest line taken as it is (no system opens it either)
    assert len(paths) == 6


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=MAX_PATH_BYTES + 50).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")),
                max_size=8), st.sampled_from([b"\n", b"\r\n"]))
def test_any_bytes_give_one_path_per_non_blank_line(lines, ending):
    paths = lines_of(ending.join(lines))
    kept = [line for line in lines if line.strip() or len(line) > MAX_PATH_BYTES]
    assert len(paths) == len(kept)
    for path, line in zip(paths, kept):
        if len(line) > MAX_PATH_BYTES:
            assert path.endswith(CUT) and os.fsencode(path[:-len(CUT)]) == line[:MAX_PATH_BYTES]
        else:
            assert os.fsencode(path) == line


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.text(max_size=50))
def test_records_with_any_path_are_valid_utf8_json(raw, text):
    """JsonlWriter writes a surrogate-escaped path as \\udcXX escapes; json.loads gives it back."""
    records = [{"image": os.fsdecode(raw)}, {"image": text}, {"image": "café"}]
    out = io.BytesIO()
    JsonlWriter(out).write(records)
    lines = out.getvalue().decode("utf-8").split("\n")[:-1]  # strict: valid UTF-8
    assert [json.loads(line) for line in lines] == records
    assert lines[2] == '{"image": "café"}'  # records without surrogates keep their characters


def test_display_path_escapes_what_a_terminal_should_not_see():
    path = os.fsdecode(b"/photos/caf\xe9\n\x1b[2J\xe2\x80\xae.png")
    assert display_path(path) == "/photos/caf\\xe9\\x0a\\x1b[2J\\u202e.png"
    assert display_path("ok/é ü.png") == "ok/é ü.png"
    shown = display_path("d/" * 1000)
    assert len(shown) <= 243 and "..." in shown
