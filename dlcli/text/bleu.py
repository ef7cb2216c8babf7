"""Corpus BLEU (Papineni et al., 2002) and chrF (Popović, 2015) that give sacrebleu's numbers.

The tokenisers follow mteval-v13a.pl (`13a`, the WMT standard) and sacrebleu's `zh` (every Chinese
character its own token, the rest split like 13a); scores follow sacrebleu 2.x's defaults: BLEU
with 4-gram precisions, "exp" smoothing (NIST's: the k-th order without a match counts as
1 / (2^k * total)), the closest reference length for the brevity penalty; chrF with character
6-grams, beta 2, whitespace left out, precision and recall averaged over the orders that occur.
Written from the rules, not copied; tests/unit/test_bleu.py checks equality with sacrebleu.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

MAX_ORDER = 4  # BLEU n-gram order
CHAR_ORDER = 6  # chrF character n-gram order
BETA = 2  # chrF weighs recall beta times as much as precision

# mteval-v13a: ASCII punctuation becomes its own token, except the apostrophe, the hyphen (split only
# after a digit), and the period and comma (kept inside numbers such as 3.14 and 1,000).
_PUNCTUATION = str.maketrans({c: f" {c} " for c in "!\"#$%&()*+/:;<=>?@[\\]^_`{|}~"})
_PERIOD_AFTER = re.compile(r"([^0-9])([.,])")
_PERIOD_BEFORE = re.compile(r"([.,])([^0-9])")
_DASH_AFTER_DIGIT = re.compile(r"([0-9])(-)")
_ENTITIES = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"))  # in this order

# What sacrebleu's `zh` tokeniser takes for a Chinese character (code points, inclusive). Its table
# compares characters with strings; two entries meant as U+20000..U+2A6D6 and U+2F800..U+2FA1D are
# written with 4-digit escapes, so they cover U+2001..U+2A6D (general punctuation such as dashes,
# curly quotes and the ellipsis, arrows, maths) and U+2F81..U+2FA1 instead. Kept for equal scores.
_ZH_RANGES = (
    (0x2001, 0x2A6D), (0x2E80, 0x2EFF), (0x2F00, 0x2FDF), (0x2FF0, 0x2FFF), (0x3000, 0x303F),
    (0x3100, 0x312F), (0x31A0, 0x31BF), (0x31C0, 0x31EF), (0x3200, 0x32FF), (0x3300, 0x33FF),
    (0x3400, 0x4DB5), (0x4E00, 0x9FBB), (0xF900, 0xFA2D), (0xFA30, 0xFA6A), (0xFA70, 0xFAD9),
    (0xFE10, 0xFE1F), (0xFE30, 0xFE4F), (0xFF00, 0xFFEF),
)
_ZH_CHAR = re.compile("([" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in _ZH_RANGES) + "])")


def _split_punctuation(text: str) -> str:
    """The language-dependent half of mteval-v13a, shared by `13a` and `zh`."""
    text = text.translate(_PUNCTUATION)
    if "." in text or "," in text:  # (the substitutions cost more than these tests)
        text = _PERIOD_AFTER.sub(r"\1 \2 ", text)
        text = _PERIOD_BEFORE.sub(r" \1 \2", text)
    if "-" in text:
        text = _DASH_AFTER_DIGIT.sub(r"\1 \2 ", text)
    return " ".join(text.split())


def _tokenize_13a(text: str) -> str:
    text = text.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in text:
        for entity, char in _ENTITIES:
            text = text.replace(entity, char)
    return _split_punctuation(f" {text} ")


def _tokenize_zh(text: str) -> str:
    return _split_punctuation(_ZH_CHAR.sub(r" \1 ", text.strip()))


def _tokenize_none(text: str) -> str:
    return text


_TOKENIZERS = {"13a": _tokenize_13a, "zh": _tokenize_zh, "none": _tokenize_none}


def tokenize(text: str, name: str = "13a") -> str:
    """`text` split into tokens joined by single spaces, as sacrebleu's tokeniser `name` does it:
    "13a" (mteval-v13a), "zh" (Chinese characters split off, the rest like 13a's punctuation rules,
    without its HTML-entity decoding) or "none" (unchanged)."""
    return _tokenizer(name)(text)


def _tokenizer(name: str):
    try:
        return _TOKENIZERS[name]
    except KeyError:
        raise ValueError(f"unknown BLEU tokeniser {name!r}: choose one of {', '.join(_TOKENIZERS)}") from None


def _streams(hypotheses: Sequence[str], references) -> list[tuple[str, ...]]:
    """The references of each sentence: `references` is one stream (a list of strings) or several
    (a list of such lists), each as long as `hypotheses`; a None in a stream means no reference."""
    if len(references) and isinstance(references[0], str):
        references = [references]
    if not len(references) and len(hypotheses):
        raise ValueError(f"no references for {len(hypotheses)} hypotheses")
    for k, stream in enumerate(references):
        if isinstance(stream, str) or len(stream) != len(hypotheses):
            got = "a string" if isinstance(stream, str) else f"{len(stream)} references"
            raise ValueError(f"reference stream {k}: {got} for {len(hypotheses)} hypotheses")
    return [tuple(r for r in refs if r is not None) for refs in zip(*references)]


def _word_ngrams(tokens: list[str]) -> Counter:
    """All 1- to 4-grams (MAX_ORDER) as tuples; their length tells the order."""
    second, third, fourth = tokens[1:], tokens[2:], tokens[3:]
    return Counter([*zip(tokens), *zip(tokens, second), *zip(tokens, second, third),
                    *zip(tokens, second, third, fourth)])


def corpus_bleu(hypotheses: list[str], references: list[list[str]] | list[str], tokenize: str = "13a",
                lowercase: bool = False) -> dict:
    """sacrebleu's default corpus BLEU as a dict: `bleu` (0-100), `precisions` (the four n-gram
    precisions, 0-100, as smoothed), `bp` (brevity penalty), `sys_len` and `ref_len` (tokens), `n`
    (sentences). `references` is one reference per sentence, or several parallel streams of them
    (None where a sentence has fewer). `tokenize`: "13a", "zh" or "none" (see `tokenize`)."""
    split = _tokenizer(tokenize)
    refs_of = _streams(hypotheses, references)

    @lru_cache(maxsize=2**16)
    def prepare(text: str) -> list[str]:
        if lowercase:
            text = text.lower()
        return split(text.rstrip()).split()

    correct, total = [0] * MAX_ORDER, [0] * MAX_ORDER
    sys_len = ref_len = 0
    for hypothesis, refs in zip(hypotheses, refs_of):
        clip: Counter = Counter()
        lengths = []
        for k, ref in enumerate(refs):
            tokens = prepare(ref)
            lengths.append(len(tokens))
            grams = _word_ngrams(tokens)
            clip = grams if k == 0 else clip | grams  # the most times any one reference holds each n-gram
        tokens = prepare(hypothesis)
        size = len(tokens)
        sys_len += size
        ref_len += min(lengths, key=lambda r: (abs(size - r), r), default=0)  # closest; ties -> shorter
        for n in range(MAX_ORDER):
            total[n] += max(0, size - n)
        grams = _word_ngrams(tokens)
        for gram in grams.keys() & clip.keys():
            correct[len(gram) - 1] += min(grams[gram], clip[gram])
    return _bleu_from_counts(correct, total, sys_len, ref_len, len(hypotheses))


def _bleu_from_counts(correct: list[int], total: list[int], sys_len: int, ref_len: int, n: int) -> dict:
    if sys_len >= ref_len:
        bp = 1.0
    else:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    precisions = [0.0] * MAX_ORDER
    score = 0.0
    if any(correct):  # no match at all scores 0, however it would smooth
        halvings = 1.0
        for k in range(MAX_ORDER):
            if total[k] == 0:  # no k-grams in the output: this and the higher orders stay 0
                break
            if correct[k]:
                precisions[k] = 100.0 * correct[k] / total[k]
            else:
                halvings *= 2
                precisions[k] = 100.0 / (halvings * total[k])
        # A zero precision contributes log 0 (sacrebleu floors it at -9999999999): the score is 0.
        logs = [math.log(p) if p else -9999999999 for p in precisions]
        score = bp * math.exp(sum(logs) / MAX_ORDER)
    return {"bleu": score, "precisions": precisions, "bp": bp, "sys_len": sys_len, "ref_len": ref_len, "n": n}


def _char_ngrams(text: str) -> tuple[Counter, int]:
    """Character 1- to 6-grams of `text` without its whitespace (length tells the order), and its length."""
    chars = "".join(text.split())
    size = len(chars)
    return Counter([chars[i : i + n] for n in range(1, CHAR_ORDER + 1) for i in range(size - n + 1)]), size


def _chrf_counts(hyp: tuple[Counter, int], ref: tuple[Counter, int]) -> list[int]:
    """[hyp n-grams, ref n-grams, matches] for each order; output n-grams count only where the
    reference has n-grams of that order."""
    (hyp_grams, hyp_len), (ref_grams, ref_len) = hyp, ref
    matches = [0] * CHAR_ORDER
    for gram in hyp_grams.keys() & ref_grams.keys():
        matches[len(gram) - 1] += min(hyp_grams[gram], ref_grams[gram])
    counts = []
    for n in range(1, CHAR_ORDER + 1):
        in_ref = max(0, ref_len - n + 1)
        counts += [max(0, hyp_len - n + 1) if in_ref else 0, in_ref, matches[n - 1]]
    return counts


def _chrf_score(counts: Sequence[int]) -> float:
    """F-beta of the precision and recall averaged over the orders both sides have n-grams of."""
    factor = BETA**2
    precision = recall = 0.0
    orders = 0
    for k in range(CHAR_ORDER):
        n_hyp, n_ref, n_match = counts[3 * k : 3 * k + 3]
        if n_hyp > 0 and n_ref > 0:
            precision += n_match / n_hyp
            recall += n_match / n_ref
            orders += 1
    if orders == 0:
        return 0.0
    precision /= orders
    recall /= orders
    if not precision + recall:
        return 0.0
    score = (1 + factor) * precision * recall
    score /= factor * precision + recall
    return 100 * score


def corpus_chrf(hypotheses: list[str], references: list[list[str]] | list[str], lowercase: bool = False) -> float:
    """sacrebleu's default corpus chrF (`CHRF()`: character 6-grams, no word n-grams, beta 2, spaces
    ignored), 0-100. With several reference streams each sentence counts against its best reference."""
    refs_of = _streams(hypotheses, references)
    prepare = str.lower if lowercase else str
    totals = [0] * (3 * CHAR_ORDER)
    for hypothesis, refs in zip(hypotheses, refs_of):
        hyp = _char_ngrams(prepare(hypothesis))
        best, best_score = None, -1.0
        for ref in refs:
            counts = _chrf_counts(hyp, _char_ngrams(prepare(ref)))
            score = _chrf_score(counts) if len(refs) > 1 else 0.0
            if score > best_score:
                best, best_score = counts, score
        for i, value in enumerate(best or ()):
            totals[i] += value
    return _chrf_score(totals)
