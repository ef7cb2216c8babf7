"""The contract every task keeps with the trainer, the loading layer and the facade.

A task adapter turns a recipe's data into batches, a loss and dev metrics for the trainer, and
inputs into JSON-ready records for the CLI. Adapters subclass `Task` (a `typing.Protocol`) to take
its declared defaults for the optional parts; api.py, training.py and trainer.py call only what is
declared here, so they never name a task or a model, and never ask either what it can do.

A task also declares its recipe sections: `data` and `predict` are dataclasses of its own (the
recipe parser reads and checks them; a checkpoint stores only their fields), `vocabs` names the
vocabularies it builds, and `metrics` says which way each of its metrics is better.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from dlcli.errors import DataError, RecipeError
from dlcli.recipe import bounded, check_bounds, data_path


@dataclass(frozen=True)
class DataSection:
    """The `data:` keys every task has; each task extends it with its own."""

    train: str | None = data_path()
    dev: str | None = data_path()
    encoding: str = "utf-8"


@dataclass(frozen=True)
class PredictSection:
    """The `predict:` keys every task has: inference defaults stored in the checkpoint."""

    batch_size: int = bounded(256, ge=1)


class Task(Protocol):
    """What a task adapter is. Subclass it explicitly to inherit the defaults below."""

    name: ClassVar[str]
    command: ClassVar[str] = "dlcli predict"  # the CLI command made for the task's models
    input_kind: ClassVar[str] = "text"  # what `predict` reads: "text" (lines) or "path" (file paths)
    data_section: ClassVar[type] = DataSection
    predict_section: ClassVar[type] = PredictSection
    # The vocabularies the task builds: ("vocab",) reads one `vocab:` component; () none, and a
    # `vocab:` key is then an error; several names read `vocab: {name: component, ...}`.
    vocabs: ClassVar[tuple[str, ...]] = ("vocab",)
    metrics: ClassVar[dict[str, bool]]  # metric name -> higher is better
    model_positional: ClassVar[int] = 3  # data-derived positional arguments of the model builders
    evaluate_options: ClassVar[frozenset[str]] = frozenset()  # options `evaluate` takes besides records
    autograd: ClassVar[bool] = True  # its models can train by autograd (not only with their own kernel)
    notes: list[str]  # data problems worth telling the user, not fatal

    # ------------------------------------------------------------ recipe and construction

    @classmethod
    def check_recipe(cls, recipe) -> None:
        """Refuse what the task cannot train, naming the recipe key."""

    @classmethod
    def read(cls, path, data) -> Any:
        """Records of a labelled file, read with the `data` section's options."""
        ...

    @classmethod
    def from_records(cls, recipe, vocabs: dict[str, tuple[Callable, dict]], train: Any, dev: Any,
                     init: Any = None) -> Task:
        """A task ready to train: vocabularies built from `train`, splits encoded. `vocabs` maps each
        declared vocabulary name to its (builder, kwargs); `init` is the loaded `data.init` model."""
        ...

    @classmethod
    def from_checkpoint(cls, content: dict) -> Task:
        """The task as a checkpoint's content (`payload` plus the recipe) describes it."""
        ...

    def payload(self) -> dict:
        """What the checkpoint holds for the task besides the recipe and weights."""
        ...

    def model_sizes(self) -> tuple:
        """The data-derived positional arguments of the model builder."""
        ...

    def model_kwargs(self, kwargs: dict) -> dict:
        """The model builder's keyword arguments (the recipe's, defaults filled in) completed from
        the data: a pretrained start's architecture where the recipe leaves a knob None. The
        checkpoint stores what this returns."""
        return kwargs

    def stored_recipe(self, resolved: dict) -> dict:
        """The resolved recipe (every component's defaults written out) as the checkpoint stores it,
        completed from the data: a pretrained start's vocab section in place of the recipe's,
        which it left unused."""
        return resolved

    def layer_groups(self, model) -> list[list]:
        """The model's parameters in layers, the input's first and the output's last, for
        `train.layer_lr_decay`; a task whose models declare none refuses the key."""
        raise RecipeError(f"train.layer_lr_decay: the {self.name} task's models declare no layers",
                          "remove train.layer_lr_decay")

    def prepare_model(self, model) -> None:
        """Before training: start the model from what the data gives (pretrained vectors, label
        frequencies, earlier nets) and learn what the task needs to know of it."""

    def describe(self) -> str:
        """What the model trains on, for the line announcing a run."""
        return f"{self.num_train:,} examples"

    @property
    def default_metric(self) -> str:
        return next(iter(self.metrics))

    # ------------------------------------------------------------ training

    @property
    def has_dev(self) -> bool: ...

    @property
    def num_train(self) -> int: ...

    def train_batches(self, batch_size: int, generator) -> list[list[int]]:
        """Indices into the train split, one list per optimizer step, in the epoch's order."""
        ...

    def collate(self, indices: list[int]) -> dict:
        """A batch of tensors (on the CPU) for `loss`."""
        ...

    def loss(self, model, batch: dict):
        ...

    def after_step(self, model) -> None:
        """After each optimizer step: constraints on the weights (TextCNN's max-norm)."""

    def train_state(self) -> dict:
        """What the task carries from one training step to the next (an RNN language model's
        recurrent state), saved with the trainer's state so that --resume continues exactly."""
        return {}

    def load_train_state(self, state: dict) -> None:
        """Take back what `train_state` returned (an empty dict: nothing was saved)."""

    def kernel_batches(self, batch_size: int, seed: int, parts: int = 1) -> list:
        """Batches for a model's own training kernel (a step strategy such as hogwild_sgd), in an
        order drawn from `seed` (the epoch's); `parts` is the kernel's thread count, for a task that
        gives each thread its own stretch of data. A batch's len() is its count of training examples."""
        raise RecipeError(f"train.optimizer: the {self.name} task has no batches for a training kernel")

    def collate_kernel(self, indices: list[int]) -> dict:
        raise RecipeError(f"train.optimizer: the {self.name} task has no batches for a training kernel")

    def evaluate(self, model, records: Any = None, options: dict | None = None) -> dict:
        """Metrics on the dev split, or on `records` read from a labelled file."""
        ...

    # ------------------------------------------------------------ inference

    def check_options(self, options: dict) -> None:
        """Refuse prediction options out of range, naming the option."""

    def predict(self, model, ids: list, inputs: list, options: dict) -> list[dict]:
        """JSON-ready records for a chunk of inputs (text lines or image paths), in input order.
        `options`: the checkpoint's `predict` section overridden by the caller's options."""
        ...

    def generate(self, model, ids: list, prompts: list[str], options: dict,
                 on_text: Callable[[str], None] | None = None) -> list[dict]:
        """`dlcli generate`: records of text generated from each prompt, in input order; `on_text`
        takes the text of a single prompt's continuation piece by piece as it is made."""
        raise DataError(f"a {self.name} model does not generate text", f"use {self.command} with it")


def refuse_foreign_options(options: dict, allowed: Iterable[str], model: str, hint: str) -> None:
    """Refuse a given option (not None) that the command does not take for this kind of `model`
    ("a seq2seq model, which decodes by beam search"), naming its flag; `hint` lists its own."""
    allowed = set(allowed)
    foreign = sorted(k for k, v in options.items() if k not in allowed and v is not None)
    if foreign:
        raise RecipeError(f"--{foreign[0].replace('_', '-')}: does not apply to {model}", hint)


def check_section_options(section: type, options: dict) -> None:
    """Refuse given options outside the bounds or choices of their field in a `predict` section,
    naming each flag."""
    errors: list[str] = []
    for f in dataclasses.fields(section):
        value, flag = options.get(f.name), "--" + f.name.replace("_", "-")
        if value is None:
            continue
        if "bounds" in f.metadata:
            check_bounds(value, f.metadata["bounds"], flag, errors)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            errors.append(f"{flag}: {value!r} is not one of {', '.join(map(str, choices))}")
    if errors:
        raise RecipeError("; ".join(errors))


def unseen_labels_note(known, dev_labels, source: str, what: str = "labels") -> str | None:
    """A note naming the dev set's labels that training never saw (the model cannot predict them,
    so every one counts as an error), or None when there are none."""
    known = set(known)
    counts: dict[str, int] = {}
    for labels in dev_labels:
        for label in labels:
            if label not in known:
                counts[label] = counts.get(label, 0) + 1
    if not counts:
        return None
    names = sorted(counts, key=lambda x: (-counts[x], x))
    shown = ", ".join(f"{name!r} ({counts[name]:,})" for name in names[:10])
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return (f"{source}: {what} never seen in training: {shown}{more}; the model cannot predict them, "
            "so they count as errors")
