"""Starting a task's model from a pretrained language model (`data.init`), one way for every task
that fine-tunes one (classify: gpt and bert classifiers; tag: the bert tagger).

The pretrained checkpoint gives the vocabulary (its tokenizer: the recipe's `vocab:` section is
not used), the architecture (every model knob the recipe leaves None) and, unless
`data.init_weights: false` asks for a random-init baseline, the weights. A model declares what it
can start from (`pretrained`: the model type of the language model, or None), takes the weights
itself (`start_from`) and splits its parameters into layers for `train.layer_lr_decay`
(`layer_groups`, input first, head last, or None).
"""

from __future__ import annotations

from dataclasses import dataclass

from dlcli.errors import DataError, RecipeError
from dlcli.recipe import checkpoint_ref
from dlcli.tasks import DataSection

LANGUAGE_MODEL_TASKS = {"lm": "gpt", "mlm": "bert"}  # the tasks a pretrained start comes from, and their models


@dataclass(frozen=True)
class PretrainedData(DataSection):
    """The `data:` keys of a pretrained start; a task's data section inherits them."""

    # a pretrained language model (a gpt, task lm; a bert, task mlm, trained or made by `dlcli
    # convert bert`) the model starts from: its tokenizer becomes the vocabulary (the recipe's vocab
    # section is not used), its architecture fills the model knobs left out, its weights the model's
    init: str | None = checkpoint_ref()
    init_weights: bool = True  # false: data.init's tokenizer and architecture only, weights random (a baseline)


def init_vocab(init, what: str, tasks: tuple[str, ...] = tuple(LANGUAGE_MODEL_TASKS)):
    """The vocabulary of the loaded `data.init` model, which must be of one of `tasks` (`what` the
    model being trained, for the message)."""
    if init.data["task"] not in tasks:
        kinds = "; ".join(f"task {t}: {LANGUAGE_MODEL_TASKS[t]}" for t in tasks)
        raise DataError(f"data.init: {init.path} is a {init.data['task']} model; {what} starts from a "
                        f"pretrained language model ({kinds})")
    return init.task.vocab


def with_init_vocab(resolved: dict, init) -> dict:
    """The resolved recipe with data.init's vocab section (the tokenizer the model reads with) in
    place of its own, which a pretrained start leaves unused."""
    if init is None or "vocab" not in init.recipe:
        return resolved
    return {**resolved, "vocab": init.recipe["vocab"]}


def pretrained_kwargs(kwargs: dict, init, vocab) -> dict:
    """The model knobs a pretrained start fixes, and the ids of the vocabulary's own special
    tokens (BERT's [CLS] and [SEP]), put where the recipe leaves them out (None)."""
    known = dict(init.data["model"]["kwargs"]) if init is not None else {}
    for name in ("cls_id", "sep_id"):
        if getattr(vocab, name, None) is not None:
            known.setdefault(name, getattr(vocab, name))
    return {k: known[k] if v is None and k in known else v for k, v in kwargs.items()}


def start_model(model, init, weights: bool) -> str | None:
    """Check that `model` can start from the loaded `init` (None: nothing to do) and, if `weights`,
    copy its weights in. Returns a note for the user when weights were taken."""
    if init is None:
        return None
    kind = init.data["model"]["type"]
    if model.pretrained != kind:
        raise RecipeError(f"data.init: {init.path} is a {kind} language model, and this model cannot start "
                          "from one", f"use model type {kind}" if kind in LANGUAGE_MODEL_TASKS.values() else None)
    if not weights:
        return None
    try:
        model.start_from(init.model, init.data["model"]["kwargs"])
    except ValueError as exc:
        raise RecipeError(f"data.init: {exc}") from None
    return f"the model starts from {init.path}"


def layer_groups(model) -> list[list]:
    """The model's parameters in layers for train.layer_lr_decay; a model of one block refuses it."""
    layers = model.layer_groups()
    if layers is None:
        raise RecipeError("train.layer_lr_decay: this model is not built in layers",
                          "use it with a pretrained transformer (gpt, bert), or remove it")
    return layers
