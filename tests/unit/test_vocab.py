"""Vocabularies: word/char tokenizers, min_freq/max_size, and subword round trips through to_dict."""

from __future__ import annotations

import json

import pytest

from dlcli.text.vocab import (
    PAD,
    UNK,
    build_bpe_vocab,
    build_char_vocab,
    build_word_vocab,
    build_wordpiece_vocab,
    vocab_from_dict,
)

TEXTS = ["the cat sat", "the cat ran", "the dog ran", "a bird"]
# Enough repeated words for the subword trainers to learn merges from.
CORPUS = [f"the {w} jumped over the lazy {v} again" for w in ("fox", "dog", "cat") for v in ("dog", "cow", "hen")] * 3


def test_word_vocab_is_ranked_by_frequency_then_alphabet():
    vocab = build_word_vocab(TEXTS)
    assert vocab.tokens[:2] == [PAD, UNK] and (vocab.pad_id, vocab.unk_id) == (0, 1)
    assert vocab.tokens[2:5] == ["the", "cat", "ran"]  # 3, 2, 2 occurrences; ties alphabetical
    assert vocab.size == 2 + 7


def test_min_freq_maps_rare_words_to_unk():
    vocab = build_word_vocab(TEXTS, min_freq=2)
    assert vocab.tokens == [PAD, UNK, "the", "cat", "ran"]
    assert vocab.encode("the dog ran") == [2, vocab.unk_id, 4]


def test_max_size_counts_the_specials():
    vocab = build_word_vocab(TEXTS, max_size=4)
    assert vocab.tokens == [PAD, UNK, "the", "cat"]


def test_word_tokenizer_keeps_inner_apostrophes_and_splits_punctuation():
    vocab = build_word_vocab([], lowercase=True)
    assert vocab.tokenize("Don't STOP, it's fine!") == ["don't", "stop", ",", "it's", "fine", "!"]


def test_lowercase_off_keeps_case():
    vocab = build_word_vocab(["Cat cat"])
    assert vocab.tokens[2:] == ["Cat", "cat"]


def test_char_vocab_ignores_whitespace():
    vocab = build_char_vocab(["ab a"])
    assert vocab.tokenize("ab a") == ["a", "b", "a"]
    assert vocab.tokens == [PAD, UNK, "a", "b"]
    assert vocab.encode("abz") == [2, 3, vocab.unk_id]


def test_char_vocab_keep_spaces_makes_each_whitespace_run_one_space_token():
    vocab = build_char_vocab(["a  b", "b\t\nc "], keep_spaces=True)
    assert vocab.tokenize("a  b") == ["a", " ", "b"]
    assert vocab.tokenize("  a \t b\n") == ["a", " ", "b"]  # ends stripped
    assert vocab.tokens == [PAD, UNK, " ", "b", "a", "c"]  # the space counts like any character
    assert vocab.encode("a  z") == [4, 2, vocab.unk_id]


def test_char_vocab_keep_spaces_survives_to_dict():
    vocab = build_char_vocab(["a  b"], keep_spaces=True)
    data = json.loads(json.dumps(vocab.to_dict()))
    assert data["keep_spaces"] is True
    again = vocab_from_dict(data)
    assert again.tokens == vocab.tokens and again.keep_spaces
    assert again.encode("b a") == vocab.encode("b a") == [4, 2, 3]


def test_char_vocab_without_keep_spaces_writes_and_reads_the_old_dict():
    data = build_char_vocab(["ab a"]).to_dict()
    assert "keep_spaces" not in data  # files written before the knob have no such key
    old = vocab_from_dict(data)
    assert not old.keep_spaces and old.tokenize("a b") == ["a", "b"]


@pytest.mark.parametrize("builder", [build_word_vocab, build_char_vocab])
def test_token_vocab_round_trip(builder):
    vocab = builder(TEXTS, lowercase=True)
    again = vocab_from_dict(json.loads(json.dumps(vocab.to_dict())))  # plain data only
    probe = ["The CAT sat on a mat", "zebra"]
    assert again.size == vocab.size
    assert again.encode_batch(probe) == vocab.encode_batch(probe)


@pytest.mark.parametrize("builder", [build_bpe_vocab, build_wordpiece_vocab])
def test_subword_round_trip_and_special_ids(builder):
    vocab = builder(CORPUS, vocab_size=60, min_freq=1, lowercase=True)
    model_vocab = json.loads(vocab.tokenizer_json)["model"]["vocab"]
    assert model_vocab["[PAD]"] == vocab.pad_id == 0  # padding must use the id the models zero out
    assert model_vocab["[UNK]"] == vocab.unk_id == 1
    again = vocab_from_dict(json.loads(json.dumps(vocab.to_dict())))
    probe = ["The fox jumped over the lazy hen", "foxes dogged"]
    assert again.size == vocab.size <= 60
    assert again.encode_batch(probe) == vocab.encode_batch(probe)
    assert [vocab.encode(t) for t in probe] == vocab.encode_batch(probe)
    assert len(vocab.encode("foxes dogged")) > 2  # unseen words split into known pieces


def test_subword_lowercase_applies():
    vocab = build_bpe_vocab(CORPUS, vocab_size=60, min_freq=1, lowercase=True)
    assert vocab.encode("THE LAZY DOG") == vocab.encode("the lazy dog")


def test_unknown_vocab_type():
    with pytest.raises(ValueError, match="unknown vocabulary type"):
        vocab_from_dict({"type": "sentencepiece"})


def test_tokens_are_stored_as_one_string_and_old_lists_still_load():
    from dlcli.text.vocab import build_word_vocab, vocab_from_dict

    vocab = build_word_vocab(["the cat sat", "a dog"])
    stored = vocab.to_dict()
    assert isinstance(stored["tokens"], str)
    assert vocab_from_dict(stored).tokens == vocab.tokens
    assert vocab_from_dict({**stored, "tokens": list(vocab.tokens)}).tokens == vocab.tokens
