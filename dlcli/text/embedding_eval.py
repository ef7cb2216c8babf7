"""Word-vector evaluations in NumPy: word analogies by 3CosAdd (Mikolov et al. 2013, "Efficient
Estimation of Word Representations in Vector Space") and word-pair similarity by Spearman
correlation (WordSim-353, SimLex-999), plus the nearest-neighbour search `dlcli embed` shows.

File formats (UTF-8, `.gz` allowed):
- analogy (questions-words, CA8): `: section-name` lines open a section, then `a b c d` per line
  (a is to b as c is to d);
- similarity: `#` comment lines, then `word1<TAB>word2<TAB>score` (any whitespace if no tab).

Section kinds: a section is syntactic when its name starts with "gram" (the questions-words
convention, as gensim counts it) or is one of CA8's morphological sections (`A`, `AB`, `prefix`,
`suffix`: reduplication and affixes); every other section (CA8's geography, nature, history,
people included) is semantic. The rule looks at section names only, so a renamed file keeps its
kinds.

All searches are cosine searches over unit-normalised rows, in batches of queries, so memory
holds at most (batch, N) scores however many questions there are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlcli.errors import DataError
from dlcli.text.readers import file_lines

ANALOGY, SIMILARITY = "analogy", "similarity"
CA8_MORPHOLOGICAL = frozenset({"A", "AB", "prefix", "suffix"})
ANALOGY_HINT = "analogy files hold `: section-name` lines and `a b c d` lines (a is to b as c is to d)"
SIMILARITY_HINT = "similarity files hold `word1<TAB>word2<TAB>score` lines; `#` starts a comment line"


@dataclass(frozen=True, slots=True)
class Analogy:
    a: str
    b: str
    c: str
    d: str
    section: str
    line: int


@dataclass(frozen=True, slots=True)
class WordPair:
    word1: str
    word2: str
    score: float
    line: int


def section_kind(name: str) -> str:
    """'syntactic' or 'semantic' (see the module docstring)."""
    return "syntactic" if name.startswith("gram") or name in CA8_MORPHOLOGICAL else "semantic"


def detect_kind(path: str | Path, encoding: str = "utf-8") -> str:
    """ANALOGY or SIMILARITY, from the first line that is neither blank nor a `#` comment."""
    for number, line in file_lines(path, encoding):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith(":"):
            return ANALOGY
        fields = _split_pair(line)
        if fields is not None and _number(fields[2]) is not None:
            return SIMILARITY
        if len(text.split()) == 4:
            return ANALOGY
        raise DataError(f"{path}:{number}: neither an analogy line nor a scored word pair",
                        f"{ANALOGY_HINT}; {SIMILARITY_HINT}")
    raise DataError(f"{path}: no analogy questions or word pairs found", "is the file empty?")


def read_analogies(path: str | Path, encoding: str = "utf-8") -> list[Analogy]:
    questions, section = [], None
    for number, line in file_lines(path, encoding):
        text = line.strip()
        if not text:
            continue
        if text.startswith(":"):
            section = text[1:].strip()
            if not section:
                raise DataError(f"{path}:{number}: section line without a name", ANALOGY_HINT)
            continue
        words = text.split()
        if len(words) != 4:
            raise DataError(f"{path}:{number}: expected 4 words (a b c d), found {len(words)}",
                            ANALOGY_HINT)
        if section is None:
            raise DataError(f"{path}:{number}: question before any `: section-name` line", ANALOGY_HINT)
        questions.append(Analogy(*words, section=section, line=number))
    if not questions:
        raise DataError(f"{path}: no analogy questions found", ANALOGY_HINT)
    return questions


def read_similarity(path: str | Path, encoding: str = "utf-8") -> list[WordPair]:
    pairs = []
    for number, line in file_lines(path, encoding):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = _split_pair(line)
        if fields is None:
            raise DataError(f"{path}:{number}: expected 3 fields (word1 word2 score), "
                            f"found {len(_fields(line))}", SIMILARITY_HINT)
        score = _number(fields[2])
        if score is None:
            raise DataError(f"{path}:{number}: score {fields[2]!r} is not a number", SIMILARITY_HINT)
        pairs.append(WordPair(fields[0], fields[1], score, number))
    if not pairs:
        raise DataError(f"{path}: no word pairs found", SIMILARITY_HINT)
    return pairs


def _fields(line: str) -> list[str]:
    return [f.strip() for f in line.strip().split("\t")] if "\t" in line else line.split()


def _split_pair(line: str) -> list[str] | None:
    fields = _fields(line)
    return fields if len(fields) == 3 and fields[0] and fields[1] else None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


UNIT_BLOCK = 4096  # rows normalized at a time: the squares that the norms need stay small


def unit_rows(vectors: np.ndarray, in_place: bool = False) -> np.ndarray:
    """Rows scaled to length 1 (float32); all-zero rows stay zero, so their cosines are 0. Block by
    block: the whole table's squares would cost another copy of it (25 MB for 62k x 100), and
    each row's norm is the same either way. `in_place`: into `vectors` itself (float32)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    out = vectors if in_place else np.empty_like(vectors)
    for lo in range(0, len(vectors), UNIT_BLOCK):
        block = vectors[lo:lo + UNIT_BLOCK]
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        np.divide(block, np.where(norms > 0, norms, 1).astype(np.float32), out=out[lo:lo + UNIT_BLOCK])
    return out


def _top_k(unit: np.ndarray, queries: np.ndarray, k: int,
           exclude: np.ndarray | Sequence[Iterable[int]] | None) -> tuple[np.ndarray, np.ndarray]:
    """(rows (B, k), cosines (B, k)) of the best rows of `unit` for unit `queries` (B, D),
    best first, ties to the lower row; excluded rows score -inf."""
    sims = queries @ unit.T  # (B, N)
    if isinstance(exclude, np.ndarray):
        sims[np.arange(len(sims))[:, None], exclude] = -np.inf
    elif exclude is not None:
        for i, rows in enumerate(exclude):
            sims[i, list(rows)] = -np.inf
    if k == 1:
        top = sims.argmax(axis=1)[:, None]
    else:
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        scores = np.take_along_axis(sims, top, axis=1)
        order = np.lexsort((top, -scores), axis=1)
        top = np.take_along_axis(top, order, axis=1)
    return top, np.take_along_axis(sims, top, axis=1)


def _cos_add(unit: np.ndarray, abc: np.ndarray, k: int, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """3CosAdd answers for rows (Q, 3) of (a, b, c), a batch at a time: argmax of cos(x, b - a + c)
    over every row but a, b and c."""
    k = min(k, len(unit))
    for start in range(0, len(abc), batch):
        part = abc[start:start + batch]  # (B, 3)
        query = unit_rows(unit[part[:, 1]] - unit[part[:, 0]] + unit[part[:, 2]])  # (B, D)
        yield _top_k(unit, query, k, part)


def _lookup(index: dict[str, int], word: str, lowercase: bool, limit: int) -> int | None:
    row = index.get(word.lower() if lowercase else word)
    return row if row is not None and row < limit else None


def analogy_report(vectors: np.ndarray, index: dict[str, int], questions: Sequence[Analogy],
                   lowercase: bool, restrict: int | None = None, batch: int = 64, scratch: bool = False) -> dict:
    """3CosAdd accuracy. Questions with a word outside the vocabulary, or (like gensim's
    restrict_vocab) outside the first `restrict` rows, are left out of the accuracies and counted
    in `coverage`; answers are searched among those first rows too. `scratch`: `vectors` (float32)
    is the caller's to spend, normalized in place instead of copied."""
    limit = len(vectors) if restrict is None else min(restrict, len(vectors))
    covered, rows = [], []
    for q in questions:
        found = [_lookup(index, w, lowercase, limit) for w in (q.a, q.b, q.c, q.d)]
        if None not in found:
            covered.append(q)
            rows.append(found)
    correct = np.zeros(len(rows), dtype=bool)
    if rows:
        rows = np.asarray(rows, dtype=np.int64)  # (Q, 4)
        unit = unit_rows(vectors[:limit], in_place=scratch)
        answers = np.concatenate([top[:, 0] for top, _ in _cos_add(unit, rows[:, :3], 1, batch)])
        correct = answers == rows[:, 3]
    return _tally(covered, correct, questions)


def _tally(covered: list[Analogy], correct: np.ndarray, questions: Sequence[Analogy]) -> dict:
    per_section: dict[str, list[int]] = {q.section: [0, 0, 0] for q in questions}  # right, n, total
    for q in questions:
        per_section[q.section][2] += 1
    kinds = {"semantic": [0, 0], "syntactic": [0, 0]}
    for q, right in zip(covered, correct.tolist()):
        for counts in (per_section[q.section], kinds[section_kind(q.section)]):
            counts[0] += right
            counts[1] += 1
    n, n_total = len(covered), len(questions)
    return {
        "analogy_accuracy": _ratio(int(correct.sum()), n),
        "semantic": _ratio(*kinds["semantic"]),
        "syntactic": _ratio(*kinds["syntactic"]),
        "per_section": {name: {"accuracy": _ratio(r, c), "n": c, "n_total": t}
                        for name, (r, c, t) in per_section.items()},
        "coverage": _ratio(n, n_total),
        "n": n,
        "n_total": n_total,
    }


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def average_ranks(values) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    first = np.flatnonzero(starts)
    counts = np.diff(np.r_[first, len(values)])
    ranks = np.empty(len(values))
    ranks[order] = (first + (counts + 1) / 2)[np.cumsum(starts) - 1]
    return ranks


def spearman(x, y) -> float | None:
    """Spearman's rho with average ranks for ties (Pearson over the ranks); None when fewer than
    two values or either side is constant."""
    if len(x) != len(y):
        raise ValueError(f"spearman: {len(x)} values against {len(y)}")
    if len(x) < 2:
        return None
    dx = average_ranks(x)
    dy = average_ranks(y)
    dx -= dx.mean()
    dy -= dy.mean()
    denominator = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / denominator if denominator > 0 else None


def similarity_report(vectors: np.ndarray, index: dict[str, int], pairs: Sequence[WordPair],
                      lowercase: bool) -> dict:
    """Spearman correlation of human scores with cosine similarities, over the pairs whose two
    words are in the vocabulary."""
    limit = len(vectors)
    human, rows = [], []
    for p in pairs:
        r1, r2 = _lookup(index, p.word1, lowercase, limit), _lookup(index, p.word2, lowercase, limit)
        if r1 is not None and r2 is not None:
            human.append(p.score)
            rows.append((r1, r2))
    cosines = []
    if rows:
        rows = np.asarray(rows, dtype=np.int64)
        cosines = np.einsum("ij,ij->i", unit_rows(vectors[rows[:, 0]]), unit_rows(vectors[rows[:, 1]]))
    return {"spearman": spearman(human, cosines), "coverage": _ratio(len(human), len(pairs)),
            "n": len(human), "n_total": len(pairs)}


def read_file(path: str | Path, encoding: str = "utf-8") -> tuple[str, list]:
    """(ANALOGY, questions) or (SIMILARITY, pairs), as detect_kind finds the file."""
    kind = detect_kind(path, encoding)
    return kind, read_analogies(path, encoding) if kind == ANALOGY else read_similarity(path, encoding)


def evaluate_file(path: str | Path, vectors: np.ndarray, index: dict[str, int], lowercase: bool,
                  restrict: int | None = None, encoding: str = "utf-8") -> dict:
    """The report for an analogy or similarity file (detected), with `"kind"` saying which."""
    kind, items = read_file(path, encoding)
    if kind == ANALOGY:
        report = analogy_report(vectors, index, items, lowercase, restrict)
    else:
        report = similarity_report(vectors, index, items, lowercase)
    return {"kind": kind, **report}


def nearest(vectors: np.ndarray, index_to_word: Sequence[str], query_vectors: np.ndarray, k: int,
            exclude: Sequence[set[int]] | None = None, batch: int = 256,
            normalized: bool = False) -> list[list[tuple[str, float]]]:
    """For each query row, the `k` rows of `vectors` closest by cosine, as (word, cosine), best
    first; rows in `exclude[i]` are skipped for query i. Pass `normalized=True` with rows from
    `unit_rows` to save the copy when calling in a loop."""
    unit = np.asarray(vectors, dtype=np.float32) if normalized else unit_rows(vectors)
    queries = unit_rows(np.atleast_2d(query_vectors))
    if exclude is not None and len(exclude) != len(queries):
        raise ValueError(f"nearest: {len(exclude)} exclusion sets for {len(queries)} queries")
    k = min(k, len(unit))
    if k <= 0:
        return [[] for _ in queries]
    results = []
    for start in range(0, len(queries), batch):
        skip = None if exclude is None else exclude[start:start + batch]
        top, scores = _top_k(unit, queries[start:start + batch], k, skip)
        results += _as_words(top, scores, index_to_word)
    return results


def analogy_answers(vectors: np.ndarray, words: Sequence[str], triples: Sequence[Sequence[str]],
                    k: int, lowercase: bool = False, batch: int = 256) -> list[list[tuple[str, float]] | None]:
    """For each (a, b, c), the `k` best d for "a is to b as c is to d" by 3CosAdd, as
    (word, cosine with b - a + c), best first; None for a triple with a word not in `words`
    (looked up lowercased when `lowercase`; the first row of a repeated word counts)."""
    if any(len(t) != 3 for t in triples):
        raise ValueError("analogy_answers: each triple holds 3 words (a, b, c)")
    index: dict[str, int] = {}
    for row, word in enumerate(words):
        index.setdefault(word, row)
    rows = [[_lookup(index, w, lowercase, len(words)) for w in t] for t in triples]
    known = [i for i, r in enumerate(rows) if None not in r]
    answers: list[list[tuple[str, float]] | None] = [None] * len(rows)
    found: list[list[tuple[str, float]]] = [[] for _ in known]
    if known and k > 0:
        abc = np.asarray([rows[i] for i in known], dtype=np.int64)  # (Q, 3)
        found = []
        for top, scores in _cos_add(unit_rows(vectors), abc, k, batch):
            found += _as_words(top, scores, words)
    for i, answer in zip(known, found):
        answers[i] = answer
    return answers


def _as_words(top: np.ndarray, scores: np.ndarray, words: Sequence[str]) -> list[list[tuple[str, float]]]:
    """Rows to (word, cosine) lists, dropping excluded (-inf) entries when k exceeded what was left."""
    return [[(words[r], s) for r, s in zip(rows, row_scores) if s != -np.inf]
            for rows, row_scores in zip(top.tolist(), scores.tolist())]
