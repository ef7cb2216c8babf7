"""Sequence-labelling data: tag schemes, spans, and the file formats taggers live in.

Formats (all read line by line, errors name file:line):
- `conll`: one token per line, columns separated by whitespace (or `data.column_separator`), a
  blank line between sentences, `-DOCSTART-` lines skipped. Chinese `char<TAB>tag` files are the
  two-column case.
- `segmented`: one sentence per line, words separated by spaces; read as characters with
  B/M/E/S tags (a word segmenter's training data), written back by joining words.
- `word_tag`: one sentence per line of `word/TAG` tokens (People's Daily POS style).

Spans follow conlleval exactly (the CoNLL shared-task scorer, which seqeval mirrors): an `I-X`
after `O` or after another type opens a new span, so ill-formed gold data is scored as conlleval
would score it, not repaired.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate, chain, repeat
from pathlib import Path

from dlcli.errors import DataError
from dlcli.text.readers import decoded_lines, open_binary

SCHEMES = ("bio", "iob1", "bioes", "bmes", "none")  # none: one label per token (POS), no spans
DOCSTART = "-DOCSTART-"
# Where a long sentence is preferably cut: after sentence or clause punctuation.
BOUNDARIES = frozenset("。！？；，、.!?;,:：")


@dataclass(slots=True)
class Sentence:
    tokens: list[str]
    tags: list[str] | None
    line: int  # first line of the sentence in its file
    features: list[list[str]] = field(default_factory=list)  # extra input columns, one list per column


# ---------------------------------------------------------------- tags and spans


def split_tag(tag: str) -> tuple[str, str]:
    """`B-PER` -> ("B", "PER"); `O` -> ("O", ""); untyped segmentation tags `B` -> ("B", "")."""
    if tag == "O":
        return "O", ""
    prefix, _, kind = tag.partition("-")
    prefix = prefix.upper()
    return ("I" if prefix == "M" else prefix), kind  # BMES's M is BIOES's I


def spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """(start, end exclusive, type) of every chunk, by conlleval's start/end-of-chunk rules."""
    out = []
    prev, prev_kind, begin = "O", "", 0
    for i, tag in enumerate([*tags, "O"]):
        cur, kind = split_tag(tag)
        if prev != "O" and (prev in "ES" or (prev in "BI" and cur in "BSO") or prev_kind != kind):
            out.append((begin, i, prev_kind))
        if cur != "O" and (cur in "BS" or (cur in "IE" and prev in "ESO") or prev_kind != kind):
            begin = i
        prev, prev_kind = cur, kind
    return out


def convert_scheme(tags: list[str], source: str, target: str) -> list[str]:
    """Re-tag one sentence between iob1, bio, bioes and bmes via its spans."""
    if source == target:
        return list(tags)
    if "none" in (source, target):
        raise ValueError("per-token labels (scheme none) have no spans to convert")
    out = ["O"] * len(tags)
    inside = "M" if target == "bmes" else "I"
    previous_end, previous_kind = -1, None
    for start, end, kind in spans(tags):
        suffix = f"-{kind}" if kind else ""
        if target in ("bioes", "bmes"):
            if end - start == 1:
                out[start] = "S" + suffix
            else:
                out[start], out[end - 1] = "B" + suffix, "E" + suffix
                out[start + 1: end - 1] = [inside + suffix] * (end - start - 2)
        else:
            out[start: end] = ["I" + suffix] * (end - start)
            if target == "bio" or (previous_end == start and previous_kind == kind):
                out[start] = "B" + suffix  # iob1 uses B- only between two adjacent same-type spans
        previous_end, previous_kind = end, kind
    return out


def ill_formed(tags: list[str], scheme: str) -> int | None:
    """Index of the first tag that opens a span the scheme says must be continued (`I-X` after
    `O` in BIO, ...), or None. Such spans are scored as conlleval does; callers report them."""
    if scheme in ("iob1", "none"):
        return None
    prev, prev_kind = "O", ""
    for i, tag in enumerate(tags):
        cur, kind = split_tag(tag)
        if cur in "IE" and (prev in "ESO" or prev_kind != kind):
            return i
        prev, prev_kind = cur, kind
    return None


def words_to_bmes(words: list[str]) -> tuple[list[str], list[str]]:
    chars, tags = [], []
    for word in words:
        chars.extend(word)
        tags.extend(["S"] if len(word) == 1 else ["B", *["M"] * (len(word) - 2), "E"])
    return chars, tags


def join_spans(tokens: list[str], tags: list[str], sep: str = "") -> list[str]:
    """The words a segmenter's tags describe; tokens outside any span stay words of their own."""
    words, at = [], 0
    for start, end, _ in spans(tags):
        words.extend(tokens[at:start])
        words.append(sep.join(tokens[start:end]))
        at = end
    words.extend(tokens[at:])
    return words


def split_long(n: int, max_length: int | None, tokens: list[str],
               costs: list[int] | None = None) -> list[tuple[int, int]]:
    """Cut a sentence of n tokens into [start, end) pieces of at most max_length tokens, after
    the last punctuation mark inside each window where there is one (one that keeps more than half
    the window). No token is dropped. `costs`: each token's share of max_length instead of 1 (its
    WordPiece count, for a BERT tagger); a token costing more than max_length is a piece alone."""
    if not max_length or (n <= max_length if costs is None else sum(costs) <= max_length):
        return [(0, n)]
    prefix = list(accumulate(costs if costs is not None else repeat(1, n), initial=0))
    half = max_length // 2
    pieces, start = [], 0
    while prefix[n] - prefix[start] > max_length:
        end = max(start + 1, bisect_right(prefix, prefix[start] + max_length) - 1)
        cut = end
        for i in range(end - 1, start, -1):
            if prefix[i] - prefix[start] <= half:
                break
            if tokens[i] in BOUNDARIES:
                cut = i + 1
                break
        pieces.append((start, cut))
        start = cut
    pieces.append((start, n))
    return pieces


# ---------------------------------------------------------------- readers


def read_tagged(path: str | Path, cfg) -> list[Sentence]:
    """Read a labelled tagging file as `cfg` (the tag data section) says."""
    source = str(path)
    parse = _PARSERS.get(cfg.format)
    if parse is None:
        raise DataError(f"unknown tagging data format {cfg.format!r}", "use conll, segmented or word_tag")
    with open_binary(path) as fh:
        sentences = list(parse(decoded_lines(fh, source, cfg.encoding), source, cfg))
    if not sentences:
        raise DataError(f"{source}: no sentences found", "is it empty, or is data.format wrong?")
    _check_tags(sentences, cfg.tag_scheme, source, per_line=cfg.format == "conll")
    return sentences


_PREFIXES = {"bio": "BI", "iob1": "BI", "bioes": "BIES", "bmes": "BMES"}


def _check_tags(sentences: list[Sentence], scheme: str, source: str, per_line: bool) -> None:
    """Every tag must be O or PREFIX[-TYPE] with a prefix the scheme has."""
    prefixes = _PREFIXES.get(scheme)
    if prefixes is None:
        return
    for s in sentences:
        for i, tag in enumerate(s.tags):
            prefix, _, _ = tag.partition("-")
            if tag != "O" and (len(prefix) != 1 or prefix not in prefixes):
                line = s.line + i if per_line else s.line
                raise DataError(f"{source}:{line}: tag {tag!r} is not a {scheme.upper()} tag",
                                f"{scheme.upper()} tags are O or {'/'.join(prefixes)}-TYPE; set data.tag_scheme "
                                "to the file's scheme (bio, iob1, bioes, bmes, or none for POS-style labels)")


def _conll(lines: Iterable[tuple[int, str]], source: str, cfg) -> Iterator[Sentence]:
    sep = cfg.column_separator or None
    feature_columns = list(cfg.feature_columns)
    rows: list[list[str]] = []
    first = width = 0
    for number, line in chain(lines, [(0, "")]):  # the sentinel ends the last sentence
        fields = line.split(sep) if line.strip() else []
        if fields and fields[0] == DOCSTART:
            fields = []
        if fields:
            if not rows:
                first, width = number, len(fields)
            elif len(fields) != width:
                raise DataError(f"{source}:{number}: {len(fields)} columns where the sentence started "
                                f"with {width} (line {first})", "every token line needs the same columns")
            rows.append(fields)
            continue
        if rows:
            yield _sentence_from_rows(rows, first, source, cfg, feature_columns)
            rows = []


def _sentence_from_rows(rows, first: int, source: str, cfg, feature_columns: list[int]) -> Sentence:
    width = len(rows[0])
    tag_column = cfg.tag_column if cfg.tag_column >= 0 else width + cfg.tag_column
    for column in (cfg.token_column, tag_column, *feature_columns):
        if not 0 <= column < width:
            raise DataError(f"{source}:{first}: column {column} does not exist (lines have {width})",
                            "check data.token_column / data.tag_column / data.feature_columns")
    return Sentence([r[cfg.token_column] for r in rows], [r[tag_column] for r in rows], first,
                    [[r[c] for r in rows] for c in feature_columns])


def _segmented(lines: Iterable[tuple[int, str]], source: str, cfg) -> Iterator[Sentence]:
    for number, line in lines:
        words = line.split()
        if words:
            chars, tags = words_to_bmes(words)
            yield Sentence(chars, tags, number)


def _word_tag(lines: Iterable[tuple[int, str]], source: str, cfg) -> Iterator[Sentence]:
    for number, line in lines:
        tokens, tags = [], []
        for item in line.split():
            word, slash, tag = item.rpartition("/")
            if not slash or not word or not tag:
                raise DataError(f"{source}:{number}: {item!r} is not word/TAG",
                                "People's Daily style: 迈向/v 充满/v 希望/n")
            tokens.append(word)
            tags.append(tag)
        if tokens:
            yield Sentence(tokens, tags, number)


_PARSERS = {"conll": _conll, "segmented": _segmented, "word_tag": _word_tag}
FORMATS = tuple(_PARSERS)
