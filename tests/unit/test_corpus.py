"""The on-disk corpus of word ids: counting while reading, remapping to the vocabulary, reading back
in blocks, the ranking of the vocabulary from the counts, and batches that read the corpus's parts
side by side."""

from __future__ import annotations

from collections import Counter

import numpy as np

from dlcli.text import corpus as corpus_module
from dlcli.text.corpus import read_raw, remap, side_by_side
from dlcli.text.vocab import _ranked, ranked_ids

LINES = ["a b a", "", "c a", "b b d e", "e"]


def test_read_raw_counts_every_token_and_keeps_the_sentences(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_module, "TOKEN_BLOCK", 2)  # several blocks; "c", "d", "e" first seen in later ones
    types, counts, raw = read_raw(LINES, str.split, tmp_path)
    assert types == ["a", "b", "c", "d", "e"]
    assert dict(zip(types, counts.tolist())) == Counter(" ".join(LINES).split())
    assert raw.starts.tolist() == [0, 3, 5, 9, 10]  # the blank line is no sentence
    assert raw.read(0, raw.num_tokens).tolist() == raw.ids.tolist() == [0, 1, 0, 2, 0, 1, 1, 3, 4, 4]
    assert raw.read(3, 7).tolist() == [2, 0, 1, 1] and raw.read(4, 4).tolist() == []


def test_sentences_come_back_whole_from_any_block_size(tmp_path, monkeypatch):
    types, _, raw = read_raw(LINES, str.split, tmp_path)
    want = [raw.ids[a:b].tolist() for a, b in zip(raw.starts[:-1], raw.starts[1:])]
    for block in (1, 2, 3, 100):  # 1 and 2: sentences longer than a block
        monkeypatch.setattr(corpus_module, "BLOCK", block)
        assert [s.tolist() for s in raw.sentences()] == want


def test_remap_drops_unkept_words_and_the_sentences_they_empty(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_module, "BLOCK", 3)
    types, _, raw = read_raw(LINES, str.split, tmp_path)
    new_ids = np.array([5, 6, -1, -1, -1])  # keep a and b only: "e" is left empty
    kept = remap(raw, new_ids, tmp_path)
    assert [s.tolist() for s in kept.sentences()] == [[5, 6, 5], [5], [6, 6]]
    assert kept.num_sentences == 3 and kept.num_tokens == 6


def test_ranked_ids_rank_as_the_vocabulary_does():
    rng = np.random.default_rng(0)
    types = [f"w{i}" for i in rng.permutation(300)]
    counts = rng.integers(0, 8, len(types))  # many ties, broken by the word
    by_word = dict(zip(types, counts.tolist()))
    for min_freq, max_size in ((1, None), (3, None), (3, 40), (5, 1)):
        want = _ranked(by_word, min_freq, max_size, ["<pad>", "<unk>"])[2:]
        assert [types[i] for i in ranked_ids(types, counts, min_freq, max_size, 2)] == want


def test_remap_matches_a_sentence_by_sentence_reference(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    lines = [" ".join(f"w{i}" for i in rng.integers(0, 12, rng.integers(1, 9))) for _ in range(60)]
    monkeypatch.setattr(corpus_module, "BLOCK", 7)
    types, _, raw = read_raw(lines, str.split, tmp_path)
    new_ids = np.where(rng.random(len(types)) < 0.5, np.arange(len(types)), -1)
    want = [[int(new_ids[i]) for i in s if new_ids[i] >= 0] for s in raw.sentences()]
    assert [s.tolist() for s in remap(raw, new_ids, tmp_path).sentences()] == [s for s in want if s]


def test_one_part_reads_the_corpus_in_order():
    starts = np.cumsum([0] + [3] * 25)
    batches = side_by_side(starts, 10, 1)
    assert [b.ranges for b in batches] == [(range(0, 10),), (range(10, 20),), (range(20, 25),)]
    assert [len(b) for b in batches] == [10, 10, 5]


def test_parts_stream_their_own_stretches_of_about_equal_words():
    rng = np.random.default_rng(2)
    starts = np.concatenate([[0], np.cumsum(rng.integers(1, 60, 1001))])
    batches = side_by_side(starts, 40, 3)
    ranges = [b.ranges for b in batches]
    assert all(len(r) == 3 for r in ranges)  # a range per part, empty once the part is done
    parts = [[r[p] for r in ranges if len(r[p])] for p in range(3)]
    for part in parts:  # each part: consecutive runs of ceil(40 / 3) sentences
        assert all(a.stop == b.start for a, b in zip(part, part[1:]))
        assert all(len(r) == 14 for r in part[:-1])
    cover = [i for p in parts for r in p for i in r]
    assert cover == list(range(1001))  # every sentence once, the parts in corpus order
    words = [starts[p[-1].stop] - starts[p[0].start] for p in parts]
    assert max(words) - min(words) <= 2 * 60  # equal shares of words, to a sentence or so
    assert sum(map(len, batches)) == 1001


def test_more_parts_than_sentences_gives_one_sentence_each():
    batches = side_by_side(np.array([0, 4, 9]), 10, 8)
    assert [b.ranges for b in batches] == [(range(0, 1), range(1, 2))]
