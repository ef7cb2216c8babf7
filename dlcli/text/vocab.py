"""Text -> token ids: word, character and trained subword (BPE / WordPiece) encoders.

An encoder is built from the training texts by a registered builder (`vocab.type` in a recipe)
and round-trips through a plain dict stored in the checkpoint (`vocabularies.from_dict`).
Ids 0 and 1 are padding and unknown; the optional BOS/EOS specials come next (2, then 3), so
vocabularies without them keep the ids of older checkpoints. `encode` never adds the specials:
`wrap(ids)` does, and `decode` drops them again (and padding).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SUBWORD_SPECIALS = {PAD: "[PAD]", UNK: "[UNK]", BOS: "[BOS]", EOS: "[EOS]"}
# Words with inner apostrophes stay whole ("don't", "n't", "'s"); other punctuation splits off.
WORD_PATTERN = r"\w+(?:['’]\w+)*|['’]\w+|[^\w\s]"
WHITESPACE_SPLIT = r"\S+"  # a pre-tokenized corpus: words are what whitespace separates


def specials(bos: bool = False, eos: bool = False) -> list[str]:
    return [PAD, UNK] + [BOS] * bos + [EOS] * eos


def _wrap(ids: Iterable[int], bos_id: int | None, eos_id: int | None) -> list[int]:
    return [bos_id] * (bos_id is not None) + list(ids) + [eos_id] * (eos_id is not None)


class TokenVocab:
    """Word or character tokens mapped through a frequency-ranked vocabulary (0 = pad, 1 = unk,
    then BOS and EOS when `bos` / `eos`: `tokens` must already hold them there).

    Characters drop whitespace, unless keep_spaces: then each run of it is one " " token, so a
    character model sees where words end (leading and trailing whitespace is still dropped).
    """

    pad_id = 0
    compilable = False  # encode_flat (compiled featurizing) exists for NgramVocab only
    unk_id = 1

    def __init__(self, kind: str, tokens: list[str], lowercase: bool, pattern: str | None,
                 keep_spaces: bool = False, *, bos: bool = False, eos: bool = False):
        self.kind = kind
        self.tokens = tokens
        self.lowercase = lowercase
        self.pattern = pattern
        self.keep_spaces = keep_spaces
        self.bos_id = 2 if bos else None
        self.eos_id = 2 + bos if eos else None
        self.index = {t: i for i, t in enumerate(tokens)}
        # `\S+` is str.split: both split on Py_UNICODE_ISSPACE, and split runs without the regex engine.
        self._regex = re.compile(pattern) if kind == "word" and pattern != WHITESPACE_SPLIT else None
        self._separator = " " if kind == "word" else ""  # keep_spaces' " " tokens carry the spaces
        self._silent = {self.pad_id, self.bos_id, self.eos_id} - {None}  # ids decode drops

    @property
    def size(self) -> int:
        return len(self.tokens)

    def tokenize(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        if self._regex is not None:
            return self._regex.findall(text)
        if self.kind == "word":
            return text.split()
        if self.keep_spaces:
            return list(" ".join(text.split()))
        return list("".join(text.split()))  # str.split's whitespace is str.isspace's, at C speed

    def encode(self, text: str) -> list[int]:
        get, unk = self.index.get, self.unk_id
        return [get(t, unk) for t in self.tokenize(text)]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def wrap(self, ids: Iterable[int]) -> list[int]:
        """`ids` between BOS and EOS, each only if this vocabulary has it."""
        return _wrap(ids, self.bos_id, self.eos_id)

    def decode(self, ids: Iterable[int]) -> str:
        """The tokens of `ids` joined by one space (words) or nothing (characters), without
        padding, BOS and EOS; an unknown id gives "<unk>"."""
        silent, tokens = self._silent, self.tokens
        return self._separator.join(tokens[i] for i in map(int, ids) if i not in silent)

    def decode_batch(self, batch: Iterable[Iterable[int]]) -> list[str]:
        return [self.decode(ids) for ids in batch]

    def to_dict(self) -> dict:
        # One newline-joined string (tokens never hold a newline; keep_spaces' " " is the only
        # whitespace one): checkpoints unpickle it at once, where a list of 100k strings takes the
        # weights-only unpickler most of a second.
        data = {"type": self.kind, "size": self.size, "lowercase": self.lowercase,
                "pattern": self.pattern, "tokens": "\n".join(self.tokens)}
        knobs = {"keep_spaces": self.keep_spaces, "bos": self.bos_id is not None, "eos": self.eos_id is not None}
        data.update({k: True for k, on in knobs.items() if on})  # absent when off, as before the knobs
        return data


class SubwordVocab:
    """A BPE or WordPiece tokenizer trained with HF `tokenizers`; stored as its JSON.

    Its BOS/EOS ids are looked up in the tokenizer, so the JSON alone says whether it has them
    (the pre-tokenizer splits "[" off, so no learned piece can be named "[BOS]").
    """

    pad_id = 0
    compilable = False  # encode_flat (compiled featurizing) exists for NgramVocab only
    unk_id = 1

    def __init__(self, kind: str, tokenizer_json: str, lowercase: bool):
        from tokenizers import Tokenizer

        self.kind = kind
        self.lowercase = lowercase
        self.tokenizer_json = tokenizer_json
        self._tok = Tokenizer.from_str(tokenizer_json)
        self.bos_id = self._tok.token_to_id(SUBWORD_SPECIALS[BOS])
        self.eos_id = self._tok.token_to_id(SUBWORD_SPECIALS[EOS])
        self._silent = {self.pad_id, self.bos_id, self.eos_id} - {None}

    @property
    def size(self) -> int:
        return self._tok.get_vocab_size()

    def tokenize(self, text: str) -> list[str]:
        return self._tok.encode(text).tokens

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts)]

    def wrap(self, ids: Iterable[int]) -> list[int]:
        """`ids` between BOS and EOS, each only if this vocabulary has it."""
        return _wrap(ids, self.bos_id, self.eos_id)

    def decode(self, ids: Iterable[int]) -> str:
        """The tokenizer's decoder over `ids` without padding, BOS and EOS; unknown pieces show as
        "[UNK]" (in BPE one has no word-end mark, so it runs into the next word). BPE vocabularies
        trained before pieces marked word ends ("</w>") decode with all words run together."""
        return self._tok.decode(self._spoken(ids), skip_special_tokens=False)

    def decode_batch(self, batch: Iterable[Iterable[int]]) -> list[str]:
        return self._tok.decode_batch([self._spoken(ids) for ids in batch], skip_special_tokens=False)

    def _spoken(self, ids: Iterable[int]) -> list[int]:
        return [i for i in map(int, ids) if i not in self._silent]

    def to_dict(self) -> dict:
        return {"type": self.kind, "size": self.size, "lowercase": self.lowercase,
                "tokenizer_json": self.tokenizer_json}


def _ranked(counts: Counter, min_freq: int, max_size: int | None, first: list[str] | None = None) -> list[str]:
    """`first` (the specials, PAD and UNK by default), then the tokens seen `min_freq` times, most
    frequent first; `max_size` counts the specials."""
    first = first or specials()
    types = list(counts)
    kept = ranked_ids(types, np.fromiter(counts.values(), np.int64, len(types)), min_freq, max_size, len(first))
    return first + [types[i] for i in kept]


def ranked_ids(types: Sequence[str], counts: np.ndarray, min_freq: int, max_size: int | None,
               reserved: int) -> np.ndarray:
    """Indices into `types` (distinct tokens) of those whose count is at least `min_freq`, most
    frequent first, ties by the token, at most `max_size` - `reserved` of them (`reserved`: the
    specials that share max_size). Only the kept tokens are sorted."""
    counts = np.asarray(counts)
    kept = np.flatnonzero(counts >= min_freq)
    order = sorted(zip((-counts[kept]).tolist(), [types[i] for i in kept], kept.tolist()))
    if max_size is not None:
        order = order[: max(0, max_size - reserved)]
    return np.asarray([i for _, _, i in order], dtype=np.int64)


def build_word_vocab(
    texts: Iterable[str], *, lowercase: bool = False, pattern: str = WORD_PATTERN,
    min_freq: int = 1, max_size: int | None = None, bos: bool = False, eos: bool = False,
) -> TokenVocab:
    probe = TokenVocab("word", specials(), lowercase, pattern)
    counts = Counter(t for text in texts for t in probe.tokenize(text))
    return TokenVocab("word", _ranked(counts, min_freq, max_size, specials(bos, eos)), lowercase, pattern,
                      bos=bos, eos=eos)


def build_char_vocab(
    texts: Iterable[str], *, lowercase: bool = False, min_freq: int = 1, max_size: int | None = None,
    keep_spaces: bool = False, bos: bool = False, eos: bool = False,
) -> TokenVocab:
    probe = TokenVocab("char", specials(), lowercase, None, keep_spaces)
    counts = Counter(t for text in texts for t in probe.tokenize(text))
    return TokenVocab("char", _ranked(counts, min_freq, max_size, specials(bos, eos)), lowercase, None,
                      keep_spaces, bos=bos, eos=eos)


def _build_subword(kind: str, texts: Iterable[str], vocab_size: int, lowercase: bool, min_freq: int,
                   bos: bool, eos: bool) -> SubwordVocab:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    # The trainer numbers its special tokens first, in this order: [PAD] 0, [UNK] 1, [BOS], [EOS].
    pieces = [SUBWORD_SPECIALS[t] for t in specials(bos, eos)]
    if kind == "bpe":
        # Word-final pieces carry "</w>", so that the decoder knows where to put the spaces back.
        tok = Tokenizer(models.BPE(unk_token="[UNK]", end_of_word_suffix="</w>"))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_freq, special_tokens=pieces,
                                      end_of_word_suffix="</w>", show_progress=False)
        tok.decoder = decoders.BPEDecoder(suffix="</w>")
    else:
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_freq,
                                            special_tokens=pieces, show_progress=False)
        tok.decoder = decoders.WordPiece()
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(list(texts), trainer=trainer)
    return SubwordVocab(kind, tok.to_str(), lowercase)


def build_bpe_vocab(texts: Iterable[str], *, vocab_size: int = 8000, lowercase: bool = False,
                    min_freq: int = 2, bos: bool = False, eos: bool = False) -> SubwordVocab:
    return _build_subword("bpe", texts, vocab_size, lowercase, min_freq, bos, eos)


def build_wordpiece_vocab(texts: Iterable[str], *, vocab_size: int = 8000, lowercase: bool = False,
                          min_freq: int = 2, bos: bool = False, eos: bool = False) -> SubwordVocab:
    return _build_subword("wordpiece", texts, vocab_size, lowercase, min_freq, bos, eos)


def token_list(data: dict) -> list[str]:
    tokens = data["tokens"]
    return tokens.split("\n") if isinstance(tokens, str) else list(tokens)  # a list: older checkpoints


def token_vocab_from_dict(data: dict) -> TokenVocab:
    """A word or char vocabulary from its `to_dict()`; keys an older file lacks mean the knob is off."""
    return TokenVocab(data["type"], token_list(data), bool(data["lowercase"]), data.get("pattern"),
                      bool(data.get("keep_spaces", False)), bos=bool(data.get("bos", False)),
                      eos=bool(data.get("eos", False)))


def subword_vocab_from_dict(data: dict) -> SubwordVocab:
    return SubwordVocab(data["type"], data["tokenizer_json"], bool(data["lowercase"]))
