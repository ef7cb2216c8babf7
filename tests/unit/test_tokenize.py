"""The raw-text tokenizer: PTB-like splits, offsets into the text as given, idempotence."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dlcli.errors import RecipeError
from dlcli.tasks.classify_output import explained, model_texts, token_offsets
from dlcli.text import vocabularies
from dlcli.text.tokenize import characters, check_mode, token_spans, tokenize, whitespace_tokens


def words(text: str, known=None) -> list[str]:
    return [text[s:e] for s, e in tokenize(text, known)]


@pytest.mark.parametrize("text, expected", [
    ("Barack Obama met Vladimir Putin in Moscow and discussed Gazprom.",
     ["Barack", "Obama", "met", "Vladimir", "Putin", "in", "Moscow", "and", "discussed", "Gazprom", "."]),
    ("I don't think we're done, can't you see? It's John's.",
     ["I", "do", "n't", "think", "we", "'re", "done", ",", "ca", "n't", "you", "see", "?", "It", "'s", "John",
      "'s", "."]),
    ("I'm sure they've said you'll go, I'd say. DON'T SHE'S",
     ["I", "'m", "sure", "they", "'ve", "said", "you", "'ll", "go", ",", "I", "'d", "say", ".", "DO", "N'T", "SHE",
      "'S"]),
    ("It costs $1,000.50, or 3.14 at 10:30 on 1/2.",
     ["It", "costs", "$", "1,000.50", ",", "or", "3.14", "at", "10:30", "on", "1/2", "."]),
    ("See https://example.org/a?b=1. Or www.example.com, mail jo.smith+x@mail.example.co.uk.",
     ["See", "https://example.org/a?b=1", ".", "Or", "www.example.com", ",", "mail", "jo.smith+x@mail.example.co.uk",
      "."]),
    ("The U.S. and Mr. Smith of Acme Corp. met John F. Kennedy, e.g. here.",
     ["The", "U.S.", "and", "Mr.", "Smith", "of", "Acme", "Corp.", "met", "John", "F.", "Kennedy", ",", "e.g.",
      "here", "."]),
    ("A well-known 65-minute O'Neill rock'n'roll film (1930s)... wow -- @bob #nlp",
     ["A", "well-known", "65-minute", "O'Neill", "rock'n'roll", "film", "(", "1930s", ")", "...", "wow", "--",
      "@bob", "#nlp"]),
    ("“Quoted,” she said: 'no'!", ["“", "Quoted", ",", "”", "she", "said", ":", "'", "no", "'", "!"]),
    ("Mexican avocados not expected in the U.S.", ["Mexican", "avocados", "not", "expected", "in", "the", "U.S", "."]),
    ('said Ancell of Schroder & Co. "', ["said", "Ancell", "of", "Schroder", "&", "Co", ".", '"']),
    ("3. Aliuska Lopez (Cuba) 12.92", ["3.", "Aliuska", "Lopez", "(", "Cuba", ")", "12.92"]),
    ("Hanwha 58 1 49 .542 6", ["Hanwha", "58", "1", "49", ".542", "6"]),
    ("fell C$ 0.45, or +0.435, on the 6,739-yard course; 1,874-of-3,362 passes",
     ["fell", "C$", "0.45", ",", "or", "+0.435", ",", "on", "the", "6,739-yard", "course", ";", "1,874-of-3,362",
      "passes"]),
    ("你好，世界！", ["你好", "，", "世界", "！"]),
    ("thumbs 👍🏽 family 👨\u200d👩\u200d👧!", ["thumbs", "👍🏽", "family", "👨\u200d👩\u200d👧", "!"]),
])
def test_splits_like_the_treebank(text, expected):
    assert words(text) == expected


def test_tokenized_text_stays_as_it_is():
    conll = "EU rejects German call to boycott British lamb . Peter Blackburn U.S. 1,000 n't 's well-known"
    assert words(conll) == conll.split()


def test_known_chunks_stay_whole():
    vocab = {"don't", "corp."}
    text = "I don't know Acme Corp. or Gazprom."
    assert words(text, lambda w: w.lower() in vocab) == ["I", "don't", "know", "Acme", "Corp.", "or", "Gazprom", "."]
    # a chunk the tokenizer keeps whole anyway is not looked up
    seen = []
    tokenize("plain words here", lambda w: seen.append(w) or False)
    assert seen == []


def test_whitespace_and_characters_give_offsets():
    text = " a\tbb  c\u3000d "
    assert [text[s:e] for s, e in whitespace_tokens(text)] == text.split() == ["a", "bb", "c", "d"]
    assert [text[s:e] for s, e in characters(text)] == ["a", "b", "b", "c", "d"]
    assert token_spans(text, "whitespace") == whitespace_tokens(text)
    assert token_spans("a.", "auto") == [(0, 1), (1, 2)]


def test_check_mode_refuses_unknown_modes():
    check_mode("auto")
    with pytest.raises(RecipeError, match="--tokenize"):
        check_mode("spacy")


# Text with what raw input holds: mixed scripts, tabs, runs of spaces, emoji, clitics, numbers.
PIECES = st.sampled_from(["Obama", "Moscow", "don't", "John's", "we're", "U.S.", "Mr.", "F.", "3.14", "1,000",
                          "10:30", "a@b.co", "http://x.y/z", "well-known", "北京", "你好", "，", "。", "😀", "👍🏽",
                          "é", "e\u0301", "'", "’s", "n't", ".", ",", "...", "--", "(", ")", "\"", "#x", "@y",
                          "İ", "ß", "Σ"])
SPACES = st.sampled_from(["", " ", "  ", "\t", " \t ", "\u3000", "\u00a0"])
RAW = st.lists(st.tuples(PIECES, SPACES), max_size=12).map(lambda xs: "".join(p + s for p, s in xs))
ANY = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.one_of(RAW, ANY))
@example("Gazprom.")
@example("don't's")
def test_offsets_cover_the_text_and_tokenizing_again_changes_nothing(text):
    spans = tokenize(text)
    assert all(0 <= s < e <= len(text) for s, e in spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # in order, never overlapping
    tokens = [text[s:e] for s, e in spans]
    assert all(not t[0].isspace() and not t[-1].isspace() for t in tokens)
    assert "".join(tokens) == "".join(text.split())  # every non-space character is in one token
    assert words(" ".join(tokens)) == tokens
    # with a vocabulary lookup: still offsets into the text, still whole chunks or the plain tokens
    known = tokenize(text, lambda w: len(w) % 2 == 0)
    assert "".join(text[s:e] for s, e in known) == "".join(text.split())
    assert all(a[1] <= b[0] for a, b in zip(known, known[1:]))


# ---------------------------------------------------------------- classify: what the vocabulary reads, and where

SST_LIKE = ["it is n't good .", "we did n't like John 's film , did we ?", "a well-known U.S. film"]
MR_LIKE = ["it isn't good .", "we didn't like john's film , did we ?", "a well-known u.s. film"]
VOCABS = {
    "word": lambda: vocabularies.TYPES["word"].build(SST_LIKE, lowercase=True),
    "word_cased": lambda: vocabularies.TYPES["word"].build(MR_LIKE),
    "ngrams_whitespace": lambda: vocabularies.TYPES["ngrams"].build(SST_LIKE, lowercase=True, pattern=r"\S+",
                                                                   word_ngrams=2, buckets=100),
    "char": lambda: vocabularies.TYPES["char"].build(SST_LIKE, lowercase=True),
    "char_spaces": lambda: vocabularies.TYPES["char"].build(SST_LIKE, lowercase=True, keep_spaces=True),
    "wordpiece": lambda: vocabularies.TYPES["wordpiece"].build(SST_LIKE * 5, vocab_size=80, lowercase=True),
}


def test_model_texts_follow_the_training_texts_tokenization():
    sst, mr = VOCABS["word"](), VOCABS["word_cased"]()
    raw = ["It isn't good.", "We didn't like John's film!"]
    assert model_texts(sst, raw, "auto") == ["It is n't good .", "We did n't like John 's film !"]
    # MR keeps "isn't" and "didn't" whole: a chunk the vocabulary knows whole stays whole
    assert model_texts(mr, raw, "auto") == ["It isn't good .", "We didn't like John 's film !"]
    assert model_texts(sst, raw, "whitespace") == raw


def test_explained_entries_carry_the_text_as_written():
    vocab = VOCABS["word"]()
    entries = explained(vocab, "  It\tisn't  GOOD.", "auto", [0.1, 0.2, 0.3, 0.3, 0.1])
    assert [(e["token"], e["text"], e["char_start"], e["char_end"]) for e in entries] == [
        ("it", "It", 2, 4), ("is", "is", 5, 7), ("n't", "n't", 7, 10), ("good", "GOOD", 12, 16), (".", ".", 16, 17)]
    assert [e["weight"] for e in entries] == [0.1, 0.2, 0.3, 0.3, 0.1]


@settings(max_examples=150, deadline=None)
@given(st.one_of(RAW, ANY), st.sampled_from(sorted(VOCABS)), st.sampled_from(["auto", "whitespace"]))
def test_vocabulary_tokens_map_back_into_the_text(text, kind, mode):
    vocab = _vocab(kind)
    tokens = vocab.tokenize(model_texts(vocab, [text], mode)[0])
    spans = token_offsets(vocab, text, mode)
    assert len(spans) == len(tokens)
    assert all(0 <= s <= e <= len(text) for s, e in spans)
    assert all(a[0] <= b[0] for a, b in zip(spans, spans[1:]))
    if kind == "wordpiece":
        return
    for token, (s, e) in zip(tokens, spans):
        if token == " ":  # a character model's word break: the whitespace there, or none
            assert not text[s:e].strip()
        else:
            assert token.casefold() in text[s:e].casefold()  # "İ" lowercases to two characters, two tokens


_BUILT: dict = {}


def _vocab(kind: str):
    if kind not in _BUILT:
        _BUILT[kind] = VOCABS[kind]()
    return _BUILT[kind]
