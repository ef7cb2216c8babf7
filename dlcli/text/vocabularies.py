"""The one table of vocabulary types: how each `vocab.type` is built and read back from a checkpoint.

It lives apart from vocab.py because ngrams.py builds on vocab.py: a table there would import
ngrams.py, which imports it back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dlcli.text import byte_bpe, ngrams, vocab, wordpiece


class Vocabulary(Protocol):
    """What every vocabulary type offers (ids 0 = padding, 1 = unknown; BOS/EOS ids or None),
    except byte-level BPE: nothing is unknown to it (unk_id None) and it pads with end-of-text; and
    BERT's WordPiece, whose specials have the ids its vocabulary gives them (BERT's: [UNK] 100)."""

    kind: str
    pad_id: int
    unk_id: int | None
    bos_id: int | None
    eos_id: int | None

    @property
    def size(self) -> int: ...
    def encode(self, text: str) -> Sequence[int]: ...
    def encode_batch(self, texts: list[str]) -> list: ...
    def wrap(self, ids: Iterable[int]) -> list[int]: ...
    def decode(self, ids: Iterable[int]) -> str: ...
    def decode_batch(self, batch: Iterable[Iterable[int]]) -> list[str]: ...
    def to_dict(self) -> dict: ...


@dataclass(frozen=True)
class VocabType:
    build: Callable[..., Any]  # (texts, *, knobs...): the knobs are the recipe's `vocab.*` keys
    from_dict: Callable[[dict], Any]  # rebuilds what `to_dict()` stored


TYPES: dict[str, VocabType] = {
    "word": VocabType(vocab.build_word_vocab, vocab.token_vocab_from_dict),
    "char": VocabType(vocab.build_char_vocab, vocab.token_vocab_from_dict),
    "bpe": VocabType(vocab.build_bpe_vocab, vocab.subword_vocab_from_dict),
    "wordpiece": VocabType(vocab.build_wordpiece_vocab, vocab.subword_vocab_from_dict),
    "byte_bpe": VocabType(byte_bpe.build_byte_bpe_vocab, byte_bpe.byte_bpe_from_dict),
    "bert_wordpiece": VocabType(wordpiece.build_bert_wordpiece_vocab, wordpiece.bert_wordpiece_from_dict),
    "ngrams": VocabType(ngrams.build_ngram_vocab, ngrams.ngram_vocab_from_dict),
}


def from_dict(data: dict) -> Vocabulary:
    """The vocabulary a checkpoint stored as `to_dict()`, whatever its type."""
    kind = data.get("type")
    if kind not in TYPES:
        raise ValueError(f"unknown vocabulary type {kind!r}")
    return TYPES[kind].from_dict(data)
