"""`dlcli evaluate` on a face detector: a converted random-weights MTCNN and annotated photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import assert_fails, assert_ok
from PIL import Image
from test_detect_faces import converted_detector

KEYS = {"ap", "ap50", "precision", "recall", "n_images", "n_faces"}


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return converted_detector(tmp_path_factory.mktemp("mtcnn_eval"), seed=1)


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(3)
    (tmp_path / "images").mkdir()
    for name, (h, w) in (("a.png", (60, 80)), ("b.png", (72, 48))):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "images" / name)
    return tmp_path


def write_annotations(path, rows: list[dict]):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def detected(cli, detector, folder) -> list[dict]:
    result = cli("detect-faces", folder / "images" / "a.png", folder / "images" / "b.png", "--model", detector)
    assert_ok(result)
    return result.records()


def test_boxes_the_detector_finds_score_perfectly(cli, detector, photos):
    # The random nets fire all over the photos; annotating exactly what detect-faces reports must
    # give AP 1, which checks that evaluate runs the detector with the same options and boxes.
    records = detected(cli, detector, photos)
    assert all(r["faces"] for r in records)
    rows = [{"image": f"images/{name}", "boxes": [f["box"] for f in r["faces"]]}
            for name, r in zip(("a.png", "b.png"), records)]
    annotations = write_annotations(photos / "annotations.jsonl", rows)
    result = cli("evaluate", detector, annotations)
    assert_ok(result)
    report = result.json()
    assert KEYS <= set(report)
    n = sum(len(r["faces"]) for r in records)
    assert report["n_images"] == 2 and report["n_faces"] == report["n_detections"] == n
    assert report["ap"] == pytest.approx(1.0) and report["ap50"] == pytest.approx(1.0)
    assert report["precision"] == pytest.approx(1.0) and report["recall"] == pytest.approx(1.0)


def test_ignored_faces_and_the_iou_option(cli, detector, photos):
    records = detected(cli, detector, photos)
    first = [f["box"] for f in records[0]["faces"]]
    # photo a: one face, its first detection shifted by a quarter of its width (IoU 0.6);
    # photo b: every detection annotated, all ignored
    x1, y1, x2, y2 = first[0]
    shift = (x2 - x1) / 4
    rows = [{"image": "images/a.png", "boxes": [[x1 + shift, y1, x2 + shift, y2]]},
            {"image": "images/b.png", "boxes": [f["box"] for f in records[1]["faces"]],
             "ignore": [True] * len(records[1]["faces"])}]
    annotations = write_annotations(photos / "annotations.jsonl", rows)
    loose = cli("evaluate", detector, annotations, "--iou", "0.3")
    assert_ok(loose)
    report = loose.json()
    assert report["n_faces"] == 1 and report["iou"] == 0.3 and report["recall"] == 1.0
    # one hit among photo a's detections; photo b's sit on ignored faces and count for nothing
    assert report["precision"] == pytest.approx(1 / len(first)) and 0 < report["ap"] <= 1
    strict = cli("evaluate", detector, annotations, "--iou", "0.95").json()
    assert strict["recall"] == 0.0 and strict["ap"] == 0.0 and strict["ap50"] == report["ap50"]


def test_a_bad_annotation_line_names_file_and_line(cli, detector, photos):
    annotations = photos / "annotations.jsonl"
    annotations.write_text(json.dumps({"image": "images/a.png", "boxes": [[1, 1, 20, 20]]}) + "\n{not json\n",
                           encoding="utf-8")
    assert_fails(cli("evaluate", detector, annotations), 1, f"{annotations}:2", "not valid JSON")


def test_a_missing_photo_names_the_annotation_line(cli, detector, photos):
    annotations = write_annotations(photos / "annotations.jsonl",
                                    [{"image": "images/a.png", "boxes": []},
                                     {"image": "images/gone.png", "boxes": [[1, 1, 20, 20]]}])
    assert_fails(cli("evaluate", detector, annotations), 1, f"{annotations}:2", "gone.png")


def test_iou_is_for_face_detectors_and_must_be_a_fraction(cli, detector, photos, trained):
    annotations = write_annotations(photos / "annotations.jsonl", [{"image": "images/a.png", "boxes": []}])
    assert_fails(cli("evaluate", detector, annotations, "--iou", "0"), 2, "--iou must be above 0")
    dev = trained.parent / "dev.tsv"
    assert_fails(cli("evaluate", trained, dev, "--iou", "0.5"), 2, "--iou does not apply to a classify model")
