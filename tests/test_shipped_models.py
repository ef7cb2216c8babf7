"""The default models shipped in dlcli/pretrained/: they load by name and tag real text sensibly."""

from __future__ import annotations

import pytest
from helpers import assert_ok

from dlcli.checkpoint import PRETRAINED_DIR


def shipped(name: str):
    if not (PRETRAINED_DIR / f"{name}.pt").exists():
        pytest.fail(f"dlcli/pretrained/{name}.pt is missing: ship it with scripts/ship_pretrained.py")


def spans(result) -> list[tuple[str, str]]:
    return [(s["text"], s["label"]) for r in result.records() for s in r["spans"]]


def test_en_ner_is_the_default(cli):
    shipped("en-ner")
    # sentences written for this test, not taken from CoNLL-2003
    result = cli("tag", stdin=b"Angela Merkel met Emmanuel Macron in Paris on Tuesday .\n"
                              b"Shares of Microsoft rose 3 percent in New York after the Federal Reserve meeting .\n"
                              b"The United Nations said Kenya and Uganda signed the agreement .\n")
    assert_ok(result)
    assert spans(result) == [("Angela Merkel", "PER"), ("Emmanuel Macron", "PER"), ("Paris", "LOC"),
                             ("Microsoft", "ORG"), ("New York", "LOC"), ("Federal Reserve", "ORG"),
                             ("United Nations", "ORG"), ("Kenya", "LOC"), ("Uganda", "LOC")]


def test_zh_ner(cli):
    shipped("zh-ner")
    text = "国务院总理李克强今天在北京会见了法国外长。\n阿里巴巴集团的马云出生于浙江杭州。\n"
    result = cli("tag", "--model", "zh-ner", stdin=text.encode())
    assert_ok(result)
    assert spans(result) == [("国务院", "ORG"), ("李克强", "PER"), ("北京", "LOC"), ("法国", "LOC"),
                             ("阿里巴巴集团", "ORG"), ("马云", "PER"), ("浙江", "LOC"), ("杭州", "LOC")]


def test_zh_seg_then_zh_pos_in_a_pipeline(cli):
    shipped("zh-seg")
    shipped("zh-pos")
    segmented = cli("tag", "--model", "zh-seg", "--format", "text",
                    stdin="我们今天在北京参观了国家图书馆。\n他说这个问题很难解决。\n".encode())
    assert_ok(segmented)
    assert segmented.lines == ["我们 今天 在 北京 参观 了 国家 图书馆 。", "他 说 这个 问题 很 难 解决 。"]
    tagged = cli("tag", "--model", "zh-pos", "--format", "text", stdin=segmented.out.encode())
    assert_ok(tagged)
    assert tagged.lines[1] == "他/r 说/v 这个/r 问题/n 很/d 难/a 解决/v 。/w"
    assert [t.rpartition("/")[2] for t in tagged.lines[0].split()] == ["r", "t", "p", "ns", "v", "u", "n", "n", "w"]


def test_mtcnn_is_the_default_face_detector(cli, tmp_path):
    import numpy as np
    from PIL import Image

    shipped("mtcnn")
    # smooth noise: no face in it, and nothing a sane detector should call one
    pixels = np.random.default_rng(0).integers(0, 256, (60, 80, 3)).astype(np.uint8)
    Image.fromarray(pixels).resize((320, 240), Image.BILINEAR).save(tmp_path / "noise.png")
    result = cli("detect-faces", tmp_path / "noise.png")
    assert_ok(result)
    record = result.json()
    assert (record["width"], record["height"]) == (320, 240) and record["faces"] == []
