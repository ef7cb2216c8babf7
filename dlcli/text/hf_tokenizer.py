"""What every vocabulary kept as a Hugging Face `tokenizers` pipeline shares: the tokenizer's JSON
(what the checkpoint stores) and its encoding, never adding special tokens (each vocabulary's
`wrap` does that its own way)."""

from __future__ import annotations


class TokenizerVocab:
    compilable = False  # encode_flat (compiled featurizing) exists for NgramVocab only

    def __init__(self, tokenizer_json: str):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_str(tokenizer_json)
        self.tokenizer_json = tokenizer_json

    @property
    def size(self) -> int:
        return self._tok.get_vocab_size()

    def tokenize(self, text: str) -> list[str]:
        return self._tok.encode(text, add_special_tokens=False).tokens

    def encode(self, text: str) -> list[int]:
        """The text's ids, no special token added."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def token_name(self, i: int) -> str:
        return self._tok.id_to_token(int(i))
