"""decode: ids back to text, as each tokenizer normalises it (hand cases and properties)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlcli.text.ngrams import build_ngram_vocab
from dlcli.text.vocab import build_bpe_vocab, build_char_vocab, build_word_vocab, build_wordpiece_vocab

CORPUS = [f"the {w} jumped over the lazy {v} again" for w in ("fox", "dog", "cat") for v in ("dog", "cow", "hen")] * 3
CORPUS_WORDS = sorted({w for text in CORPUS for w in text.split()})
SPACES = st.sampled_from([" ", "  ", "\t", "\n", " \r\n "])


@st.composite
def spaced(draw, words) -> tuple[list[str], str]:
    """Words, and a text of them separated (and surrounded) by whitespace runs."""
    words = draw(st.lists(words, max_size=8))
    gaps = draw(st.lists(SPACES | st.just(""), min_size=len(words) + 1, max_size=len(words) + 1))
    text = gaps[0] + "".join(w + (g or " ") for w, g in zip(words, gaps[1:]))
    return words, text


WORDS = st.text(alphabet="abcXYZéÅ中文_09", min_size=1, max_size=6)


@given(spaced(WORDS), st.booleans(), st.booleans(), st.booleans())
def test_word_decode_inverts_encode_up_to_single_spaces(case, lowercase, bos, eos):
    words, text = case
    vocab = build_word_vocab([text], lowercase=lowercase, bos=bos, eos=eos)
    expected = " ".join(w.lower() if lowercase else w for w in words)
    assert vocab.decode(vocab.encode(text)) == expected
    assert vocab.decode(vocab.wrap(vocab.encode(text)) + [vocab.pad_id] * 2) == expected


@given(st.text(), st.booleans(), st.booleans(), st.booleans())
def test_char_decode_inverts_encode_without_whitespace_or_with_single_spaces(text, keep_spaces, lowercase, eos):
    vocab = build_char_vocab([text], keep_spaces=keep_spaces, lowercase=lowercase, eos=eos)
    parts = (text.lower() if lowercase else text).split()
    assert vocab.decode(vocab.wrap(vocab.encode(text))) == (" " if keep_spaces else "").join(parts)


@cache
def subword_vocab(kind: str, bos: bool):
    builder = build_bpe_vocab if kind == "bpe" else build_wordpiece_vocab
    return builder(CORPUS, vocab_size=60, min_freq=1, lowercase=True, bos=bos, eos=True)


@pytest.mark.parametrize("bos", [False, True])
@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
@settings(max_examples=40)
@given(case=spaced(st.sampled_from(CORPUS_WORDS + [w.upper() for w in CORPUS_WORDS])))
def test_subword_decode_inverts_encode_for_known_words(kind, bos, case):
    words, text = case
    vocab = subword_vocab(kind, bos)
    ids = vocab.wrap(vocab.encode(text))
    assert vocab.decode(ids) == " ".join(words).lower()
    assert vocab.decode_batch([ids, [vocab.pad_id]]) == [" ".join(words).lower(), ""]


@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_subword_decode_joins_the_pieces_of_unseen_words_and_shows_unknown_ones(kind):
    vocab = subword_vocab(kind, False)
    ids = vocab.encode("Lazydog hen")
    assert len(ids) > 2 and vocab.decode(ids) == "lazydog hen"
    # A BPE [UNK] carries no word-end mark, so it runs into the next word.
    expected = "lazy [UNK]lazy" if kind == "bpe" else "lazy [UNK] lazy"
    assert vocab.decode(vocab.encode("lazy € lazy")) == expected


def test_word_and_char_decode_by_hand():
    word = build_word_vocab(["The cat sat, didn't it?"], bos=True)
    ids = word.wrap(word.encode("The cat  sat,didn't   you?"))
    assert word.decode(ids) == "The cat sat , didn't <unk> ?"
    assert word.decode(torch.tensor(ids)) == word.decode(np.array(ids)) == word.decode(ids)
    char = build_char_vocab(["ab c"], keep_spaces=True, eos=True)
    assert char.decode_batch([char.wrap(char.encode(" a  bz ")), [0, 0]]) == ["a b<unk>", ""]


@given(spaced(WORDS), st.sampled_from([1, 2, 3]), st.sampled_from([(0, 0), (1, 3)]))
def test_ngram_decode_gives_the_vocabulary_words_and_skips_hashed_ids(case, word_ngrams, sub):
    words, text = case
    vocab = build_ngram_vocab([text], word_ngrams=word_ngrams, buckets=50, minn=sub[0], maxn=sub[1])
    ids = vocab.encode(text)
    assert vocab.decode(ids) == " ".join(words)
    assert vocab.decode_batch([ids, vocab.encode("unseen " + text)]) == [" ".join(words)] * 2


def test_ngram_decode_of_characters_joins_them():
    vocab = build_ngram_vocab(["ab ba"], unit="char", word_ngrams=2, buckets=10)
    bag = vocab.encode("ab zb")
    assert (bag >= vocab.num_words).any()  # hashed bigrams are in the bag, and have no text
    assert vocab.decode(bag) == "abb"
