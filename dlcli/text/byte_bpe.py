"""Byte-level BPE, GPT-2's tokenizer: text as UTF-8 bytes, so no input is ever unknown.

Trained with HF `tokenizers` (`vocab.type: byte_bpe`), or read from a GPT-2 folder's vocab.json +
merges.txt (`dlcli convert gpt2`); both are stored in the checkpoint as the tokenizer's JSON. The
pre-tokenizer is GPT-2's: its regular expression splits words, numbers and punctuation, each
piece keeping the space before it (shown as "Ġ" in token names), no space added at the start.
One special token, `<|endoftext|>`, ends each line or document. There is no padding or unknown
token: `pad_id` is the end-of-text id (padded positions are masked or never scored) and
`unk_id` is None. `lowercase` (trained ones only) lowercases text before it is split.
"""

from __future__ import annotations

from collections.abc import Iterable

from dlcli.text.hf_tokenizer import TokenizerVocab

END_OF_TEXT = "<|endoftext|>"


def _tokenizer_parts():
    from tokenizers import decoders, pre_tokenizers

    return pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()


class ByteBPEVocab(TokenizerVocab):
    kind = "byte_bpe"
    unk_id = None
    bos_id = None

    def __init__(self, tokenizer_json: str, lowercase: bool = False):
        super().__init__(tokenizer_json)
        self.lowercase = lowercase
        eos = self._tok.token_to_id(END_OF_TEXT)
        if eos is None:
            raise ValueError(f"the tokenizer has no {END_OF_TEXT} token")
        self.eos_id = self.pad_id = eos

    def wrap(self, ids: Iterable[int]) -> list[int]:
        """`ids` followed by end-of-text (there is no beginning-of-text token)."""
        return [*ids, self.eos_id]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`, end-of-text tokens left out."""
        return self._tok.decode([i for i in map(int, ids) if i != self.eos_id], skip_special_tokens=False)

    def decode_batch(self, batch: Iterable[Iterable[int]]) -> list[str]:
        return [self.decode(ids) for ids in batch]

    def to_dict(self) -> dict:
        return {"type": self.kind, "size": self.size, "lowercase": self.lowercase,
                "tokenizer_json": self.tokenizer_json}


def build_byte_bpe_vocab(texts: Iterable[str], *, vocab_size: int = 8000, min_freq: int = 2,
                         lowercase: bool = False) -> ByteBPEVocab:
    """Merges learned from `texts` until `vocab_size` tokens (the 256 bytes and end-of-text
    included); `lowercase`: text is lowercased before it is split (training and encoding alike)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    if vocab_size < 257:
        raise ValueError(f"vocab_size: at least 257 (the 256 bytes and {END_OF_TEXT}), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = _tokenizer_parts()
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_freq, special_tokens=[END_OF_TEXT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return ByteBPEVocab(tok.to_str(), lowercase)


def from_gpt2_files(vocab_json: str, merges_txt: str) -> ByteBPEVocab:
    """GPT-2's tokenizer from its vocab.json and merges.txt (paths)."""
    from tokenizers import Tokenizer, models

    tok = Tokenizer(models.BPE.from_file(vocab_json, merges_txt))
    tok.pre_tokenizer, tok.decoder = _tokenizer_parts()
    if tok.token_to_id(END_OF_TEXT) is not None:
        tok.add_special_tokens([END_OF_TEXT])  # never split, never produced from text
    return ByteBPEVocab(tok.to_str())


def byte_bpe_from_dict(data: dict) -> ByteBPEVocab:
    return ByteBPEVocab(data["tokenizer_json"], bool(data.get("lowercase", False)))
