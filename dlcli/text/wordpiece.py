"""BERT's WordPiece tokenizer (HF `tokenizers`), `vocab.type: bert_wordpiece`.

BERT's pipeline: BertNormalizer (clean control characters, space around CJK characters,
optionally lowercase and strip accents), BertPreTokenizer (split on whitespace and punctuation),
WordPiece (greedy longest-match pieces, "##" before a piece that continues a word, a word that
cannot be spelt from pieces becomes [UNK]), and five special tokens: [PAD] [UNK] [CLS] [SEP]
[MASK]. Their ids are looked up by name: a vocabulary trained by dlcli has them first (0-4), BERT's
own has [PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103. `bos_id`/`eos_id` are [CLS]/[SEP],
so `wrap` gives BERT's single-sentence input; `wrap_pair` gives a pair with segment ids.

Trained with `build_bert_wordpiece_vocab`, or read from a Hugging Face folder
(`from_hf_folder`: tokenizer.json as it is, HF's exact normalizer; else vocab.txt with
tokenizer_config.json's do_lower_case, strip_accents and tokenize_chinese_chars). Either way the
checkpoint stores the tokenizer's JSON, without the folder's truncation and padding settings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dlcli.text.hf_tokenizer import TokenizerVocab

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIALS = [PAD, UNK, CLS, SEP, MASK]
TOKENIZER_JSON, VOCAB_TXT, TOKENIZER_CONFIG = "tokenizer.json", "vocab.txt", "tokenizer_config.json"


@dataclass
class Pieces:
    """A text's WordPiece tokens, without [CLS]/[SEP]: ids, pieces, the word each piece belongs to
    (an index into the pre-tokenizer's words) and its character offsets in the text (end exclusive)."""

    ids: list[int]
    tokens: list[str]
    words: list[int | None]
    offsets: list[tuple[int, int]]


class BertWordPieceVocab(TokenizerVocab):
    kind = "bert_wordpiece"

    def __init__(self, tokenizer_json: str):
        super().__init__(tokenizer_json)
        self._tok.no_truncation()
        self._tok.no_padding()
        self.tokenizer_json = self._tok.to_str()
        ids = {name: self._tok.token_to_id(name) for name in SPECIALS}
        missing = [name for name, i in ids.items() if i is None]
        if missing:
            raise ValueError(f"the WordPiece vocabulary has no {', '.join(missing)}")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (ids[name] for name in SPECIALS)
        self.bos_id, self.eos_id = self.cls_id, self.sep_id
        self._silent = {self.pad_id, self.cls_id, self.sep_id}
        self.special_ids = frozenset(ids.values())
        normalizer = json.loads(self.tokenizer_json).get("normalizer") or {}
        self.lowercase = bool(normalizer.get("lowercase", False))

    def pieces_batch(self, texts: list[str]) -> list[Pieces]:
        return [Pieces(e.ids, e.tokens, e.word_ids, e.offsets)
                for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def word_pieces(self, sentences: list[list[str]]) -> list[list[list[int]]]:
        """Each word's piece ids, for sentences already split into words (a tagger's): a word is
        normalized and split as in running text (`U.S.` -> u . s .); one the normalizer empties
        (control characters, zero-width spaces) has none."""
        out = []
        for words, e in zip(sentences, self._tok.encode_batch(sentences, is_pretokenized=True,
                                                               add_special_tokens=False)):
            per_word: list[list[int]] = [[] for _ in words]
            for i, w in zip(e.ids, e.word_ids):
                per_word[w].append(i)
            out.append(per_word)
        return out

    def wrap(self, ids: Iterable[int]) -> list[int]:
        """[CLS] ids [SEP]."""
        return [self.cls_id, *ids, self.sep_id]

    def wrap_pair(self, a: Iterable[int], b: Iterable[int]) -> tuple[list[int], list[int]]:
        """([CLS] a [SEP] b [SEP], segment ids: 0 up to the first [SEP], 1 after it)."""
        first = self.wrap(a)
        second = [*b, self.sep_id]
        return first + second, [0] * len(first) + [1] * len(second)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids` (pieces joined into words), [PAD], [CLS] and [SEP] left out."""
        return self._tok.decode([i for i in map(int, ids) if i not in self._silent], skip_special_tokens=False)

    def decode_batch(self, batch: Iterable[Iterable[int]]) -> list[str]:
        return [self.decode(ids) for ids in batch]

    def to_dict(self) -> dict:
        return {"type": self.kind, "size": self.size, "lowercase": self.lowercase,
                "tokenizer_json": self.tokenizer_json}


def _pipeline(tok, lowercase: bool, strip_accents: bool | None, clean_text: bool, chinese_chars: bool):
    from tokenizers import decoders, normalizers, pre_tokenizers

    tok.normalizer = normalizers.BertNormalizer(clean_text=clean_text, handle_chinese_chars=chinese_chars,
                                                strip_accents=strip_accents, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def _post_processor(tok) -> None:
    """[CLS] a [SEP] (b [SEP]) when the tokenizer is asked for special tokens, as HF's does."""
    from tokenizers import processors

    tok.post_processor = processors.BertProcessing((SEP, tok.token_to_id(SEP)), (CLS, tok.token_to_id(CLS)))


def build_bert_wordpiece_vocab(texts: Iterable[str], *, vocab_size: int = 8000, min_freq: int = 2,
                               lowercase: bool = True, strip_accents: bool | None = None,
                               limit_alphabet: int = 1000) -> BertWordPieceVocab:
    """A WordPiece vocabulary of `vocab_size` entries (the five specials first) learned from `texts`.
    `strip_accents` None: strip them when lowercasing (BERT uncased), as HF does."""
    from tokenizers import Tokenizer, models, trainers

    if vocab_size < len(SPECIALS) + 1:
        raise ValueError(f"vocab_size: at least {len(SPECIALS) + 1} (the specials and one piece), got {vocab_size}")
    tok = _pipeline(Tokenizer(models.WordPiece(unk_token=UNK)), lowercase, strip_accents, True, True)
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_freq, special_tokens=SPECIALS,
                                        limit_alphabet=limit_alphabet, continuing_subword_prefix="##",
                                        show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    _post_processor(tok)
    return BertWordPieceVocab(tok.to_str())


def from_hf_folder(folder: Path) -> tuple[BertWordPieceVocab, str]:
    """(the vocabulary, the file it came from) of a Hugging Face BERT folder: tokenizer.json, else
    vocab.txt read with tokenizer_config.json's casing."""
    from tokenizers import Tokenizer, models

    if (folder / TOKENIZER_JSON).is_file():
        return BertWordPieceVocab((folder / TOKENIZER_JSON).read_text(encoding="utf-8")), TOKENIZER_JSON
    config = {}
    if (folder / TOKENIZER_CONFIG).is_file():
        config = json.loads((folder / TOKENIZER_CONFIG).read_text(encoding="utf-8"))
    unk = config.get("unk_token", UNK) if isinstance(config.get("unk_token", UNK), str) else UNK
    tok = Tokenizer(models.WordPiece.from_file(str(folder / VOCAB_TXT), unk_token=unk))
    lowercase = bool(config.get("do_lower_case", True))
    _pipeline(tok, lowercase, config.get("strip_accents"), True, bool(config.get("tokenize_chinese_chars", True)))
    present = [name for name in SPECIALS if tok.token_to_id(name) is not None]
    tok.add_special_tokens(present)  # never split, recognised in text, as HF's tokenizer does
    if tok.token_to_id(CLS) is not None and tok.token_to_id(SEP) is not None:
        _post_processor(tok)
    return BertWordPieceVocab(tok.to_str()), VOCAB_TXT


def bert_wordpiece_from_dict(data: dict) -> BertWordPieceVocab:
    return BertWordPieceVocab(data["tokenizer_json"])
