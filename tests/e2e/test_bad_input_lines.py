"""A bad line in a long prediction input: the error says what was written, or (--on-error skip)
the line gets an error record in its place and every other line is answered."""

from __future__ import annotations

import json

import pytest
from helpers import assert_fails

BAD_LINE = b"caf\xe9 au lait\n"  # latin-1, not UTF-8


def lines(n: int, bad_at: int | None = None) -> bytes:
    words = ["cat", "red", "seven", "dog", "blue"]
    out = [f"the {words[i % len(words)]} is here\n".encode() for i in range(n)]
    if bad_at is not None:
        out[bad_at - 1] = BAD_LINE
    return b"".join(out)


@pytest.fixture(params=["classify", "tag", "predict"])
def command(request, trained):
    return {"classify": ["classify", str(trained)], "tag": ["tag", "en-ner"],
            "predict": ["predict", str(trained)]}[request.param]


def test_stop_writes_the_records_before_the_bad_line_and_says_so(cli, command, tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(lines(30, bad_at=21))
    result = cli(*command, path)
    assert result.code == 1
    assert [r["id"] for r in result.records()] == list(range(1, 21))
    assert f"{path}:21: not valid utf-8 text" in result.err
    assert "output incomplete: 20 records written before this error" in result.err
    assert "--on-error skip" in result.err


def test_skip_answers_every_other_line_and_fails_at_the_end(cli, command, tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(lines(30, bad_at=21))
    result = cli(*command, path, "--on-error", "skip")
    assert result.code == 1
    records = result.records()
    assert [r["id"] for r in records] == list(range(1, 31))
    assert records[20] == {"id": 21, "error": f"{path}:21: not valid utf-8 text (byte 4 of the line)"}
    assert all("error" not in r for i, r in enumerate(records) if i != 20)
    assert "dlcli: warning: skipped:" in result.err
    assert "dlcli: error: 1 of 30 inputs could not be read" in result.err


def test_skip_matches_the_records_of_the_good_lines(cli, trained, tmp_path):
    """The lines around a skipped one get the records they get without it."""
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_bytes(lines(12))
    bad.write_bytes(lines(12, bad_at=5))
    clean = cli("classify", trained, good).records()
    skipped = cli("classify", trained, bad, "--on-error", "skip").records()
    assert [r for i, r in enumerate(skipped) if i != 4] == [r for i, r in enumerate(clean) if i != 4]


def test_skip_in_jsonl_input_covers_malformed_objects(cli, trained):
    stdin = b'{"id": "a", "text": "red cat"}\n{"id": "b", "text": 3}\nnot json\n{"id": "d", "text": "seven"}\n'
    result = cli("classify", trained, "--input-format", "jsonl", "--on-error", "skip", stdin=stdin)
    assert result.code == 1
    records = result.records()
    assert [r["id"] for r in records] == ["a", 2, 3, "d"]
    assert "field 'text' missing or not a string" in records[1]["error"]
    assert "invalid JSON" in records[2]["error"]
    assert "2 of 4 inputs could not be read" in result.err


def test_skip_keeps_text_output_aligned(cli, tmp_path):
    """--format text writes one line per input line: an empty one for a skipped line."""
    path = tmp_path / "in.txt"
    path.write_bytes(lines(4, bad_at=2))
    result = cli("tag", "en-ner", path, "--format", "text", "--on-error", "skip")
    assert result.code == 1
    assert result.lines[1] == "" and len(result.lines) == 4 and all(result.lines[i] for i in (0, 2, 3))


def test_warnings_are_capped_and_quiet_silences_them(cli, trained, tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(BAD_LINE * 25)
    loud = cli("classify", trained, path, "--on-error", "skip")
    assert loud.err.count("dlcli: warning: skipped:") == 10
    assert "25 of 25 inputs could not be read" in loud.err
    quiet = cli("classify", trained, path, "--on-error", "skip", "--quiet")
    assert "warning" not in quiet.err and "25 of 25 inputs could not be read" in quiet.err
    assert [json.loads(x)["id"] for x in quiet.lines] == list(range(1, 26))


def test_on_error_value_is_checked(cli, trained):
    assert_fails(cli("classify", trained, "--on-error", "ignore", stdin=b"x\n"), 2, "--on-error: 'ignore'")


@pytest.mark.parametrize("value", ["2", "nan", "-0.1"])
def test_threshold_outside_0_1_is_refused(cli, trained, value):
    assert_fails(cli("classify", trained, "--threshold", value, stdin=b"red cat\n"), 2, "--threshold:",
                 "between 0 and 1")


def test_directory_as_input_has_a_hint(cli, trained, tmp_path):
    assert_fails(cli("classify", trained, tmp_path), 1, "input is a directory", "hint:")


def test_damaged_and_foreign_checkpoints_have_hints(cli, trained, tmp_path):
    import zipfile

    foreign = tmp_path / "foreign.pt"
    with zipfile.ZipFile(foreign, "w") as z:
        z.writestr("something", "else")
    assert_fails(cli("classify", foreign, stdin=b"x\n"), 1, "not a readable checkpoint", "hint: copy it again")
    assert_fails(cli("classify", tmp_path, stdin=b"x\n"), 1, "is a directory, not a checkpoint", "hint:")


def test_dev_labels_never_seen_in_training_are_noted(cli, dataset):
    with dataset.dev.open("a", encoding="utf-8") as fh:
        fh.write("weather\tthe rain is here\nweather\tsunny and warm\n")
    result = cli("train", dataset.recipe(train={"epochs": 1}), "--out", dataset.root / "m.pt")
    assert result.code == 0, result.err
    assert "labels never seen in training: 'weather' (2)" in result.err
    assert "count as errors" in result.err


def test_unicode_line_separators_stay_inside_their_record(cli, trained):
    """U+0085, U+2028 and U+2029 are escaped, so a record is one line for str.splitlines() too."""
    stdin = '{"id": "a\u0085b\u2028c\u2029d", "text": "red cat"}\n'.encode()
    result = cli("classify", trained, "--input-format", "jsonl", stdin=stdin)
    assert result.code == 0 and len(result.out.splitlines()) == 1
    assert result.records()[0]["id"] == "a\u0085b\u2028c\u2029d"
