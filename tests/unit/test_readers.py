"""Readers: tsv/csv/jsonl/fasttext records, and errors that name the file and line."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from dlcli.errors import DataError
from dlcli.tasks.classify import ClassifyData
from dlcli.text.readers import iter_inputs, read_labelled


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def read(path: Path, **cfg):
    return read_labelled(path, ClassifyData(**cfg))


def as_pairs(records) -> list[tuple[list[str], str, int]]:
    return [(r.labels, r.text, r.line) for r in records]


def data_error(path: Path, **cfg) -> str:
    with pytest.raises(DataError) as info:
        read(path, **cfg)
    return info.value.message


# ---------------------------------------------------------------- tsv / csv


def test_tsv_default_columns_skip_blank_lines(tmp_path):
    path = write(tmp_path, "a.tsv", "pos\tgood film\n\nneg\tbad film\r\n")
    assert as_pairs(read(path)) == [(["pos"], "good film", 1), (["neg"], "bad film", 3)]


def test_tsv_custom_columns_and_header(tmp_path):
    path = write(tmp_path, "a.tsv", "id\ttext\tlabel\n1\tgood film\tpos\n2\tbad\tneg\n")
    records = read(path, header=True, text_column=1, label_column=2)
    assert as_pairs(records) == [(["pos"], "good film", 2), (["neg"], "bad", 3)]


def test_utf8_bom_is_not_part_of_the_first_label(tmp_path):
    path = write(tmp_path, "a.tsv", "\ufeffpos\tgood\nneg\tbad\n")
    assert read(path)[0].labels == ["pos"]


def test_gzip_input(tmp_path):
    path = tmp_path / "a.tsv.gz"
    path.write_bytes(gzip.compress(b"pos\tgood\nneg\tbad\n"))
    assert [r.text for r in read(path)] == ["good", "bad"]


def test_csv_quoted_fields_and_header(tmp_path):
    path = write(tmp_path, "a.csv", 'text,label\n"good, really good",pos\n"bad ""film""",neg\n')
    records = read(path, format="csv", header=True, text_column=0, label_column=1)
    assert as_pairs(records) == [(["pos"], "good, really good", 2), (["neg"], 'bad "film"', 3)]


@pytest.mark.parametrize(("fmt", "content", "line"), [
    ("tsv", "pos\tgood\nno tab on this line\n", 2),
    ("csv", "pos,good\nneg,bad\nlonely\n", 3),
])
def test_too_few_columns_names_file_and_line(tmp_path, fmt, content, line):
    path = write(tmp_path, f"a.{fmt}", content)
    message = data_error(path, format=fmt)
    assert f"{path}:{line}: expected at least 2" in message


def test_empty_label_names_line(tmp_path):
    path = write(tmp_path, "a.tsv", "pos\tgood\n \tbad\n")
    assert f"{path}:2: empty label" in data_error(path)


def test_empty_file_is_an_error(tmp_path):
    assert "no examples found" in data_error(write(tmp_path, "a.tsv", "\n\n"))


# ---------------------------------------------------------------- jsonl


def test_jsonl_single_and_list_labels_and_ids(tmp_path):
    path = write(tmp_path, "a.jsonl", '{"text": "x", "label": "a", "id": 9}\n\n{"text": "y", "label": ["a", "b"]}\n')
    records = read(path, format="jsonl")
    assert as_pairs(records) == [(["a"], "x", 1), (["a", "b"], "y", 3)]
    assert [r.id for r in records] == [9, None]


def test_jsonl_custom_fields(tmp_path):
    path = write(tmp_path, "a.jsonl", '{"sentence": "x", "y": "a"}\n')
    assert read(path, format="jsonl", text_field="sentence", label_field="y")[0].labels == ["a"]


@pytest.mark.parametrize(("line", "fragment"), [
    ('{"text": "y", "label": "b"', "invalid JSON"),
    ('["not", "an", "object"]', "expected a JSON object"),
    ('{"label": "b"}', "field 'text' missing"),
    ('{"text": "y", "label": []}', "field 'label' must be"),
])
def test_jsonl_malformed_line_names_file_and_line(tmp_path, line, fragment):
    path = write(tmp_path, "a.jsonl", '{"text": "x", "label": "a"}\n' + line + "\n")
    message = data_error(path, format="jsonl")
    assert message.startswith(f"{path}:2:") and fragment in message


# ---------------------------------------------------------------- fasttext


def test_fasttext_several_labels_per_line(tmp_path):
    path = write(tmp_path, "a.txt", "__label__a __label__b some text\n__label__c other\n")
    assert as_pairs(read(path, format="fasttext")) == [(["a", "b"], "some text", 1), (["c"], "other", 2)]


def test_fasttext_line_without_label(tmp_path):
    path = write(tmp_path, "a.txt", "__label__a text\nno label here\n")
    assert f"{path}:2: no __label__ label" in data_error(path, format="fasttext")


# ---------------------------------------------------------------- encodings


def test_non_utf8_bytes_name_file_line_and_encoding_hint(tmp_path):
    path = write(tmp_path, "a.tsv", b"pos\tgood\nneg\tbad\npos\tcaf\xe9\n")
    with pytest.raises(DataError) as info:
        read(path)
    assert f"{path}:3: not valid utf-8" in info.value.message
    assert "--encoding" in info.value.hint


def test_declared_encoding_reads_the_same_bytes(tmp_path):
    path = write(tmp_path, "a.tsv", b"pos\tgood\nneg\tbad\npos\tcaf\xe9\n")
    assert read(path, encoding="latin-1")[2].text == "café"


def test_unknown_encoding(tmp_path):
    assert "unknown text encoding" in data_error(write(tmp_path, "a.tsv", "a\tb\n"), encoding="klingon")


def test_unknown_format(tmp_path):
    # ClassifyData itself does not check choices (the recipe parser does), so the reader must.
    assert "unknown data format" in data_error(write(tmp_path, "a.tsv", "a\tb\n"), format="xml")


def test_missing_file(tmp_path):
    assert str(tmp_path / "nope.tsv") in data_error(tmp_path / "nope.tsv")


# ---------------------------------------------------------------- prediction input


def inputs(data: bytes, fmt: str = "text", encoding: str = "utf-8"):
    return list(iter_inputs(io.BytesIO(data), "in.txt", fmt, encoding))


def test_text_input_ids_are_line_numbers_and_blank_lines_count():
    assert inputs(b"one\n\nthree\r\n") == [(1, "one"), (2, ""), (3, "three")]


def test_jsonl_input_uses_object_ids_else_line_numbers():
    data = b'{"id": "a", "text": "x"}\n\n{"text": "y"}\n'
    assert inputs(data, "jsonl") == [("a", "x"), (3, "y")]


def test_jsonl_input_errors_name_line():
    with pytest.raises(DataError, match=r"in\.txt:2: field 'text' missing"):
        inputs(b'{"text": "x"}\n{"txt": "y"}\n', "jsonl")


def test_input_decoding_error_names_line():
    with pytest.raises(DataError, match=r"in\.txt:2: not valid utf-8"):
        inputs(b"ok\n\xff\xfe\n")
