"""The one table of what a recipe can name: task -> model type -> builder, plus optimizers,
schedules and vocabularies. The `type` strings are part of the checkpoint format, and a
checkpoint can only ever name something listed here."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from dlcli.errors import RecipeError
from dlcli.models import rnn
from dlcli.models.attn_lstm import AttentionBiLSTM
from dlcli.models.charcnn import CharCNN
from dlcli.models.fasttext import FastText
from dlcli.models.mlp import MLPClassifier
from dlcli.models.mtcnn import MTCNN
from dlcli.models.rcnn import RCNN
from dlcli.models.tagger import bilstm_crf, bilstm_softmax
from dlcli.models.textcnn import TextCNN
from dlcli.models.transformer import TransformerClassifier
from dlcli.recipe import Component, bind_kwargs
from dlcli.schedules import OPTIMIZERS, SCHEDULES
from dlcli.tasks.classify import ClassifyTask
from dlcli.tasks.detect_faces import DetectFacesTask
from dlcli.tasks.tag import TagTask
from dlcli.text import vocab
from dlcli.text.ngrams import build_ngram_vocab

# Builders take data-derived sizes positionally and recipe knobs keyword-only.
MODELS: dict[str, dict[str, Any]] = {
    "classify": {
        "mlp": MLPClassifier, "textcnn": TextCNN, "fasttext": FastText,
        "rnn": rnn.rnn, "lstm": rnn.lstm, "gru": rnn.gru, "bilstm": rnn.bilstm, "bigru": rnn.bigru,
        "attn_lstm": AttentionBiLSTM, "rcnn": RCNN, "charcnn": CharCNN, "transformer": TransformerClassifier,
    },
    "tag": {"bilstm_crf": bilstm_crf, "bilstm_softmax": bilstm_softmax},
    "detect_faces": {"mtcnn": MTCNN},
}

TASKS = {"classify": ClassifyTask, "tag": TagTask, "detect_faces": DetectFacesTask}

VOCABS = {
    "word": vocab.build_word_vocab,
    "char": vocab.build_char_vocab,
    "bpe": vocab.build_bpe_vocab,
    "wordpiece": vocab.build_wordpiece_vocab,
    "ngrams": build_ngram_vocab,
}

# How many leading positional arguments each kind of builder takes from the data, not the recipe
# (a model builder: as many as its task adapter's `model_sizes()` gives).
_POSITIONAL = {"optimizer": 1, "lr_schedule": 3, "vocab": 1}


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
    builder = lookup(lookup(MODELS, task, "task"), component.type, "model.type")
    skip = getattr(task_adapter(task), "model_positional", 3)
    return builder, bind_kwargs(builder, component.kwargs, "model", skip=skip)


@dataclass(frozen=True)
class Resolved:
    """Every builder a recipe names, each with its checked, defaults-filled kwargs."""

    adapter: Any
    model: tuple[Any, dict]
    vocab: tuple[Any, dict]
    optimizer: tuple[Any, dict]
    lr_schedule: tuple[Any, dict]

    def recipe_dict(self, recipe) -> dict:
        """The recipe as a plain dict with every component's defaults written out."""
        out = recipe.to_dict()
        out["model"] = {"type": recipe.model.type, **self.model[1]}
        out["vocab"] = {"type": recipe.vocab.type, **self.vocab[1]}
        out["train"]["optimizer"] = {"type": recipe.train.optimizer.type, **self.optimizer[1]}
        out["train"]["lr_schedule"] = {"type": recipe.train.lr_schedule.type, **self.lr_schedule[1]}
        return out


def resolve_recipe(recipe) -> Resolved:
    """Bind every component of a recipe: `recipes validate` catches all that training would."""
    parts = Resolved(
        adapter=task_adapter(recipe.task),
        model=model_builder(recipe.task, recipe.model),
        vocab=resolve("vocab", VOCABS, recipe.vocab, "vocab"),
        optimizer=resolve("optimizer", OPTIMIZERS, recipe.train.optimizer, "train.optimizer"),
        lr_schedule=resolve("lr_schedule", SCHEDULES, recipe.train.lr_schedule, "train.lr_schedule"),
    )
    parts.adapter.check_recipe(recipe)
    metric = recipe.train.metric
    if metric is not None and metric not in parts.adapter.metrics:
        close = difflib.get_close_matches(metric, parts.adapter.metrics, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"choose one of: {', '.join(parts.adapter.metrics)}"
        raise RecipeError(f"train.metric: the {recipe.task} task reports no {metric!r}", hint)
    _try_build(parts)
    return parts


def build_optimization(parts: Resolved, params, total_steps: int, steps_per_epoch: int):
    """The optimizer over `params` and its learning-rate schedule; bad values are RecipeErrors."""
    (opt_cls, opt_kwargs), (sched_fn, sched_kwargs) = parts.optimizer, parts.lr_schedule
    try:
        optimizer = opt_cls(params, **opt_kwargs)
    except (ValueError, TypeError) as exc:
        raise RecipeError(f"train.optimizer: {exc}") from None
    try:
        return optimizer, sched_fn(optimizer, total_steps, steps_per_epoch, **sched_kwargs)
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        raise RecipeError(f"train.lr_schedule: {exc}") from None


def _try_build(parts: Resolved) -> None:
    """Build on a dummy parameter, so bad optimizer or schedule values fail now, not mid-run."""
    import torch

    build_optimization(parts, [torch.zeros(1, requires_grad=True)], 10, 5)
