"""Text -> token ids: word, character and trained subword (BPE / WordPiece) encoders.

An encoder is built from the training texts by a registered builder (`vocab.type` in a recipe)
and round-trips through a plain dict stored in the checkpoint.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

PAD, UNK = "<pad>", "<unk>"
# Words with inner apostrophes stay whole ("don't", "n't", "'s"); other punctuation splits off.
WORD_PATTERN = r"\w+(?:['’]\w+)*|['’]\w+|[^\w\s]"


class TokenVocab:
    """Word or character tokens mapped through a frequency-ranked vocabulary (0 = pad, 1 = unk).

    Characters drop whitespace, unless keep_spaces: then each run of it is one " " token, so a
    character model sees where words end (leading and trailing whitespace is still dropped).
    """

    pad_id = 0
    unk_id = 1

    def __init__(self, kind: str, tokens: list[str], lowercase: bool, pattern: str | None,
                 keep_spaces: bool = False):
        self.kind = kind
        self.tokens = tokens
        self.lowercase = lowercase
        self.pattern = pattern
        self.keep_spaces = keep_spaces
        self.index = {t: i for i, t in enumerate(tokens)}
        self._regex = re.compile(pattern) if kind == "word" else None

    @property
    def size(self) -> int:
        return len(self.tokens)

    def tokenize(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        if self._regex is not None:
            return self._regex.findall(text)
        if self.keep_spaces:
            return list(" ".join(text.split()))
        return list("".join(text.split()))  # str.split's whitespace is str.isspace's, at C speed

    def encode(self, text: str) -> list[int]:
        get, unk = self.index.get, self.unk_id
        return [get(t, unk) for t in self.tokenize(text)]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def to_dict(self) -> dict:
        # One newline-joined string (tokens never hold a newline; keep_spaces' " " is the only
        # whitespace one): checkpoints unpickle it at once, where a list of 100k strings takes the
        # weights-only unpickler most of a second.
        data = {"type": self.kind, "size": self.size, "lowercase": self.lowercase,
                "pattern": self.pattern, "tokens": "\n".join(self.tokens)}
        if self.keep_spaces:  # absent otherwise, as in files written before the knob
            data["keep_spaces"] = True
        return data


class SubwordVocab:
    """A BPE or WordPiece tokenizer trained with HF `tokenizers`; stored as its JSON."""

    pad_id = 0
    unk_id = 1

    def __init__(self, kind: str, tokenizer_json: str, lowercase: bool):
        from tokenizers import Tokenizer

        self.kind = kind
        self.lowercase = lowercase
        self.tokenizer_json = tokenizer_json
        self._tok = Tokenizer.from_str(tokenizer_json)

    @property
    def size(self) -> int:
        return self._tok.get_vocab_size()

    def tokenize(self, text: str) -> list[str]:
        return self._tok.encode(text).tokens

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts)]

    def to_dict(self) -> dict:
        return {"type": self.kind, "size": self.size, "lowercase": self.lowercase,
                "tokenizer_json": self.tokenizer_json}


def _ranked(counts: Counter, min_freq: int, max_size: int | None) -> list[str]:
    ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
    specials = [PAD, UNK]
    if max_size is not None:
        ranked = ranked[: max(0, max_size - len(specials))]
    return specials + ranked


def build_word_vocab(
    texts: Iterable[str], *, lowercase: bool = False, pattern: str = WORD_PATTERN,
    min_freq: int = 1, max_size: int | None = None,
) -> TokenVocab:
    probe = TokenVocab("word", [PAD, UNK], lowercase, pattern)
    counts = Counter(t for text in texts for t in probe.tokenize(text))
    return TokenVocab("word", _ranked(counts, min_freq, max_size), lowercase, pattern)


def build_char_vocab(
    texts: Iterable[str], *, lowercase: bool = False, min_freq: int = 1, max_size: int | None = None,
    keep_spaces: bool = False,
) -> TokenVocab:
    probe = TokenVocab("char", [PAD, UNK], lowercase, None, keep_spaces)
    counts = Counter(t for text in texts for t in probe.tokenize(text))
    return TokenVocab("char", _ranked(counts, min_freq, max_size), lowercase, None, keep_spaces)


def _build_subword(kind: str, texts: Iterable[str], vocab_size: int, lowercase: bool,
                   min_freq: int) -> SubwordVocab:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    specials = ["[PAD]", "[UNK]"]
    if kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_freq,
                                      special_tokens=specials, show_progress=False)
        tok.decoder = decoders.BPEDecoder()
    else:
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_freq,
                                            special_tokens=specials, show_progress=False)
        tok.decoder = decoders.WordPiece()
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(list(texts), trainer=trainer)
    return SubwordVocab(kind, tok.to_str(), lowercase)


def build_bpe_vocab(texts: Iterable[str], *, vocab_size: int = 8000, lowercase: bool = False,
                    min_freq: int = 2) -> SubwordVocab:
    return _build_subword("bpe", texts, vocab_size, lowercase, min_freq)


def build_wordpiece_vocab(texts: Iterable[str], *, vocab_size: int = 8000, lowercase: bool = False,
                          min_freq: int = 2) -> SubwordVocab:
    return _build_subword("wordpiece", texts, vocab_size, lowercase, min_freq)


def token_list(data: dict) -> list[str]:
    tokens = data["tokens"]
    return tokens.split("\n") if isinstance(tokens, str) else list(tokens)  # a list: older checkpoints


def vocab_from_dict(data: dict) -> TokenVocab | SubwordVocab:
    kind = data.get("type")
    if kind in ("word", "char"):
        return TokenVocab(kind, token_list(data), bool(data["lowercase"]), data.get("pattern"),
                          bool(data.get("keep_spaces", False)))
    if kind in ("bpe", "wordpiece"):
        return SubwordVocab(kind, data["tokenizer_json"], bool(data["lowercase"]))
    if kind == "ngrams":
        from dlcli.text.ngrams import ngram_vocab_from_dict

        return ngram_vocab_from_dict(data)
    raise ValueError(f"unknown vocabulary type {kind!r}")
