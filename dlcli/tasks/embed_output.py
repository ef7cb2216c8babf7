"""What `dlcli embed` prints for a line: its vector, one record per word, its nearest words, or the
answers of an analogy. NumPy only."""

from __future__ import annotations

import numpy as np

from dlcli.text import embedding_eval as ev

DIGITS = 6  # decimals of printed vectors and scores
BLOCK = 8192  # rows gathered at once for a line's mean vector


def predict_records(vocab, vectors: np.ndarray, ids: list, texts: list[str], options: dict) -> list[dict]:
    """Records for a chunk of lines, in order (see EmbedTask.predict). `vectors` (V, D) has zero rows
    for the ids that hold no word."""
    limit = len(vectors) if options.get("restrict") is None else min(len(vectors), options["restrict"] + 2)
    k = int(options.get("neighbors") or options.get("top_k", 10))
    if options.get("analogy"):
        return _analogies(vocab, vectors[:limit], ids, texts, k)
    records = []
    for id_, text in zip(ids, texts):
        tokens = vocab.tokenize(text)
        rows = [vocab.index.get(t, vocab.unk_id) for t in tokens]
        unknown = [t for t, r in zip(tokens, rows) if r == vocab.unk_id]
        if options.get("words"):
            records += [_word_record(id_, t, r, vectors) for t, r in zip(tokens, rows)]
            continue
        record = {"id": id_, "text": text, "unknown": unknown}
        known = [r for r in rows if r != vocab.unk_id]
        mean = _mean(vectors, known) if known else None
        if options.get("neighbors"):
            record["neighbors"] = [] if mean is None else _nearest(vocab, vectors[:limit], mean, set(known), k)
        else:
            record["vector"] = None if mean is None else _rounded(mean)
        records.append(record)
    return records


def _mean(vectors: np.ndarray, rows: list[int]) -> np.ndarray:
    """The mean of vectors[rows]; a long line's rows are gathered in blocks, so that memory stays
    flat however many words it has (a line of a million words would gather gigabytes at once)."""
    if len(rows) <= BLOCK:
        return vectors[rows].mean(0)
    total = np.zeros(vectors.shape[1], dtype=np.float64)
    for start in range(0, len(rows), BLOCK):
        total += vectors[rows[start : start + BLOCK]].sum(0, dtype=np.float64)
    return (total / len(rows)).astype(vectors.dtype)


def _word_record(id_, token: str, row: int, vectors: np.ndarray) -> dict:
    known = row > 1
    return {"id": id_, "token": token, "known": known, "vector": _rounded(vectors[row]) if known else None}


def _nearest(vocab, vectors: np.ndarray, query: np.ndarray, exclude: set[int], k: int) -> list[dict]:
    found = ev.nearest(vectors, vocab.tokens, query[None, :], k, [exclude | {0, 1}])[0]
    return [{"word": w, "score": round(s, DIGITS)} for w, s in found]


def _analogies(vocab, vectors: np.ndarray, ids: list, texts: list[str], k: int) -> list[dict]:
    """Lines "a b c": the best d for b - a + c (3CosAdd), excluding a, b and c."""
    triples = [vocab.tokenize(text) for text in texts]
    good = [i for i, t in enumerate(triples) if len(t) == 3]
    answers = ev.analogy_answers(vectors, vocab.tokens[: len(vectors)], [triples[i] for i in good], k,
                                 vocab.lowercase)
    by_line = dict(zip(good, answers))
    records = []
    for n, (id_, words) in enumerate(zip(ids, triples)):
        record = {"id": id_, "query": words, "unknown": [w for w in words if w not in vocab.index]}
        if n not in by_line:
            record["error"] = f"an analogy line holds 3 words (a b c), not {len(words)}"
        else:
            found = by_line[n] or []
            record["answers"] = [{"word": w, "score": round(s, DIGITS)} for w, s in found]
        records.append(record)
    return records


def _rounded(vector: np.ndarray) -> list[float]:
    return [round(v, DIGITS) for v in vector.tolist()]
