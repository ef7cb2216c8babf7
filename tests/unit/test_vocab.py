"""Vocabularies: word/char tokenizers, min_freq/max_size, subword round trips through to_dict,
the optional BOS/EOS specials and the table of types."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys

import pytest

from dlcli.text.ngrams import build_ngram_vocab
from dlcli.text.vocab import (
    BOS,
    EOS,
    PAD,
    UNK,
    WHITESPACE_SPLIT,
    WORD_PATTERN,
    TokenVocab,
    build_bpe_vocab,
    build_char_vocab,
    build_word_vocab,
    build_wordpiece_vocab,
)
from dlcli.text.vocabularies import TYPES, from_dict

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
    again = from_dict(data)
    assert again.tokens == vocab.tokens and again.keep_spaces
    assert again.encode("b a") == vocab.encode("b a") == [4, 2, 3]


def test_char_vocab_without_keep_spaces_writes_and_reads_the_old_dict():
    data = build_char_vocab(["ab a"]).to_dict()
    assert "keep_spaces" not in data  # files written before the knob have no such key
    old = from_dict(data)
    assert not old.keep_spaces and old.tokenize("a b") == ["a", "b"]


@pytest.mark.parametrize("builder", [build_word_vocab, build_char_vocab])
def test_token_vocab_round_trip(builder):
    vocab = builder(TEXTS, lowercase=True)
    again = from_dict(json.loads(json.dumps(vocab.to_dict())))  # plain data only
    probe = ["The CAT sat on a mat", "zebra"]
    assert again.size == vocab.size
    assert again.encode_batch(probe) == vocab.encode_batch(probe)


@pytest.mark.parametrize("builder", [build_bpe_vocab, build_wordpiece_vocab])
def test_subword_round_trip_and_special_ids(builder):
    vocab = builder(CORPUS, vocab_size=60, min_freq=1, lowercase=True)
    model_vocab = json.loads(vocab.tokenizer_json)["model"]["vocab"]
    assert model_vocab["[PAD]"] == vocab.pad_id == 0  # padding must use the id the models zero out
    assert model_vocab["[UNK]"] == vocab.unk_id == 1
    again = from_dict(json.loads(json.dumps(vocab.to_dict())))
    probe = ["The fox jumped over the lazy hen", "foxes dogged"]
    assert again.size == vocab.size <= 60
    assert again.encode_batch(probe) == vocab.encode_batch(probe)
    assert [vocab.encode(t) for t in probe] == vocab.encode_batch(probe)
    assert len(vocab.encode("foxes dogged")) > 2  # unseen words split into known pieces


def test_subword_lowercase_applies():
    vocab = build_bpe_vocab(CORPUS, vocab_size=60, min_freq=1, lowercase=True)
    assert vocab.encode("THE LAZY DOG") == vocab.encode("the lazy dog")


def test_unknown_vocab_type():
    with pytest.raises(ValueError, match="unknown vocabulary type 'sentencepiece'"):
        from_dict({"type": "sentencepiece"})


def test_tokens_are_stored_as_one_string_and_old_lists_still_load():
    vocab = build_word_vocab(["the cat sat", "a dog"])
    stored = vocab.to_dict()
    assert isinstance(stored["tokens"], str)
    assert from_dict(stored).tokens == vocab.tokens
    assert from_dict({**stored, "tokens": list(vocab.tokens)}).tokens == vocab.tokens


# BOS / EOS

OLD_WORD_DICT = {"type": "word", "size": 5, "lowercase": False, "pattern": WORD_PATTERN,
                 "tokens": "<pad>\n<unk>\nthe\ncat\nran"}  # as written before the bos/eos knobs


@pytest.mark.parametrize(("bos", "eos", "ids"), [(False, False, (None, None)), (True, False, (2, None)),
                                                 (False, True, (None, 2)), (True, True, (2, 3))])
@pytest.mark.parametrize("builder", [build_word_vocab, build_char_vocab])
def test_bos_eos_come_after_pad_and_unk(builder, bos, eos, ids):
    vocab = builder(TEXTS, bos=bos, eos=eos)
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id) == (0, 1, *ids)
    assert vocab.tokens[:2 + bos + eos] == [PAD, UNK] + [BOS] * bos + [EOS] * eos
    plain = builder(TEXTS)
    assert vocab.tokens[2 + bos + eos:] == plain.tokens[2:]  # the words shift by the specials
    assert vocab.size == plain.size + bos + eos


def test_encode_adds_no_specials_and_wrap_does():
    vocab = build_word_vocab(TEXTS, bos=True, eos=True)
    assert vocab.encode("the cat") == [4, 5]
    assert vocab.wrap(vocab.encode("the cat")) == [2, 4, 5, 3]
    assert vocab.wrap([]) == [2, 3]
    assert build_word_vocab(TEXTS, eos=True).wrap([7]) == [7, 2]
    assert build_word_vocab(TEXTS).wrap([7]) == [7]


def test_max_size_counts_bos_and_eos():
    assert build_word_vocab(TEXTS, max_size=5, bos=True, eos=True).tokens == [PAD, UNK, BOS, EOS, "the"]


def test_bos_eos_are_written_only_when_on_and_read_back():
    assert not {"bos", "eos"} & set(build_char_vocab(TEXTS, keep_spaces=True).to_dict())
    vocab = build_char_vocab(TEXTS, keep_spaces=True, eos=True)
    data = json.loads(json.dumps(vocab.to_dict()))
    assert data["eos"] is True and "bos" not in data
    again = from_dict(data)
    assert (again.bos_id, again.eos_id, again.keep_spaces) == (None, 2, True)
    assert again.wrap(again.encode("a cat")) == vocab.wrap(vocab.encode("a cat"))


def test_old_dict_without_bos_eos_loads_and_encodes_as_before():
    old = from_dict(dict(OLD_WORD_DICT))
    assert (old.bos_id, old.eos_id) == (None, None)
    assert old.encode("the dog ran") == [2, 1, 4]
    assert old.wrap([2, 1, 4]) == [2, 1, 4]
    assert old.decode([2, 1, 4, 0]) == "the <unk> ran"
    new = build_word_vocab(["the the the cat cat ran"])
    assert new.to_dict() == OLD_WORD_DICT  # a vocabulary without the knobs still writes the old dict


@pytest.mark.parametrize("builder", [build_bpe_vocab, build_wordpiece_vocab])
def test_subword_bos_eos(builder):
    vocab = builder(CORPUS, vocab_size=60, min_freq=1, bos=True, eos=True)
    pieces = json.loads(vocab.tokenizer_json)["model"]["vocab"]
    assert [pieces[p] for p in ("[PAD]", "[UNK]", "[BOS]", "[EOS]")] == [0, 1, 2, 3]
    assert (vocab.bos_id, vocab.eos_id) == (2, 3)
    ids = vocab.encode("the lazy dog")
    assert 2 not in ids and 3 not in ids
    again = from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert (again.bos_id, again.eos_id) == (2, 3)
    assert again.wrap(ids) == [2, *ids, 3]
    plain = builder(CORPUS, vocab_size=60, min_freq=1)
    assert (plain.bos_id, plain.eos_id) == (None, None) and plain.wrap([5]) == [5]


def test_ngram_vocab_has_no_bos_eos():
    vocab = build_ngram_vocab(TEXTS, word_ngrams=2, buckets=100)
    assert (vocab.bos_id, vocab.eos_id) == (None, None)
    assert from_dict(vocab.to_dict()).bos_id is None


# The table of types

def test_types_table_builds_and_reads_back_every_type():
    assert set(TYPES) == {"word", "char", "bpe", "wordpiece", "byte_bpe", "bert_wordpiece", "ngrams"}
    probe = ["the fox jumped over the lazy dog", "a zebra"]
    for name, kind in TYPES.items():
        build = kind.build
        assert inspect.signature(build).parameters["lowercase"].kind is inspect.Parameter.KEYWORD_ONLY
        vocab = build(CORPUS, **({"min_freq": 1} if name in ("bpe", "wordpiece") else {}))
        again = kind.from_dict(json.loads(json.dumps(vocab.to_dict())))
        assert type(again) is type(vocab) and again.kind == vocab.kind == name
        assert [list(ids) for ids in again.encode_batch(probe)] == [list(ids) for ids in vocab.encode_batch(probe)]
        assert again.decode_batch(vocab.encode_batch(probe)) == vocab.decode_batch(vocab.encode_batch(probe))
        assert from_dict(vocab.to_dict()).size == vocab.size


def test_bos_eos_are_keyword_only_knobs_of_the_word_char_and_subword_builders():
    for name in ("word", "char", "bpe", "wordpiece"):
        params = inspect.signature(TYPES[name].build).parameters
        assert [(params[k].kind, params[k].default) for k in ("bos", "eos")] == [(inspect.Parameter.KEYWORD_ONLY,
                                                                                  False)] * 2


def test_vocab_module_does_not_import_ngrams():
    code = "import sys, dlcli.text.vocab; assert 'dlcli.text.ngrams' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_from_dict_names_a_missing_type():
    with pytest.raises(ValueError, match="unknown vocabulary type None"):
        from_dict({"tokens": ""})


def test_the_whitespace_pattern_splits_exactly_as_the_regex_would():
    # `\S+` takes str.split's path; every character Python counts as whitespace must split it the
    # same way, and everything else must stay inside a token (lowercasing still applies).
    spaces = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
    others = "".join(chr(c) for c in range(0x3001) if not chr(c).isspace())
    text = " X" + "y".join(spaces) + "Q" + others[::97] + spaces
    vocab = TokenVocab("word", [PAD, UNK], True, WHITESPACE_SPLIT)
    assert vocab._regex is None
    assert vocab.tokenize(text) == re.findall(WHITESPACE_SPLIT, text.lower())
    assert len(vocab.tokenize(text)) == len(spaces) + 1  # "x", a "y" between each two spaces, "q..."
