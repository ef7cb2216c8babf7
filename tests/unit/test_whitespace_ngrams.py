"""The compiled featurizer (training) gives exactly the Python one's tokens, counts and bags."""

from __future__ import annotations

from collections import Counter
from itertools import chain

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dlcli.kernels import whitespace_ngrams as k
from dlcli.text.ngrams import _whitespace_token_counts, build_ngram_vocab


def test_splits_at_exactly_str_isspace_characters():
    code_points = [c for c in range(0x110000)]
    texts = [f"a{chr(c)}b" for c in code_points]
    buf, bounds = k.utf8(texts)
    _, _, owner = k.token_spans(buf, bounds)
    tokens_per_text = np.bincount(owner, minlength=len(texts))
    expected = np.array([2 if chr(c).isspace() else 1 for c in code_points])
    assert (tokens_per_text == expected).all()
    assert int((expected == 2).sum()) == 29  # the Unicode whitespace set, ASCII 9-13 and 28-32 included


PIECES = ["a", "B", "b", "ab", "日", "本語", "<pad>", "<unk>", "é", " ", "  ", "\t", "\u3000", "\xa0", "\u2028", "\x1f",
          "\u0085", "\U0001f600", "\ud800"]
texts_st = st.lists(st.lists(st.sampled_from(PIECES), max_size=12).map("".join), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(train=texts_st, other=texts_st, ngrams=st.integers(1, 3), lowercase=st.booleans(),
       min_freq=st.integers(1, 2))
def test_compiled_bags_equal_python_bags(train, other, ngrams, lowercase, min_freq):
    vocab = build_ngram_vocab(train, pattern=r"\S+", lowercase=lowercase, min_freq=min_freq, word_ngrams=ngrams,
                              buckets=97, minn=0, maxn=0)
    assert vocab.compiled
    texts = train + other  # the second set has words outside the vocabulary
    compiled = vocab.encode_batch(texts)
    vocab.compiled = False
    python = vocab.encode_batch(texts)
    assert len(compiled) == len(python)
    for a, b in zip(compiled, python):
        assert a.dtype == b.dtype and a.tolist() == b.tolist()


@settings(max_examples=40, deadline=None)
@given(texts=texts_st)
def test_compiled_counts_equal_counter(texts):
    assert _whitespace_token_counts(texts) == Counter(chain.from_iterable(t.split() for t in texts))


def test_counts_past_the_first_table_size():
    words = [f"w{i}" for i in range(5000)]
    texts = [" ".join(words[i : i + 7]) for i in range(0, 5000, 3)]
    assert _whitespace_token_counts(texts) == Counter(chain.from_iterable(t.split() for t in texts))


def test_unknown_token_keys_are_zlib_crc32():
    vocab = build_ngram_vocab(["a b"], pattern=r"\S+", word_ngrams=2, buckets=1_000_003, minn=0, maxn=0)
    compiled = vocab.encode_batch(["a zzz", "日本 a"])
    vocab.compiled = False
    assert [x.tolist() for x in compiled] == [x.tolist() for x in vocab.encode_batch(["a zzz", "日本 a"])]
