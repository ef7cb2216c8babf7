"""Tag schemes, conlleval spans, scheme conversion, segmentation, long-sentence cuts, readers, metrics."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from dlcli.errors import DataError
from dlcli.metrics import tagging_report
from dlcli.text.tagging import convert_scheme, ill_formed, join_spans, read_tagged, spans, split_long, words_to_bmes


def cfg(**kw):
    base = dict(format="conll", encoding="utf-8", token_column=0, tag_column=-1, feature_columns=[],
                column_separator=None, tag_scheme="bio")
    return SimpleNamespace(**{**base, **kw})


# ---------------------------------------------------------------- spans (conlleval rules)


@pytest.mark.parametrize(("tags", "expected"), [
    (["B-PER", "I-PER", "O", "B-LOC"], [(0, 2, "PER"), (3, 4, "LOC")]),
    (["I-PER", "I-PER", "B-PER", "O"], [(0, 2, "PER"), (2, 3, "PER")]),  # IOB1
    (["O", "I-ORG", "I-ORG"], [(1, 3, "ORG")]),  # I- after O opens a span, as conlleval scores it
    (["B-PER", "I-LOC"], [(0, 1, "PER"), (1, 2, "LOC")]),  # a type change closes and opens
    (["S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"], [(0, 1, "PER"), (1, 4, "LOC"), (4, 5, "LOC")]),
    (["E-LOC", "E-LOC"], [(0, 1, "LOC"), (1, 2, "LOC")]),
    (["B", "E", "S", "B", "M", "E"], [(0, 2, ""), (2, 3, ""), (3, 6, "")]),  # untyped BMES: words
    (["B-X", "M-X", "M-X"], [(0, 3, "X")]),  # an unclosed span still ends with the sentence
    ([], []),
])
def test_spans_follow_conlleval(tags, expected):
    assert spans(tags) == expected


PREFIXES = ["O", "B", "I", "E", "S"]


def random_tags(rng: random.Random, n: int) -> list[str]:
    return [p if p == "O" else f"{p}-{rng.choice('AB')}" for p in (rng.choice(PREFIXES) for _ in range(n))]


def test_spans_match_seqeval_on_random_sequences():
    seqeval = pytest.importorskip("seqeval.metrics.sequence_labeling")
    rng = random.Random(0)
    for _ in range(2000):
        tags = random_tags(rng, rng.randint(0, 8))
        theirs = sorted((start, end + 1, kind) for kind, start, end in seqeval.get_entities(tags))
        assert sorted(spans(tags)) == theirs, tags


def test_report_matches_seqeval():
    metrics = pytest.importorskip("seqeval.metrics")
    rng = random.Random(1)
    gold = [random_tags(rng, rng.randint(1, 9)) for _ in range(300)]
    pred = [[t if rng.random() < 0.7 else rng.choice(["O", "B-A", "I-B", "E-A"]) for t in g] for g in gold]
    report = tagging_report(gold, pred)
    assert report["f1"] == pytest.approx(metrics.f1_score(gold, pred))
    assert report["precision"] == pytest.approx(metrics.precision_score(gold, pred))
    assert report["recall"] == pytest.approx(metrics.recall_score(gold, pred))
    assert report["accuracy"] == pytest.approx(metrics.accuracy_score(gold, pred))


def test_report_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-LOC"]]
    r = tagging_report(gold, pred)
    assert (r["precision"], r["recall"]) == (0.5, pytest.approx(1 / 3))
    assert r["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert r["per_type"]["LOC"]["support"] == 1 and r["per_type"]["LOC"]["precision"] == 0.0
    assert r["accuracy"] == 3 / 5 and r["n"] == 2 and r["n_spans"] == 3
    assert "f1" not in tagging_report([["n", "v"]], [["n", "n"]], with_spans=False)


# ---------------------------------------------------------------- schemes


def valid_bio(rng: random.Random, n: int) -> list[str]:
    tags, i = [], 0
    while i < n:
        if rng.random() < 0.4:
            tags.append("O")
            i += 1
            continue
        kind, length = rng.choice("AB"), rng.randint(1, 3)
        tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (length - 1))
        i += length
    return tags[:n]


def test_scheme_conversions_keep_spans_and_round_trip():
    rng = random.Random(2)
    for _ in range(500):
        bio = valid_bio(rng, rng.randint(1, 10))
        for scheme in ("iob1", "bioes", "bmes"):
            other = convert_scheme(bio, "bio", scheme)
            assert spans(other) == spans(bio)
            assert convert_scheme(other, scheme, "bio") == bio
            assert ill_formed(other, scheme) is None


def test_conversion_examples():
    assert convert_scheme(["I-PER", "I-PER", "B-PER", "O"], "iob1", "bio") == ["B-PER", "I-PER", "B-PER", "O"]
    assert convert_scheme(["B-PER", "B-LOC", "I-LOC", "B-LOC"], "bio", "iob1") == ["I-PER", "I-LOC", "I-LOC", "B-LOC"]
    assert convert_scheme(["B-X", "I-X", "I-X", "B-Y"], "bio", "bioes") == ["B-X", "I-X", "E-X", "S-Y"]
    assert convert_scheme(["B-X", "I-X", "I-X"], "bio", "bmes") == ["B-X", "M-X", "E-X"]
    with pytest.raises(ValueError):
        convert_scheme(["n"], "none", "bio")


def test_ill_formed_points_at_the_first_orphan():
    assert ill_formed(["O", "B-X", "I-X", "O", "I-Y"], "bio") == 4
    assert ill_formed(["B-X", "I-Y"], "bio") == 1
    assert ill_formed(["S", "E"], "bmes") == 1
    assert ill_formed(["I-X", "I-X"], "iob1") is None


# ---------------------------------------------------------------- segmentation and long sentences


def test_words_to_bmes_and_back():
    words = ["迈向", "充满", "希望", "的", "新世纪啊"]
    chars, tags = words_to_bmes(words)
    assert tags == ["B", "E", "B", "E", "B", "E", "S", "B", "M", "M", "E"]
    assert join_spans(chars, tags) == words
    assert join_spans(["a", "b", "c"], ["O", "B", "E"], " ") == ["a", "b c"]  # O tokens stay words


@pytest.mark.parametrize("max_length", [1, 3, 5, 8, 100])
def test_split_long_keeps_every_token(max_length):
    tokens = list("一二三，四五六七八。九十一二三四五六")
    pieces = split_long(len(tokens), max_length, tokens)
    assert [i for s, e in pieces for i in range(s, e)] == list(range(len(tokens)))
    assert all(0 < e - s <= max_length for s, e in pieces)


def test_split_long_cuts_after_punctuation():
    tokens = list("一二三四五六，七八九十一二")
    assert split_long(len(tokens), 10, tokens)[0] == (0, 7)
    assert split_long(5, None, list("abcde")) == [(0, 5)]


# ---------------------------------------------------------------- readers


def write(tmp_path, text: str, name: str = "data.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_conll_reader_columns_docstart_and_blank_runs(tmp_path):
    path = write(tmp_path, "-DOCSTART- -X- O O\n\nEU NNP I-NP B-ORG\nrejects VBZ I-VP O\n\n\n"
                           "Peter NNP I-NP B-PER\n")
    sentences = read_tagged(path, cfg(feature_columns=[1]))
    assert [s.tokens for s in sentences] == [["EU", "rejects"], ["Peter"]]
    assert [s.tags for s in sentences] == [["B-ORG", "O"], ["B-PER"]]
    assert sentences[0].features == [["NNP", "VBZ"]] and sentences[0].line == 3 and sentences[1].line == 7


def test_char_tab_files(tmp_path):
    path = write(tmp_path, "北\tB-LOC\n京\tI-LOC\n\n好\tO\n")
    sentences = read_tagged(path, cfg(column_separator="\t"))
    assert [s.tokens for s in sentences] == [["北", "京"], ["好"]]


def test_broken_column_count_names_the_line(tmp_path):
    path = write(tmp_path, "EU NNP B-ORG\nrejects O\n")
    with pytest.raises(DataError, match=r"data.txt:2: 2 columns .* 3 \(line 1\)"):
        read_tagged(path, cfg())


def test_unknown_tag_names_the_line(tmp_path):
    path = write(tmp_path, "EU B-ORG\nrejects X-ORG\n")
    with pytest.raises(DataError, match=r"data.txt:2: tag 'X-ORG' is not a BIO tag"):
        read_tagged(path, cfg())
    assert read_tagged(path, cfg(tag_scheme="none"))[0].tags == ["B-ORG", "X-ORG"]


def test_segmented_and_word_tag_readers(tmp_path):
    seg = read_tagged(write(tmp_path, "迈向 充满\n\n的\n"), cfg(format="segmented", tag_scheme="bmes"))
    assert [(s.tokens, s.tags, s.line) for s in seg] == [(list("迈向充满"), ["B", "E", "B", "E"], 1),
                                                         (["的"], ["S"], 3)]
    pos = read_tagged(write(tmp_path, "迈向/v 1/2/m\n", "pos.txt"), cfg(format="word_tag", tag_scheme="none"))
    assert (pos[0].tokens, pos[0].tags) == (["迈向", "1/2"], ["v", "m"])
    with pytest.raises(DataError, match=r"pos.txt:2: 'word' is not word/TAG"):
        read_tagged(write(tmp_path, "a/n\nword\n", "pos.txt"), cfg(format="word_tag", tag_scheme="none"))


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no sentences"):
        read_tagged(write(tmp_path, "\n\n"), cfg())
