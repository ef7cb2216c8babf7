"""fastText's input features: words, hashed word n-grams and hashed character n-grams.

Joulin et al. 2017 (word n-grams hashed into buckets) and Bojanowski et al. 2017 (character
n-grams of `<word>` for subword information). A text becomes one bag of ids: its vocabulary
words, then the character n-grams of every token (out-of-vocabulary ones included), then its
word n-grams. Ids >= the word count index a shared table of `buckets` hashed rows, so the
embedding has `len(tokens) + buckets` rows. Hashes are CRC-32 (stable across processes and
platforms), combined for n-grams with a multiplier in 64-bit wrap-around arithmetic; they are
not fastText's FNV values, so fastText `.bin` files cannot be read, but its `.vec` text files can
initialise the word rows (`data.vectors`).
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable
from itertools import chain, repeat

import numpy as np

from dlcli.errors import RecipeError
from dlcli.text.vocab import PAD, UNK, WORD_PATTERN, TokenVocab, _ranked, token_list

NGRAM_MULTIPLIER = np.uint64(116_049_371)
WHITESPACE = r"\S+"  # vocab.pattern for text that is already tokenized
SUBWORD_CACHE = 200_000  # out-of-vocabulary tokens whose character n-grams are remembered


class NgramVocab(TokenVocab):
    """A word or character vocabulary whose `encode` gives fastText's bag of feature ids."""

    def __init__(self, tokens: list[str], lowercase: bool, pattern: str | None, *, unit: str,
                 word_ngrams: int, buckets: int, minn: int, maxn: int):
        super().__init__(unit, tokens, lowercase, pattern)  # tokenizes as a word or char vocabulary
        self.kind, self.unit = "ngrams", unit
        self.word_ngrams = word_ngrams
        self.minn, self.maxn = minn, maxn
        hashed = word_ngrams > 1 or maxn > 0
        self.buckets = buckets if hashed else 0
        self.num_words = len(tokens)
        self._subwords: dict[str, np.ndarray] = {}
        # encode_batch compiles when set: build_ngram_vocab sets it for a training run, which
        # loads numba anyway; prediction calls encode_flat itself, on large inputs only.
        self.compiled = False
        self._compiled_table = None  # the vocabulary as encode_flat's hash table, built on first use

    @property
    def size(self) -> int:
        return self.num_words + self.buckets

    def _bucket(self, value: int) -> int:
        return self.num_words + value % self.buckets

    def subwords(self, token: str) -> np.ndarray:
        """Hashed ids of the character n-grams (minn..maxn) of `<token>`."""
        found = self._subwords.get(token)
        if found is None:
            marked = f"<{token}>"
            grams = {marked[i : i + n] for n in range(self.minn, self.maxn + 1)
                     for i in range(len(marked) - n + 1)} - {marked}
            found = np.array(sorted(self._bucket(zlib.crc32(g.encode("utf-8", "surrogatepass"))) for g in grams),
                             dtype=np.int64)
            if len(self._subwords) >= SUBWORD_CACHE:
                self._subwords.clear()
            self._subwords[token] = found
        return found

    def tokenize(self, text: str) -> list[str]:
        if self.pattern == WHITESPACE:  # fastText's own tokenization, at str.split speed
            return (text.lower() if self.lowercase else text).split()
        return super().tokenize(text)

    def encode(self, text: str) -> np.ndarray:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's bag: its vocabulary words, the character n-grams of its tokens, then its word
        n-grams. Computed over all texts' tokens at once: NumPy's per-call cost, paid per text,
        was most of the time on short texts."""
        if self.compiled and self.compilable:
            flat, sizes = self.encode_flat(texts)
            return _pieces(flat, np.cumsum(sizes))
        token_lists = [self.tokenize(t) for t in texts]
        counts = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(texts))
        tokens = list(chain.from_iterable(token_lists))
        owner = np.repeat(np.arange(len(texts)), counts)  # the text of each token
        keys = np.fromiter(map(self.index.get, tokens, repeat(0)), dtype=np.uint64, count=len(tokens))
        # An unknown token gets a hash key beyond the word ids, so the n-grams over it still count.
        for i in np.flatnonzero(keys == 0).tolist():
            keys[i] = self.num_words + zlib.crc32(tokens[i].encode("utf-8", "surrogatepass"))
        known = keys < self.num_words
        ids, owners = [keys[known].astype(np.int64)], [owner[known]]
        if self.maxn > 0:
            grams = [self.subwords(t) for t in tokens]
            ids.append(np.concatenate(grams) if grams else np.zeros(0, np.int64))
            owners.append(np.repeat(owner, np.fromiter(map(len, grams), dtype=np.int64, count=len(grams))))
        hashed = keys
        for n in range(2, self.word_ngrams + 1):
            hashed = hashed[:-1] * NGRAM_MULTIPLIER + keys[n - 1 :]
            inside = owner[: len(hashed)] == owner[n - 1 :]  # the n tokens belong to one text
            ids.append((hashed[inside] % np.uint64(self.buckets)).astype(np.int64) + self.num_words)
            owners.append(owner[: len(hashed)][inside])
        owner_all = np.concatenate(owners)
        order = np.argsort(owner_all, kind="stable")  # grouped by text, each group in the order above
        flat = np.concatenate(ids)[order]
        ends = np.cumsum(np.bincount(owner_all, minlength=len(texts)))
        return _pieces(flat, ends)

    def decode(self, ids: Iterable[int]) -> str:
        """The vocabulary words of a bag, in order; hashed n-gram ids (>= the word count) have no text."""
        return super().decode(i for i in map(int, ids) if i < self.num_words)

    @property
    def splits_at_whitespace(self) -> bool:
        return self.unit == "word" and self.pattern == WHITESPACE

    @property
    def compilable(self) -> bool:
        """Whether `encode_flat` can encode with this vocabulary (no character n-grams)."""
        return self.splits_at_whitespace and self.maxn == 0

    def encode_flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """encode_batch's bags, concatenated, and each one's size: compiled, for `compilable`
        vocabularies only. Loading numba and the kernels takes ~0.5 s; it pays off on large inputs."""
        from dlcli.kernels import whitespace_ngrams as k

        if self._compiled_table is None:
            self._compiled_table = k.vocabulary_table(self.tokens)
        buf, bounds = k.utf8([t.lower() for t in texts] if self.lowercase else texts)
        starts, ends, owner = k.token_spans(buf, bounds)
        return k.encode(buf, starts, ends, owner, len(texts), *self._compiled_table, self.num_words, self.buckets,
                        self.word_ngrams, NGRAM_MULTIPLIER)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "unit": self.unit, "word_ngrams": self.word_ngrams,
                "buckets": self.buckets, "minn": self.minn, "maxn": self.maxn}


def _pieces(flat: np.ndarray, ends: np.ndarray) -> list[np.ndarray]:
    """np.split(flat, ends[:-1]) by plain slicing, 5x faster on many short pieces."""
    bounds = [0, *ends.tolist()]
    return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def mostly_chinese(texts: list[str], sample: int = 2000) -> bool:
    """True when most letters of (the starts of a sample of) the texts are CJK ideographs."""
    han = letters = 0
    for text in texts[:sample]:
        for ch in text[:200]:
            if ch.isalpha():
                letters += 1
                han += "\u4e00" <= ch <= "\u9fff"  # CJK Unified Ideographs
    return letters > 0 and han / letters > 0.5


def build_ngram_vocab(
    texts: Iterable[str], *, unit: str = "word", lowercase: bool = False, pattern: str = WORD_PATTERN,
    min_freq: int = 1, max_size: int | None = None, word_ngrams: int = 1, buckets: int = 2_000_000,
    minn: int | None = None, maxn: int | None = None,
) -> NgramVocab:
    """`minn`/`maxn` unset: character n-grams 1-2 for Chinese words (a word regex keeps runs of
    Han characters whole, so a clause is one token and its characters carry the meaning), none
    for text already split into characters, or in other languages (fastText's supervised default)."""
    if unit not in ("word", "char"):
        raise RecipeError(f"vocab.unit: word or char, not {unit!r}")
    if word_ngrams < 1 or buckets < 1:
        raise RecipeError("vocab.word_ngrams and vocab.buckets must be >= 1")
    texts = list(texts)
    probe = NgramVocab([PAD, UNK], lowercase, pattern if unit == "word" else None, unit=unit, word_ngrams=1,
                       buckets=1, minn=0, maxn=0)  # its tokenizer: str.split for the whitespace pattern
    if probe.splits_at_whitespace:
        counts = _whitespace_token_counts([t.lower() for t in texts] if lowercase else texts)
    else:
        counts = Counter(chain.from_iterable(map(probe.tokenize, texts)))
    if minn is None and maxn is None:  # on for Chinese words, not for text already split into characters
        long_words = sum(c for t, c in counts.items() if len(t) > 1) > sum(counts.values()) / 2
        minn, maxn = (1, 2) if unit == "word" and long_words and mostly_chinese(texts) else (0, 0)
    minn, maxn = minn or 0, maxn or 0
    if maxn and not 1 <= minn <= maxn:
        raise RecipeError(f"vocab.minn/maxn: need 1 <= minn <= maxn, got {minn}/{maxn}")
    vocab = NgramVocab(_ranked(counts, min_freq, max_size), lowercase, pattern if unit == "word" else None,
                       unit=unit, word_ngrams=word_ngrams, buckets=buckets, minn=minn, maxn=maxn)
    vocab.compiled = True
    return vocab


def _whitespace_token_counts(texts: list[str]) -> dict[str, int]:
    """Counter(t for text in texts for t in text.split()), compiled: only distinct tokens become str."""
    from dlcli.kernels import whitespace_ngrams as k

    buf, bounds = k.utf8(texts)
    starts, ends, _ = k.token_spans(buf, bounds)
    first, last, counts = k.count_tokens(buf, starts, ends)
    data = buf.tobytes()
    return {data[a:b].decode("utf-8", "surrogatepass"): int(c)
            for a, b, c in zip(first.tolist(), last.tolist(), counts.tolist())}


def ngram_vocab_from_dict(data: dict) -> NgramVocab:
    return NgramVocab(token_list(data), bool(data["lowercase"]), data.get("pattern"), unit=data["unit"],
                      word_ngrams=int(data["word_ngrams"]), buckets=int(data["buckets"]) or 1,
                      minn=int(data["minn"]), maxn=int(data["maxn"]))

