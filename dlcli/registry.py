"""The one table of what a recipe can name: task -> model type -> builder, plus optimizers,
schedules and vocabularies. The `type` strings are part of the checkpoint format, and a
checkpoint can only ever name something listed here."""

from __future__ import annotations

import difflib
from typing import Any

from dlcli.errors import RecipeError
from dlcli.models.fasttext import FastText
from dlcli.models.mlp import MLPClassifier
from dlcli.models.textcnn import TextCNN
from dlcli.recipe import Component, bind_kwargs
from dlcli.schedules import OPTIMIZERS, SCHEDULES
from dlcli.tasks.classify import ClassifyTask
from dlcli.text import vocab

# Builders take data-derived sizes positionally and recipe knobs keyword-only.
MODELS: dict[str, dict[str, Any]] = {
    "classify": {"mlp": MLPClassifier, "textcnn": TextCNN, "fasttext": FastText},
}

TASKS = {"classify": ClassifyTask}

VOCABS = {
    "word": vocab.build_word_vocab,
    "char": vocab.build_char_vocab,
    "bpe": vocab.build_bpe_vocab,
    "wordpiece": vocab.build_wordpiece_vocab,
}

# How many leading positional arguments each kind of builder takes from the data, not the recipe.
_POSITIONAL = {"model": 3, "optimizer": 1, "lr_schedule": 3, "vocab": 1}


def lookup(table: dict, name: str, dotted: str) -> Any:
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, list(table), n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}?" if close else f"choose one of: {', '.join(sorted(table))}"
    raise RecipeError(f"{dotted}: unknown type {name!r}", hint)


def task_adapter(task: str):
    return lookup(TASKS, task, "task")


def resolve(kind: str, table: dict, component: Component, dotted: str) -> tuple[Any, dict]:
    """The builder a component names and its checked, coerced, defaults-filled kwargs."""
    builder = lookup(table, component.type, f"{dotted}.type")
    return builder, bind_kwargs(builder, component.kwargs, dotted, skip=_POSITIONAL[kind])


def model_builder(task: str, component: Component) -> tuple[Any, dict]:
    return resolve("model", lookup(MODELS, task, "task"), component, "model")


def check_recipe(recipe) -> None:
    """Bind every component of a recipe, so `recipes validate` catches what training would."""
    task_adapter(recipe.task)
    model_builder(recipe.task, recipe.model)
    resolve("vocab", VOCABS, recipe.vocab, "vocab")
    resolve("optimizer", OPTIMIZERS, recipe.train.optimizer, "train.optimizer")
    resolve("lr_schedule", SCHEDULES, recipe.train.lr_schedule, "train.lr_schedule")
