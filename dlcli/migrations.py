"""Upgrades of checkpoint content written by older dlcli versions, one format version at a time.

Each step is a frozen transform of plain data: it names the fields as they were then, so later
changes to the recipe sections need steps of their own and never reinterpret an old file.
"""

from __future__ import annotations

import copy

# Version 1 stored every task's `data` and `predict` fields in every recipe. Version 2 keeps only
# the task's own; these are the fields each task had at version 1.
_V1_DATA = {
    "classify": ("train", "dev", "encoding", "format", "label_column", "text_column", "header", "text_field",
                 "label_field", "multi_label", "max_length", "vectors", "vectors_format"),
    "tag": ("train", "dev", "encoding", "format", "token_column", "tag_column", "feature_columns",
            "column_separator", "tag_scheme", "train_scheme", "bigrams", "feature_min_freq", "max_length", "vectors",
            "vectors_format"),
    "detect_faces": ("train", "dev", "encoding", "format", "stage", "init", "extra_train", "recrop", "backgrounds",
                     "background_negatives", "dev_fraction", "augment", "cache_dir"),
}
_V1_PREDICT = {"classify": ("batch_size", "top_k", "threshold"), "tag": ("batch_size",)}
# A version 1 face detector kept its inference options in task_state (or, converted, in the recipe).
_V1_FACE_PREDICT = {"min_face": 20, "thresholds": [0.6, 0.7, 0.7], "factor": 0.709, "nms": [0.5, 0.7, 0.7, 0.7],
                    "batch_size": 8, "border": "stretch"}


def _v1_to_v2(data: dict) -> dict:
    task, recipe = data.get("task") or data.get("recipe", {}).get("task"), data.get("recipe")
    if not isinstance(recipe, dict) or task not in _V1_DATA:
        return data
    recipe = dict(recipe)
    if isinstance(recipe.get("data"), dict):
        recipe["data"] = {k: v for k, v in recipe["data"].items() if k in _V1_DATA[task]}
    if task == "detect_faces":
        state = dict(data.get("task_state") or {})
        stored = state.pop("predict", None) or recipe.get("predict") or {}
        recipe["predict"] = {k: stored.get(k, v) for k, v in _V1_FACE_PREDICT.items()}
        recipe.pop("vocab", None)  # a word vocabulary it never used
        if "task_state" in data:
            data = {**data, "task_state": state}
    elif isinstance(recipe.get("predict"), dict):
        recipe["predict"] = {k: v for k, v in recipe["predict"].items() if k in _V1_PREDICT[task]}
    return {**data, "recipe": recipe}


# format version -> the step that brings it to the next one
STEPS = {1: _v1_to_v2}


def upgrade(data: dict, version: int) -> dict:
    """`data` (of format `version`) as the current format holds it; the input is left untouched."""
    if version in STEPS:
        data = copy.copy(data)
    while version in STEPS:
        data = STEPS[version](data)
        version += 1
    data["format_version"] = version
    return data
