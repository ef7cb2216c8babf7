"""Checkpoints of format 1 (every task's data and predict fields in every recipe; face inference
options in task_state) load as format 2 and predict as they did."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import TINY_TEXTCNN

from dlcli import api, checkpoint, migrations, registry
from dlcli.checkpoint import PRETRAINED_DIR

V1_DATA_DEFAULTS = {  # DataConfig as format 1 wrote it for every task
    "train": None, "dev": None, "format": "tsv", "label_column": 0, "text_column": 1, "header": False,
    "text_field": "text", "label_field": "label", "encoding": "utf-8", "multi_label": False, "max_length": None,
    "vectors": None, "vectors_format": "auto", "token_column": 0, "tag_column": -1, "feature_columns": [],
    "column_separator": None, "tag_scheme": "bio", "train_scheme": None, "bigrams": False, "feature_min_freq": 1,
    "stage": None, "init": None, "extra_train": [], "recrop": 0, "backgrounds": None, "background_negatives": 30,
    "dev_fraction": 0.0, "augment": True, "cache_dir": None,
}
V1_PREDICT = {"batch_size": 256, "top_k": 1, "threshold": None}


def as_version_1(content: dict) -> dict:
    """A format-2 checkpoint's content as format 1 held it."""
    old = {**content, "format_version": 1}
    recipe = dict(content["recipe"])
    recipe["data"] = {**V1_DATA_DEFAULTS, **recipe["data"]}
    recipe["vocab"] = recipe.get("vocab") or {"type": "word", "lowercase": False, "min_freq": 1, "max_size": None}
    if content["task"] == "detect_faces":
        old["task_state"] = {**content["task_state"], "predict": recipe["predict"]}
    recipe["predict"] = dict(V1_PREDICT)
    old["recipe"] = recipe
    return old


def write_version_1(path, content: dict) -> None:
    torch.save(as_version_1(content), path)  # as format 1 was written: torch.save of plain data


def section_fields(task: str, section: str) -> set[str]:
    adapter = registry.task_adapter(task)
    return {f.name for f in dataclasses.fields(getattr(adapter, f"{section}_section"))}


def test_a_format_1_classifier_loads_trimmed_and_predicts_the_same(dataset, tmp_path):
    out = tmp_path / "new.pt"
    api.train(dataset.recipe(model=TINY_TEXTCNN, train={"epochs": 2}), out=out)
    old = tmp_path / "old.pt"
    write_version_1(old, checkpoint.load(out))
    content = checkpoint.read(old)
    assert content["format_version"] == checkpoint.FORMAT_VERSION
    assert set(content["recipe"]["data"]) == set(migrations._V1_DATA["classify"])  # later fields take defaults
    assert set(content["recipe"]["data"]) <= section_fields("classify", "data")
    assert content["recipe"]["predict"] == V1_PREDICT
    texts = [text for _, text in dataset.dev_rows()]

    def records(path):
        predictor = api.load_predictor(path)
        return [r for chunk in api.predict(predictor, [(list(range(len(texts))), texts)], top_k=2) for r in chunk]

    assert records(old) == records(out)


def test_a_format_1_face_detector_gets_its_options_from_task_state():
    content = {"format": checkpoint.MODEL_FORMAT, "task": "detect_faces",
               "recipe": {"task": "detect_faces", "data": {**V1_DATA_DEFAULTS, "stage": "onet", "format": "crops"},
                          "vocab": {"type": "word"}, "predict": dict(V1_PREDICT)},
               "task_state": {"stage": "onet", "stages": 3,
                              "predict": {"min_face": 40, "thresholds": [0.5, 0.6, 0.9], "factor": 0.6,
                                          "nms": [0.5, 0.7, 0.7, 0.7], "batch_size": 4, "border": "pad"}}}
    upgraded = migrations.upgrade(content, 1)
    assert upgraded["recipe"]["predict"] == content["task_state"]["predict"]
    assert upgraded["task_state"] == {"stage": "onet", "stages": 3}
    assert "vocab" not in upgraded["recipe"]
    assert set(upgraded["recipe"]["data"]) == set(migrations._V1_DATA["detect_faces"])  # later fields take defaults
    assert set(upgraded["recipe"]["data"]) <= section_fields("detect_faces", "data")
    assert content["task_state"]["predict"]["min_face"] == 40  # the input is left as it was


def test_a_converted_format_1_detector_keeps_stretch_borders():
    content = {"task": "detect_faces", "recipe": {"task": "detect_faces", "model": {"type": "mtcnn"},
                                                  "predict": {"min_face": 20, "border": "stretch"}}}
    upgraded = migrations.upgrade(content, 1)
    assert upgraded["recipe"]["predict"]["border"] == "stretch"
    assert set(upgraded["recipe"]["predict"]) == section_fields("detect_faces", "predict")


@pytest.mark.parametrize("name", ["en-ner", "zh-ner", "zh-seg", "zh-pos", "mtcnn"])
def test_shipped_models_are_format_1_files_read_as_format_2(name):
    path = PRETRAINED_DIR / f"{name}.pt"
    content = checkpoint.read(path)
    task = content["task"]
    assert set(content["recipe"]["data"]) <= section_fields(task, "data")  # en-ner predates data.vectors
    # they predate predict.tokenize (tag): a key a file lacks takes its default at prediction time
    assert set(content["recipe"]["predict"]) <= section_fields(task, "predict")
    loaded = api.load_model(name)
    assert not any(t.is_meta for t in [*loaded.model.parameters(), *loaded.model.buffers()])
