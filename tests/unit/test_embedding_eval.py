"""Word-vector evaluations: analogy and similarity readers, 3CosAdd, Spearman, nearest neighbours."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from dlcli.errors import DataError
from dlcli.text.embedding_eval import (
    ANALOGY,
    SIMILARITY,
    Analogy,
    WordPair,
    analogy_answers,
    analogy_report,
    average_ranks,
    detect_kind,
    evaluate_file,
    nearest,
    read_analogies,
    read_similarity,
    section_kind,
    similarity_report,
    spearman,
    unit_rows,
)

DATASETS = Path("/work/shared/datasets")

# Axes: royalty, male, female. "is to king as woman is to queen" holds exactly.
WORDS = ["man", "woman", "king", "queen", "apple"]
VECTORS = np.array([[0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [-1, 0.2, 0.2]], dtype=np.float32)
INDEX = {w: i for i, w in enumerate(WORDS)}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def error(read, path: Path) -> DataError:
    with pytest.raises(DataError) as info:
        read(path)
    return info.value


def brute_force_3cosadd(vectors: np.ndarray, a: int, b: int, c: int) -> int:
    unit = [v / np.linalg.norm(v) for v in vectors.astype(np.float64)]
    query = unit[b] - unit[a] + unit[c]
    best, best_row = -np.inf, -1
    for row, v in enumerate(unit):
        cosine = float(query @ v) / np.linalg.norm(query)
        if row not in (a, b, c) and cosine > best:
            best, best_row = cosine, row
    return best_row


# ---------------------------------------------------------------- readers


def test_read_analogies_sections_lines_and_gzip(tmp_path):
    path = write(tmp_path, "qw.txt.gz", ": family\nman king woman queen\n\n: gram1-x\n a  b c d \n")
    assert read_analogies(path) == [
        Analogy("man", "king", "woman", "queen", "family", 2),
        Analogy("a", "b", "c", "d", "gram1-x", 5),
    ]
    assert detect_kind(path) == ANALOGY


def test_malformed_analogy_line_names_file_and_line(tmp_path):
    path = write(tmp_path, "qw.txt", ": family\nman king woman queen\nman king woman\n")
    err = error(read_analogies, path)
    assert err.message == f"{path}:3: expected 4 words (a b c d), found 3"
    assert "a b c d" in err.hint
    orphan = write(tmp_path, "orphan.txt", "\nman king woman queen\n")
    assert error(read_analogies, orphan).message.startswith(f"{orphan}:2: question before any")
    assert error(read_analogies, write(tmp_path, "bare.txt", ":\n")).message.endswith(":1: section line without a name")
    assert "no analogy questions" in error(read_analogies, write(tmp_path, "empty.txt", ": s\n\n")).message


def test_read_similarity_tabs_spaces_and_comments(tmp_path):
    path = write(tmp_path, "ws.tsv", "# title\n# Word 1\tWord 2\tHuman\nnew york\tcity\t7.5\n\ntiger  cat 8\n")
    assert read_similarity(path) == [WordPair("new york", "city", 7.5, 3), WordPair("tiger", "cat", 8.0, 5)]
    assert detect_kind(path) == SIMILARITY  # 4 whitespace tokens on the first line, but 3 tab fields


@pytest.mark.parametrize("line, message", [
    ("tiger\tcat\thigh", "score 'high' is not a number"),
    ("tiger\tcat\tnan", "score 'nan' is not a number"),
    ("tiger\tcat", "expected 3 fields (word1 word2 score), found 2"),
    ("tiger cat 1 2", "expected 3 fields (word1 word2 score), found 4"),
])
def test_malformed_score_names_file_and_line(tmp_path, line, message):
    path = write(tmp_path, "ws.tsv", f"# comment\ncup\tmug\t9.1\n{line}\n")
    err = error(read_similarity, path)
    assert err.message == f"{path}:3: {message}"
    assert "word1<TAB>word2<TAB>score" in err.hint


def test_detect_kind_errors_name_the_line(tmp_path):
    path = write(tmp_path, "odd.txt", "# c\n\none two\n")
    assert error(detect_kind, path).message.startswith(f"{path}:3: neither an analogy line")
    assert "no analogy questions or word pairs" in error(detect_kind, write(tmp_path, "e.txt", "# only\n")).message
    assert error(detect_kind, tmp_path / "missing.txt").message.startswith("cannot open")


def test_section_kinds():
    assert section_kind("gram3-comparative") == "syntactic"
    assert section_kind("capital-world") == "semantic"
    assert [section_kind(s) for s in ("A", "AB", "prefix", "suffix")] == ["syntactic"] * 4
    assert [section_kind(s) for s in ("geography", "nature", "history", "people")] == ["semantic"] * 4


# ---------------------------------------------------------------- analogies


def test_3cosadd_excludes_the_question_words():
    # b is a hair from a, so b - a + c is almost c: without exclusion c itself would be the answer.
    words = ["a", "b", "c", "d", "far"]
    vectors = np.array([[1, 0, 0], [1, 0.05, 0], [0, 1, 0], [0, 1, 0.3], [0, 0, -1]], dtype=np.float32)
    query = vectors[1] / np.linalg.norm(vectors[1]) - vectors[0] + vectors[2]
    assert nearest(vectors, words, query[None], 1)[0][0][0] == "c"
    assert [w for w, _ in analogy_answers(vectors, words, [("a", "b", "c")], 1)[0]] == ["d"]
    assert [w for w, _ in analogy_answers(vectors, words, [("a", "b", "c")], 10)[0]] == ["d", "far"]
    index = {w: i for i, w in enumerate(words)}
    report = analogy_report(vectors, index, [Analogy("a", "b", "c", "d", "s", 1)], lowercase=False)
    assert report["analogy_accuracy"] == 1.0


def test_analogy_answers_scores_are_cosines_and_oov_is_none():
    answers = analogy_answers(VECTORS, WORDS, [("Man", "King", "Woman"), ("man", "king", "pear")], 2, lowercase=True)
    (best, score), _ = answers[0]
    assert best == "queen"
    unit = VECTORS / np.linalg.norm(VECTORS, axis=1, keepdims=True)
    query = unit[2] - unit[0] + unit[1]
    assert score == pytest.approx(float(query @ unit[3]) / np.linalg.norm(query), abs=1e-6)
    assert answers[1] is None
    assert analogy_answers(VECTORS, WORDS, [("Man", "King", "Woman")], 1) == [None]  # case kept


def test_analogy_report_counts_coverage_sections_and_kinds():
    questions = [
        Analogy("man", "king", "woman", "queen", "royal", 1),
        Analogy("woman", "queen", "man", "king", "royal", 2),
        Analogy("man", "king", "woman", "apple", "royal", 3),  # answered wrong
        Analogy("man", "king", "woman", "pear", "royal", 4),  # pear is not in the vocabulary
        Analogy("Man", "King", "Woman", "Queen", "gram-case", 5),
    ]
    report = analogy_report(VECTORS, INDEX, questions, lowercase=False)
    assert report["n_total"] == 5 and report["n"] == 3 and report["coverage"] == pytest.approx(0.6)
    assert report["analogy_accuracy"] == pytest.approx(2 / 3)
    assert report["semantic"] == pytest.approx(2 / 3)
    assert report["syntactic"] is None  # its one question is not covered with case kept
    assert report["per_section"] == {
        "royal": {"accuracy": pytest.approx(2 / 3), "n": 3, "n_total": 4},
        "gram-case": {"accuracy": None, "n": 0, "n_total": 1},
    }
    lowered = analogy_report(VECTORS, INDEX, questions, lowercase=True)
    assert lowered["n"] == 4 and lowered["syntactic"] == 1.0
    assert list(lowered["per_section"]) == ["royal", "gram-case"]


def test_restrict_limits_coverage_and_candidates():
    # "spoiler" (row 5) beats queen when it may answer; with restrict=5 it is out of the search.
    words = WORDS + ["spoiler"]
    vectors = np.vstack([VECTORS, [[0.5, -0.2, 0.5]]]).astype(np.float32)
    index = {w: i for i, w in enumerate(words)}
    question = Analogy("man", "king", "woman", "queen", "royal", 1)
    assert analogy_report(vectors, index, [question], False)["analogy_accuracy"] == 0.0
    assert analogy_report(vectors, index, [question], False, restrict=5)["analogy_accuracy"] == 1.0
    report = analogy_report(vectors, index, [question], False, restrict=3)  # queen is row 3
    assert (report["n"], report["n_total"], report["coverage"], report["analogy_accuracy"]) == (0, 1, 0.0, None)


def test_report_matches_brute_force_and_ignores_batch_size():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((60, 8)).astype(np.float32)
    index = {f"w{i}": i for i in range(60)}
    picks = rng.integers(0, 60, size=(50, 3))
    # Half the questions get their brute-force answer, half a random one, so accuracy is not trivial.
    questions = []
    for i, (a, b, c) in enumerate(picks.tolist()):
        d = brute_force_3cosadd(vectors, a, b, c) if i % 2 else int(rng.integers(0, 60))
        questions.append(Analogy(f"w{a}", f"w{b}", f"w{c}", f"w{d}", f"s{i % 3}", i))
    expected = sum(q.d == f"w{brute_force_3cosadd(vectors, *(index[w] for w in (q.a, q.b, q.c)))}"
                   for q in questions) / len(questions)
    reports = [analogy_report(vectors, index, questions, False, batch=b) for b in (1, 7, 256)]
    assert reports[0]["analogy_accuracy"] == pytest.approx(expected)
    assert 0.5 <= expected < 1.0
    assert reports[0] == reports[1] == reports[2]
    triples = [(q.a, q.b, q.c) for q in questions]
    words = list(index)
    assert analogy_answers(vectors, words, triples, 4, batch=3) == analogy_answers(vectors, words, triples, 4)


# ---------------------------------------------------------------- nearest


def test_nearest_orders_excludes_and_caps_k():
    queries = np.array([[0, 2, 0], [1, 0, 1.1]], dtype=np.float32)  # scale does not matter
    found = nearest(VECTORS, WORDS, queries, 2, exclude=[set(), {3}])
    assert [w for w, _ in found[0]] == ["man", "king"]
    assert found[0][0][1] == pytest.approx(1.0)
    assert found[0][1][1] == pytest.approx(1 / np.sqrt(2))
    assert [w for w, _ in found[1]] == ["woman", "king"]
    assert len(nearest(VECTORS, WORDS, queries, 99)[0]) == 5
    assert len(nearest(VECTORS, WORDS, queries[:1], 99, exclude=[{0, 1}])[0]) == 3
    rng = np.random.default_rng(1)
    big = rng.standard_normal((40, 5)).astype(np.float32)
    words = [f"w{i}" for i in range(40)]
    q = rng.standard_normal((9, 5)).astype(np.float32)
    assert nearest(big, words, q, 5, batch=2) == nearest(big, words, q, 5)
    brute = (big / np.linalg.norm(big, axis=1, keepdims=True)) @ (q[0] / np.linalg.norm(q[0]))
    assert [w for w, _ in nearest(big, words, q[:1], 5)[0]] == [words[i] for i in np.argsort(-brute)[:5]]


# ---------------------------------------------------------------- similarity


def test_average_ranks_and_hand_worked_spearman():
    assert average_ranks([10, 20, 20, 30, 20]).tolist() == [1.0, 3.0, 3.0, 5.0, 3.0]
    # ranks x: 1 2.5 2.5 4, y: 1 3 2 4 -> 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / np.sqrt(22.5))
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    assert spearman([1], [2]) is None


def test_spearman_with_ties_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    for _ in range(5):
        x = rng.integers(0, 6, size=40).astype(float)  # many ties
        y = x + rng.integers(-3, 4, size=40)
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)


def test_similarity_report_skips_oov_pairs():
    pairs = [WordPair("king", "queen", 8.0, 1), WordPair("man", "apple", 1.0, 2),
             WordPair("King", "man", 6.0, 3), WordPair("king", "pear", 3.0, 4)]
    report = similarity_report(VECTORS, INDEX, pairs, lowercase=True)
    assert (report["n"], report["n_total"], report["coverage"]) == (3, 4, 0.75)
    # cosines: king-queen .5, man-apple ~.19, king-man ~.71 -> ranks 2 1 3 against human 3 1 2
    assert report["spearman"] == pytest.approx(0.5)
    cased = similarity_report(VECTORS, INDEX, pairs, lowercase=False)
    assert cased["n"] == 2 and cased["spearman"] == pytest.approx(1.0)


def test_evaluate_file_dispatches_on_kind(tmp_path):
    analogies = write(tmp_path, "a.txt", ": family\nman king woman queen\n")
    pairs = write(tmp_path, "p.tsv", "king\tqueen\t8\nman\tapple\t1\n")
    assert evaluate_file(analogies, VECTORS, INDEX, False)["kind"] == ANALOGY
    assert evaluate_file(analogies, VECTORS, INDEX, False)["analogy_accuracy"] == 1.0
    report = evaluate_file(pairs, VECTORS, INDEX, False)
    assert report["kind"] == SIMILARITY and report["spearman"] == pytest.approx(1.0)


# ---------------------------------------------------------------- the shipped dev files

REAL_FILES = {
    "embedding_eval_en/questions-words.dev.txt": (ANALOGY, 1955, {
        "capital-common-countries": 51, "capital-world": 452, "currency": 87, "city-in-state": 247,
        "family": 51, "gram1-adjective-to-adverb": 99, "gram2-opposite": 81, "gram3-comparative": 133,
        "gram4-superlative": 112, "gram5-present-participle": 106, "gram6-nationality-adjective": 160,
        "gram7-past-tense": 156, "gram8-plural": 133, "gram9-plural-verbs": 87}),
    "embedding_eval_zh/ca8_morphological.dev.txt": (
        ANALOGY, 1018, {"A": 255, "prefix": 255, "AB": 254, "suffix": 254}),
    "embedding_eval_zh/ca8_semantic.dev.txt": (
        ANALOGY, 763, {"geography": 319, "nature": 137, "history": 146, "people": 161}),
    "embedding_eval_en/wordsim353.dev.tsv": (SIMILARITY, 35, None),
    "embedding_eval_en/simlex999.dev.txt": (SIMILARITY, 100, None),
}


@pytest.mark.parametrize("name", list(REAL_FILES))
def test_real_dev_files_match_their_readme_counts(name):
    path = DATASETS / name
    if not path.exists():
        pytest.skip(f"{path} is not here")
    kind, count, sections = REAL_FILES[name]
    assert detect_kind(path) == kind
    if kind == SIMILARITY:
        assert len(read_similarity(path)) == count
        return
    questions = read_analogies(path)
    per_section: dict[str, int] = {}
    for q in questions:
        per_section[q.section] = per_section.get(q.section, 0) + 1
    assert per_section == sections and len(questions) == count
    kinds = {s: section_kind(s) for s in sections}
    if "ca8" in name:  # CA8: the morphological file is all syntactic, the semantic file all semantic
        assert set(kinds.values()) == {"syntactic" if "morphological" in name else "semantic"}
    else:
        assert [s for s, k in kinds.items() if k == "syntactic"] == [s for s in sections if s.startswith("gram")]
    # Every word in the vocabulary: full coverage; kinds are reported as the rule says.
    vocab = sorted({w for q in questions for w in (q.a, q.b, q.c, q.d)})
    vectors = np.random.default_rng(3).standard_normal((len(vocab), 4)).astype(np.float32)
    report = analogy_report(vectors, {w: i for i, w in enumerate(vocab)}, questions, False)
    assert report["coverage"] == 1.0 and report["n"] == count
    assert {s: v["n"] for s, v in report["per_section"].items()} == sections


def test_unit_rows_block_by_block_match_the_whole_table_and_can_work_in_place(monkeypatch):
    import dlcli.text.embedding_eval as ev

    rng = np.random.default_rng(0)
    table = rng.standard_normal((1000, 7)).astype(np.float32)
    table[3] = 0.0
    whole = table / np.where((n := np.linalg.norm(table, axis=1, keepdims=True)) > 0, n, 1).astype(np.float32)
    monkeypatch.setattr(ev, "UNIT_BLOCK", 64)
    assert np.array_equal(unit_rows(table), whole) and not whole[3].any()
    spent = table.copy()
    assert unit_rows(spent, in_place=True) is spent and np.array_equal(spent, whole)


def test_an_analogy_report_on_scratch_vectors_is_the_same_report():
    questions = [Analogy("man", "woman", "king", "queen", "family", 1),
                 Analogy("king", "queen", "man", "woman", "family", 2)]
    kept = VECTORS.copy()
    want = analogy_report(kept, INDEX, questions, False)
    assert np.array_equal(kept, VECTORS)  # not scratch: untouched
    assert analogy_report(VECTORS.copy(), INDEX, questions, False, scratch=True) == want
