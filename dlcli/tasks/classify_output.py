"""What `dlcli classify` prints for a text, from its label probabilities, and the checks of its
options (NumPy, no torch: the torch-free FastText backend and ClassifyTask.predict share them).

Raw text reaches the model as its training text was written (`--tokenize auto`): tokenized by
dlcli/text/tokenize.py, a whitespace chunk the vocabulary knows whole kept whole (an MR model has
`don't`, an SST one `do n't`), the tokens joined by one space; the vocabulary's own rules
(lowercasing, its token pattern) then apply as in training. `--explain` maps the vocabulary's
tokens back to character offsets in the text as given.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from dlcli.text.tokenize import check_mode, tokenize, word_lookup

Span = tuple[int, int]


def probabilities(scores: np.ndarray, sigmoid: bool) -> np.ndarray:
    """(N, C) logits as probabilities: one sigmoid per label, or a softmax over the labels."""
    if sigmoid:
        return np.exp(-np.logaddexp(0.0, -scores, dtype=np.float32))
    shifted = scores - scores.max(1, keepdims=True)
    np.exp(shifted, out=shifted)
    return shifted / shifted.sum(1, keepdims=True)


def check_classify_options(options: dict) -> None:
    """Refuse classify options out of range (the CLI checks its own; this guards the API)."""
    from dlcli.errors import RecipeError

    if int(options.get("top_k", 1)) < 1:
        raise RecipeError(f"--top-k: {options['top_k']} is below 1", "list at least one label per text")
    if int(options.get("batch_size", 1)) < 1:
        raise RecipeError(f"--batch-size: {options['batch_size']} is below 1")
    check_mode(options.get("tokenize", "auto"))
    threshold = options.get("threshold")
    if threshold is not None and not 0 <= float(threshold) <= 1:  # also refuses nan
        raise RecipeError(f"--threshold: {threshold} is not between 0 and 1",
                          "scores are probabilities; e.g. --threshold 0.3 lists every label scoring >= 0.3")


def prediction_records(ids: list, probs: np.ndarray, labels: list[str], multi_label: bool, top_k: int = 1,
                       threshold: float | None = None) -> list[dict]:
    """One record per row of probs (N, C): {"id", "label", "score", "top_k"}, plus "labels" (every
    label scoring >= threshold; multi-label models default to 0.5). Ties rank the lower label index first."""
    k = max(1, min(top_k, len(labels)))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    top_p = np.take_along_axis(probs, order, axis=1).tolist()
    order = order.tolist()
    if threshold is None and multi_label:
        threshold = 0.5
    above = (probs >= threshold).tolist() if threshold is not None else None
    records = []
    for n, id_ in enumerate(ids):
        top = [{"label": labels[i], "score": round(p, 6)} for i, p in zip(order[n], top_p[n])]
        rec = {"id": id_, "label": top[0]["label"], "score": top[0]["score"], "top_k": top}
        if above is not None:
            rec["labels"] = [name for name, yes in zip(labels, above[n]) if yes]
        records.append(rec)
    return records


def _word_lookup(vocab) -> Callable[[str], bool] | None:
    """Whether a vocabulary of words holds a chunk (as it lowercases); None for one of characters
    or subword pieces, which has no words to ask."""
    unit = vocab.unit if vocab.kind == "ngrams" else vocab.kind
    return word_lookup(vocab.index, vocab.lowercase) if unit == "word" else None


def model_texts(vocab, texts: list[str], mode: str) -> list[str]:
    """What the vocabulary reads for each raw text: in mode auto the text tokenized as the training
    text was (tokens joined by one space), in mode whitespace the text as it is."""
    if mode != "auto":
        return texts
    known = _word_lookup(vocab)
    return [" ".join([text[s:e] for s, e in tokenize(text, known)]) for text in texts]


def explained(vocab, text: str, mode: str, weights: list[float]) -> list[dict]:
    """--explain's entries for one text: each token the model weighed ("token", as the vocabulary
    made it), where it stands in `text` ("char_start", "char_end", end exclusive; "text" is
    text[char_start:char_end]) and its weight."""
    out = []
    for token, (start, end), weight in zip(vocab.tokenize(model_texts(vocab, [text], mode)[0]),
                                           token_offsets(vocab, text, mode), weights):
        out.append({"token": token, "text": text[start:end], "char_start": start, "char_end": end,
                    "weight": round(weight, 6)})
    return out


def token_offsets(vocab, text: str, mode: str) -> list[Span]:
    """Offsets in `text` of the tokens `vocab.tokenize` makes of `model_texts(...)`, in order. A
    space that auto mode put between two tokens stands for the whitespace between them in `text`
    (empty where there was none)."""
    if mode != "auto":
        return _vocab_spans(vocab, text)
    pieces = tokenize(text, _word_lookup(vocab))
    starts: list[int] = []  # per character of the model's text: where it starts in `text`
    ends: list[int] = []  # and where it ends
    for n, (s, e) in enumerate(pieces):
        if n:  # the joining space
            starts.append(pieces[n - 1][1])
            ends.append(s)
        starts.extend(range(s, e))
        ends.extend(range(s + 1, e + 1))
    flat = " ".join(text[s:e] for s, e in pieces)
    return [(starts[s], ends[e - 1]) for s, e in _vocab_spans(vocab, flat)]


def _vocab_spans(vocab, text: str) -> list[Span]:
    """Offsets in `text` of the tokens of `vocab.tokenize(text)`."""
    if vocab.kind in ("bpe", "wordpiece", "bert_wordpiece"):  # HF tokenizers align them through normalizers
        return list(vocab._tok.encode(text, add_special_tokens=False).offsets)  # no [CLS]/[SEP] (0, 0)
    lowered, origin = text, None
    if vocab.lowercase:
        lowered = text.lower()
        if len(lowered) != len(text):  # a character that lowercases to two (İ): map them back
            origin = [i for i, c in enumerate(text) for _ in c.lower()] + [len(text)]
    unit = vocab.unit if vocab.kind == "ngrams" else vocab.kind
    if unit == "word":
        spans = [m.span() for m in re.finditer(vocab.pattern, lowered)]
    elif vocab.keep_spaces:  # whitespace runs between characters are one " " token each
        spans = [m.span() for m in re.finditer(r"\s+|\S", lowered.strip())]
        lead = len(lowered) - len(lowered.lstrip())
        spans = [(s + lead, e + lead) for s, e in spans]
    else:
        spans = [(i, i + 1) for i, c in enumerate(lowered) if not c.isspace()]
    if origin is None:
        return spans
    return [(origin[s], origin[e - 1] + 1) for s, e in spans]


def note_cuts(records: list[dict], full: list, kept: list, piece: int | None) -> None:
    """Mark the records of texts the model did not read whole in one pass: "truncated": {"length",
    "kept"} in vocabulary ids when data.max_length cut the text, "pieces": N when it was scored
    as N pieces of at most `piece` ids whose probabilities were averaged (weighted by length)."""
    for record, ids, scored in zip(records, full, kept):
        if len(scored) < len(ids):
            record["truncated"] = {"length": len(ids), "kept": len(scored)}
        if piece is not None and len(scored) > piece:
            record["pieces"] = -(-len(scored) // piece)
