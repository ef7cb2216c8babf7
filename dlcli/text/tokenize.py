"""Raw text -> tokens with character offsets: a rule-based, Penn-Treebank-like tokenizer.

Word-level models are trained on tokenized text (CoNLL-2003, SST, TREC: `Moscow .`, `do n't`,
`John 's`), while people give them raw sentences. `tokenize` splits raw text the same way:
punctuation off words, the clitics n't 's 're 've 'll 'd 'm off their word, and keeps numbers
(3.14, 1,000, 10:30, 1/2), URLs, e-mail addresses, @handles and #hashtags, abbreviations (U.S.,
e.g., Mr., Corp.) and hyphenated words (CoNLL-2003 keeps `well-known`) whole. Tokens are (start,
end) offsets into the string given, end exclusive, so `text[start:end]` is always the token as
written, whatever a model does to it afterwards (lowercasing, digit normalisation). Applying it to
its own output joined by spaces gives the same tokens again.

Whitespace is what `str.split` splits on (str.isspace), in every mode.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Span = tuple[int, int]

MODES = ("auto", "whitespace")

# Trailing pieces a word may carry in several scripts: combining marks (NFD accents).
_MARKS = "\u0300-\u036f"
_WORD = rf"\w[\w{_MARKS}]*"
_END = rf"(?![\w{_MARKS}])"
_CLITIC = rf"(?i:['’](?:s|re|ve|ll|d|m)){_END}"
_NOT = rf"(?i:n['’]t){_END}"
_TITLES = ("Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Inc|Corp|Ltd|Co|Bros|vs|etc|Gen|Gov|Sen|Rep|Col|Lt|Sgt|Capt|Mt|Ft|"
           "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|Calif|Fla|Ga|Mich|Minn|Tenn|Tex|Conn|Ariz|Colo|Okla|Wis")
# Emoji and other symbols keep what modifies them: variation selectors, skin tones, keycaps, and
# further symbols joined by a zero-width joiner (one family emoji is one token).
_SYMBOL = r"[^\w\s](?:[\ufe0e\ufe0f\u20e3\U0001F3FB-\U0001F3FF]|\u200d[^\w\s])*"

_LETTER = r"[^\W\d_]"
# What ends a sentence: a period, then only closing quotes and brackets. There, Treebank style
# splits the period off an abbreviation (`in the U.S.` -> `U.S .`, `Inc.` -> `Inc .`).
_CLOSING_END = r"(?:\s*[\"'”’)\]])*\s*\Z"
_FINAL = rf"\.{_CLOSING_END}"

_TOKEN = re.compile("|".join([
    # Most tokens: letters up to a space or a punctuation mark that no rule joins to them. First,
    # so that they skip the rules below (the e-mail rule alone would scan each word twice).
    rf"{_LETTER}+(?=[\s,;!?)\]\"]|\Z)",
    r"(?:https?|ftp)://[^\s<>\"']*[^\s<>\"'.,;:!?()\[\]{}]",  # URLs, without trailing punctuation
    r"www\.[^\s<>\"']*[^\s<>\"'.,;:!?()\[\]{}]",
    r"\w[\w.+-]*@\w[\w-]*(?:\.\w[\w-]*)+",  # e-mail addresses
    r"[@#]\w+",  # handles and hashtags
    r"\A\d{1,3}[.=](?=\s)",  # a list's or a ranking's number opening the line: `3. Lopez`, `1= Smith`
    # numbers and what joins them: 3.14 1,000 10:30 1/2 1930s 6,739-yard 9.5-0-44-1 +0.435
    r"(?:(?<!\S)\+)?\d\w*(?:[-.,:/]\w+)*",
    r"(?<!\S)\.\d+",  # .596
    r"[A-Z]{1,3}\$",  # C$ US$
    rf"(?:{_LETTER}\.)+{_LETTER}(?={_FINAL})",  # U.S|. at the end
    rf"(?:{_LETTER}\.)+{_LETTER}(?![\w.])",  # U.S without its period: as written, or split above
    rf"(?:{_LETTER}\.){{2,}}",  # U.S. e.g. i.e.
    # Mr. Corp. (but at the end, `Corp.` is `Corp|.`); the lookahead first spares the other words
    # the case-insensitive list
    rf"(?=[A-Za-z]{{2,5}}\.)(?i:{_TITLES})\.(?!{_CLOSING_END})",
    r"[A-Z]\.(?=\s+[A-Z])",  # an initial: John F. Kennedy
    rf"\w[\w{_MARKS}]*?(?={_NOT})",  # the word before n't: do|n't, ca|n't
    _NOT,
    _CLITIC,
    rf"{_WORD}(?:(?:-|['’](?!(?i:s|re|ve|ll|d|m){_END}))[\w{_MARKS}]+)*",  # well-known, O'Neill
    r"\.{2,}|-{2,}|…",  # ellipses and dashes
    _SYMBOL,
]))
_CHUNK = re.compile(r"\S+")


def tokenize(text: str, known: Callable[[str], bool] | None = None) -> list[Span]:
    """Token offsets of raw `text`. With `known` (a model's vocabulary lookup), a whitespace-separated
    chunk that it knows whole stays one token: a model trained on `don't` or `Corp.` gets them as
    it saw them."""
    spans = [m.span() for m in _TOKEN.finditer(text)]
    if known is None:
        return spans
    # Every non-space character is in a token, so the tokens of one whitespace-separated chunk
    # touch each other and a gap between two tokens is where a chunk ends.
    out: list[Span] = []
    first, n = 0, len(spans)
    for j in range(1, n + 1):
        if j < n and spans[j][0] == spans[j - 1][1]:
            continue
        start, end = spans[first][0], spans[j - 1][1]
        if j - first > 1 and known(text[start:end]):
            out.append((start, end))
        else:
            out.extend(spans[first:j])
        first = j
    return out


def whitespace_tokens(text: str) -> list[Span]:
    """Offsets of the whitespace-separated tokens of already tokenized text (str.split's tokens)."""
    return [m.span() for m in _CHUNK.finditer(text)]


def characters(text: str) -> list[Span]:
    """Offsets of every non-space character: the tokens of a character-level (Chinese) model."""
    return [(i, i + 1) for i, c in enumerate(text) if not c.isspace()]


def word_lookup(index, lowercase: bool) -> Callable[[str], bool]:
    """`tokenize`'s `known` for a word vocabulary: whether its index holds a chunk, lowercased as
    the vocabulary lowercases."""
    if lowercase:
        return lambda chunk: chunk.lower() in index
    return lambda chunk: chunk in index


def token_spans(text: str, mode: str, known: Callable[[str], bool] | None = None) -> list[Span]:
    """Word-token offsets in a `--tokenize` mode: auto (raw text, `tokenize`) or whitespace."""
    return tokenize(text, known) if mode == "auto" else whitespace_tokens(text)


def check_mode(mode: str) -> None:
    from dlcli.errors import RecipeError

    if mode not in MODES:
        raise RecipeError(f"--tokenize: {mode!r} is not auto or whitespace",
                          "auto for raw text, whitespace for text already split into tokens")

