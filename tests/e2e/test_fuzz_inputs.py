"""Fuzz: random bytes, random Unicode and random line lengths fed to classify, tag and embed. The
process always ends with 0 or 1, with a `dlcli: error:` line when it fails, never a traceback, and
every readable line gets its record, in order. (detect-faces has its own: test_faces_robustness.)"""

from __future__ import annotations

import os
import sys

import pytest
from helpers import run_measured
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

WORDS = ["the", "red", "cat", "EU", "Berlin", "北京", "人民", "don't", "U.S.", "3.14", "😀", "\t", "  ", "-", "'s"]

texts = st.one_of(
    st.text(max_size=200),  # any code point but surrogates: UTF-8 encodable
    st.lists(st.sampled_from(WORDS), max_size=60).map(" ".join),
    st.text(alphabet=st.characters(categories=["Zs", "Cc", "Mn", "So", "Lo"]), max_size=100),
)
lines = st.one_of(texts.map(lambda t: t.replace("\n", " ").replace("\r", " ").encode("utf-8")),
                  st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ")))
inputs = st.lists(lines, max_size=12)

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory):
    from dlcli.cli import run

    folder = tmp_path_factory.mktemp("vectors")
    vectors = folder / "tiny.vec"
    vectors.write_text("5 3\nthe 0.1 0.2 0.3\nred 0.3 0.1 0.0\ncat -0.2 0.4 0.1\n北京 0.5 0.5 0.5\nU.S. 0 1 0\n",
                       encoding="utf-8")
    assert run(["convert", "vectors", str(vectors), "--out", str(folder / "tiny.pt")]) == 0
    return folder / "tiny.pt"


def check(result, data: bytes, *, skipped: bool) -> None:
    assert result.code in (0, 1), (result.code, result.err)
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    if result.code == 1:
        assert "dlcli: error:" in result.err
    records = result.records()
    n_lines = data.count(b"\n")
    if result.code == 0 or skipped:
        assert [r["id"] for r in records] == list(range(1, n_lines + 1))
    else:  # stopped at a bad line: the lines before it were answered, in order
        assert [r["id"] for r in records] == list(range(1, len(records) + 1))


@pytest.mark.parametrize("skip", [False, True], ids=["stop", "skip"])
@FUZZ
@given(data=inputs.map(lambda xs: b"".join(x + b"\n" for x in xs)))
def test_classify_tag_embed_on_random_input(cli, trained, embeddings, skip, data):
    extra = ["--on-error", "skip"] if skip else []
    for command in (["classify", trained], ["tag", "en-ner"], ["tag", "zh-seg"], ["embed", embeddings]):
        check(cli(*command, *extra, "--quiet", stdin=data), data, skipped=skip)


@pytest.mark.parametrize("command", [["tag", "en-ner"], pytest.param(["tag", "zh-seg"], marks=pytest.mark.slow),
                                     ["classify", None], ["embed", None]],
                         ids=["tag en-ner", "tag zh-seg", "classify", "embed"])
def test_a_huge_random_line_keeps_memory_bounded(command, trained, embeddings, tmp_path):
    """One 400k-token line of mixed scripts (1.9M characters, each a token for zh-seg: 40 s, slow tier):
    answered as one record, within a fixed memory budget."""
    import random

    rng = random.Random(3)
    line = " ".join(rng.choice(WORDS + ["x" * rng.randint(1, 40)]) for _ in range(400_000))
    path = tmp_path / "huge.txt"
    path.write_text(line + "\n", encoding="utf-8")
    model = {"classify": trained, "embed": embeddings}.get(command[0], command[1])
    code, out, err, peak_mb = run_measured([sys.executable, "-m", "dlcli", command[0], model, path, "--quiet"],
                                           env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert code == 0, err
    assert len(out.splitlines()) == 1
    assert peak_mb < 1500, f"peak RSS {peak_mb:.0f} MB"
