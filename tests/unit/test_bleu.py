"""BLEU and chrF: hand-worked cases, then equality with sacrebleu (when installed) on fixed cases
and a seeded fuzz of a few hundred sentences."""

from __future__ import annotations

import logging
import math
import random

import pytest

from dlcli.text.bleu import corpus_bleu, corpus_chrf, tokenize


@pytest.fixture(scope="module")
def sacrebleu():
    module = pytest.importorskip("sacrebleu")
    logging.getLogger("sacrebleu").setLevel(logging.ERROR)  # its "tokenized period" advice
    return module


# ---------------------------------------------------------------- by hand


@pytest.mark.parametrize(("text", "name", "tokens"), [
    ('He said: "Hi!" (3.5 km, 1,000 m)', "13a", 'He said : " Hi ! " ( 3.5 km , 1,000 m )'),
    ("It's a well-known 5-3 win.", "13a", "It's a well-known 5 - 3 win ."),
    ("Tom &amp; Mary &lt;3 &quot;x&quot;", "13a", 'Tom & Mary < 3 " x "'),
    ("one<skipped> two-\nthree\nfour", "13a", "one twothree four"),  # a line-end hyphen joins
    ("Tom &amp; Mary", "zh", "Tom & amp ; Mary"),  # zh decodes no HTML entities
    ("我爱Paris, 真的。", "zh", "我 爱 Paris , 真 的 。"),
    ("  a  b,c ", "none", "  a  b,c "),
])
def test_tokenizers_by_hand(text, name, tokens):
    assert tokenize(text, name) == tokens


def test_a_perfect_match_scores_100_and_no_match_scores_0():
    same = corpus_bleu(["the cat sat on the mat ."], ["the cat sat on the mat ."])
    assert same == {"bleu": pytest.approx(100.0), "precisions": [100.0] * 4, "bp": 1.0,
                    "sys_len": 7, "ref_len": 7, "n": 1}
    none = corpus_bleu(["a b c d e"], [["v w x y z"]])
    assert none["bleu"] == 0.0 and none["precisions"] == [0.0] * 4 and none["n"] == 1


def test_brevity_penalty_by_hand():
    result = corpus_bleu(["a b c d"], ["a b c d e f"])
    assert result["precisions"] == [100.0] * 4
    assert result["bp"] == pytest.approx(math.exp(1 - 6 / 4))
    assert result["bleu"] == pytest.approx(100 * math.exp(-0.5))


def test_orders_without_a_match_are_smoothed_by_halving():
    # 1-grams 3/4, 2-grams 2/3, 3-grams 1/2, 4-grams 0/1 -> 1 / (2 * 1)
    result = corpus_bleu(["a b c x"], ["a b c d"])
    expected = [75.0, 200 / 3, 50.0, 50.0]
    assert result["precisions"] == pytest.approx(expected)
    assert result["bleu"] == pytest.approx(math.exp(sum(map(math.log, expected)) / 4))


def test_an_output_too_short_for_4_grams_scores_0():
    assert corpus_bleu(["a b"], ["a b"])["bleu"] == 0.0


def test_clipping_and_the_closest_reference_length_ties_to_the_shorter():
    # "the" six times against references holding it at most twice: 2 of 6 unigrams count
    result = corpus_bleu(["the the the the the the"], [["the cat is on the mat"], ["there is a cat on the mat ."]])
    assert result["precisions"][0] == pytest.approx(100 * 2 / 6)
    tie = corpus_bleu(["a b c d e"], [["a b c d"], ["a b c d e f"]])  # 4 and 6 are both 1 away from 5
    assert tie["ref_len"] == 4 and tie["bp"] == 1.0


def test_multiple_streams_a_missing_reference_and_empty_sentences():
    result = corpus_bleu(["a b c d", ""], [["a b c d", "x"], [None, ""]])
    assert result["n"] == 2 and result["sys_len"] == 4 and result["ref_len"] == 4  # "" is closest to ""
    assert result["bleu"] == pytest.approx(100.0)
    assert corpus_bleu([], [])["bleu"] == 0.0 and corpus_chrf([], []) == 0.0


def test_lowercase():
    assert corpus_bleu(["The Cat Sat Down"], ["the cat sat down"])["bleu"] == 0.0
    assert corpus_bleu(["The Cat Sat Down"], ["the cat sat down"], lowercase=True)["bleu"] == pytest.approx(100.0)


def test_chrf_by_hand():
    assert corpus_chrf(["a cat"], ["acat"]) == pytest.approx(100.0)  # whitespace does not count
    assert corpus_chrf(["ab"], ["cd"]) == 0.0
    # orders 1 and 2 occur on both sides: P = (2/2 + 1/1) / 2 = 1, R = (2/3 + 1/2) / 2 = 7/12;
    # F2 = 5 P R / (4 P + R) = 7/11
    assert corpus_chrf(["ab"], ["abc"]) == pytest.approx(100 * 7 / 11)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown BLEU tokeniser 'intl'"):
        corpus_bleu(["a"], ["a"], tokenize="intl")
    with pytest.raises(ValueError, match="1 references for 2 hypotheses"):
        corpus_bleu(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="a string"):
        corpus_chrf(["a"], [["a"], "a"])
    with pytest.raises(ValueError, match="no references for 1 hypotheses"):
        corpus_bleu(["a"], [])


# ---------------------------------------------------------------- against sacrebleu

FIXED = [
    (["The cat is on the mat.", "There is a cat on the mat!"], ["The cat sat on the mat.", "A cat is on the mat."]),
    (["It's 3.14, not 3,14 - or is it?", "e-mail me: tom@example.com"],
     ["It is 3.14 and not 3,14, is it?", "Send me an e-mail at tom@example.com."]),
    (['He said "yes" & left (quickly).', ""], ["He said 'yes' and left quickly.", "Nothing here."]),
    (["Ça coûte 5€ — très cher…", "Über-cool naïve café"], ["Ça coûte 5 € : très cher...", "über cool naive café"]),
]


@pytest.mark.parametrize(("hyps", "refs"), FIXED)
@pytest.mark.parametrize("lowercase", [False, True])
def test_fixed_cases_equal_sacrebleu(sacrebleu, hyps, refs, lowercase):
    _assert_same(sacrebleu, hyps, [refs], "13a", lowercase)


def test_chinese_equals_sacrebleu_zh(sacrebleu):
    hyps = ["我们明天去北京。", "他用iPhone 12拍了3张照片", "你好,Tom!"]
    refs = [["我们明天要去北京。", "他用 iPhone 12 拍了三张照片。", "你好，汤姆！"]]
    _assert_same(sacrebleu, hyps, refs, "zh", False)


def _assert_same(sacrebleu, hyps, refs, tok, lowercase):
    theirs = sacrebleu.corpus_bleu(hyps, refs, tokenize=tok, lowercase=lowercase)
    ours = corpus_bleu(hyps, refs, tokenize=tok, lowercase=lowercase)
    assert ours["bleu"] == pytest.approx(theirs.score, abs=1e-9)
    assert ours["precisions"] == pytest.approx(theirs.precisions, abs=1e-9)
    assert ours["bp"] == pytest.approx(theirs.bp, abs=1e-12)
    assert (ours["sys_len"], ours["ref_len"], ours["n"]) == (theirs.sys_len, theirs.ref_len, len(hyps))
    chrf = sacrebleu.metrics.CHRF(lowercase=lowercase).corpus_score(hyps, refs).score
    assert corpus_chrf(hyps, refs, lowercase=lowercase) == pytest.approx(chrf, abs=1e-9)


WORDS = ("the a cat dog sat on mat is was not it's don't Tom's e-mail well-known 3.14 1,000 5-3 10.5% "
         "U.S. etc. ... & &amp; &quot; &lt;b&gt; \"quoted\" 'single' (paren) [x] {y} a/b x+y @home #tag "
         "café naïve Über Straße élan — – “curly” ‘q’ … € © → ☺ ½").split()
PUNCTUATION = list(".,!?;:-\"'()")
CHINESE = list("我你他们是的了在有这个人不一大中国北京上海去来看好吃喝水茶猫狗。，！？、：；（）“”")


def _sentence(rng: random.Random, chinese: bool) -> str:
    if rng.random() < 0.08:
        return rng.choice(["", " ", "\t"])  # empty outputs and references
    parts = []
    for _ in range(rng.randint(1, 14)):
        roll = rng.random()
        if chinese and roll < 0.5:
            parts.append("".join(rng.choices(CHINESE, k=rng.randint(1, 4))))
        elif roll < 0.75:
            parts.append(rng.choice(WORDS))
        elif roll < 0.9:
            parts.append(rng.choice(PUNCTUATION))
        else:
            parts.append(str(rng.randint(0, 2000)))
    glue = [rng.choice(["", " ", " ", " ", "  "]) for _ in parts]
    return "".join(p + g for p, g in zip(parts, glue))


def _near(rng: random.Random, sentence: str, chinese: bool) -> str:
    """A reference that shares part of the output, so that the higher orders match too."""
    words = sentence.split()
    kept = [w for w in words if rng.random() < 0.7]
    if kept and rng.random() < 0.5:
        kept.insert(rng.randrange(len(kept) + 1), _sentence(rng, chinese))
    return " ".join(kept) if rng.random() < 0.9 else _sentence(rng, chinese)


@pytest.mark.parametrize("tok", ["13a", "zh", "none"])
def test_seeded_fuzz_equals_sacrebleu(sacrebleu, tok):
    rng = random.Random(17)
    chinese = tok == "zh"
    for _ in range(40):
        hyps = [_sentence(rng, chinese) for _ in range(rng.randint(1, 12))]
        streams = [[_near(rng, h, chinese) for h in hyps] for _ in range(rng.choice([1, 1, 2, 3]))]
        _assert_same(sacrebleu, hyps, streams, tok, rng.random() < 0.3)


def test_seeded_fuzz_tokenizers_equal_sacrebleu(sacrebleu):
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

    rng = random.Random(5)
    pieces = [*WORDS, *PUNCTUATION, *CHINESE, "<skipped>", "-\n", "\n", "x..", ",5", "5,", "\u2001", "\u2fa1",
              "\U00020001", "\u3000", "ｆｕｌｌ"]
    theirs = {"13a": Tokenizer13a(), "zh": TokenizerZh()}
    for _ in range(400):
        text = "".join(rng.choice(pieces) + rng.choice(["", " ", " "]) for _ in range(rng.randint(0, 12)))
        for name, tokenizer in theirs.items():
            assert tokenize(text, name) == tokenizer(text), (name, text)
