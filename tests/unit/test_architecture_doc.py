"""docs/architecture.md stays true: every file it names exists, and every declaration it lists is
one that the Task protocol, the classifier defaults and the step table have."""

from __future__ import annotations

import re
from pathlib import Path

from dlcli import steps
from dlcli.models.classifier import ClassifierDefaults
from dlcli.tasks import Task

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def paragraph(start: str) -> str:
    return DOC[DOC.index(start):].split("\n\n")[0]


def test_every_named_file_exists():
    named = set(re.findall(r"`((?:dlcli|tests|docs)/[\w/<>.]+\.(?:py|md))`", DOC))
    assert named
    for path in named:
        if "<" not in path:
            assert (ROOT / path).is_file(), path


def test_the_task_declarations_listed_are_the_protocols():
    for name in re.findall(r"`(\w+)`", paragraph("And implements:")):
        assert hasattr(Task, name), name
    for name in ("data_section", "predict_section", "vocabs", "metrics", "evaluate_options", "model_positional",
                 "command", "input_kind"):
        assert name in DOC and name in Task.__annotations__, name


def test_the_classifier_declarations_listed_are_the_defaults():
    listed = re.findall(r"`(\w+)`", paragraph("`dlcli/models/<family>.py`"))
    for name in ("min_length", "output_activation", "bag_input", "word_attention", "fit_labels",
                 "after_init_vectors", "after_optimizer_step"):
        assert name in listed and hasattr(ClassifierDefaults, name), name


def test_the_kernel_steps_listed_are_the_table():
    for name in steps.KERNEL_STEPS:
        assert f"`{name}`" in DOC
