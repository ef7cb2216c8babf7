"""The one table of what a recipe can name: task -> model type -> builder, plus optimizers,
schedules and vocabularies. The `type` strings are part of the checkpoint format, and a
checkpoint can only ever name something listed here."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from dlcli import recipe as recipe_module
from dlcli.errors import RecipeError
from dlcli.recipe import Component, Recipe, bind_kwargs
from dlcli.schedules import SCHEDULES, LearningRate
from dlcli.steps import KERNEL_STEPS, AutogradStep, HogwildAdaGrad, HogwildSGD
from dlcli.text import vocabularies


class Imported(MutableMapping):
    """A table whose entries may be given as "module:name" (written here, never read from a file),
    imported when first looked up: training word vectors never imports the torch models beside them."""

    def __init__(self, entries: dict[str, Any]):
        self._entries = dict(entries)

    def __getitem__(self, key: str) -> Any:
        value = self._entries[key]
        if isinstance(value, str):
            module, _, name = value.partition(":")
            value = self._entries[key] = getattr(importlib.import_module(module), name)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self._entries[key] = value

    def __delitem__(self, key: str) -> None:
        del self._entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


TASKS: MutableMapping[str, type] = Imported({
    "classify": "dlcli.tasks.classify:ClassifyTask", "tag": "dlcli.tasks.tag:TagTask",
    "detect_faces": "dlcli.tasks.detect_faces:DetectFacesTask", "embed": "dlcli.tasks.embed:EmbedTask",
    "lm": "dlcli.tasks.lm:LMTask", "mlm": "dlcli.tasks.mlm:MLMTask", "seq2seq": "dlcli.tasks.seq2seq:Seq2SeqTask",
})

# task -> model type -> builder. Builders take data-derived sizes positionally (as many as the
# task's `model_positional`) and recipe knobs keyword-only.
MODELS: dict[str, MutableMapping[str, Any]] = {
    "classify": Imported({
        "mlp": "dlcli.models.mlp:MLPClassifier", "textcnn": "dlcli.models.textcnn:TextCNN",
        "fasttext": "dlcli.models.fasttext:FastText", "rnn": "dlcli.models.rnn:rnn", "lstm": "dlcli.models.rnn:lstm",
        "gru": "dlcli.models.rnn:gru", "bilstm": "dlcli.models.rnn:bilstm", "bigru": "dlcli.models.rnn:bigru",
        "attn_lstm": "dlcli.models.attn_lstm:AttentionBiLSTM", "rcnn": "dlcli.models.rcnn:RCNN",
        "charcnn": "dlcli.models.charcnn:CharCNN", "transformer": "dlcli.models.transformer:TransformerClassifier",
        "gpt": "dlcli.models.gpt_classifier:GPTClassifier", "bert": "dlcli.models.bert_classifier:BertClassifier",
    }),
    "tag": Imported({"bilstm_crf": "dlcli.models.tagger:bilstm_crf",
                     "bilstm_softmax": "dlcli.models.tagger:bilstm_softmax",
                     "bert": "dlcli.models.bert_tagger:BertTagger"}),
    "detect_faces": Imported({"mtcnn": "dlcli.models.mtcnn:MTCNN"}),
    "embed": Imported({"word2vec": "dlcli.models.word2vec:Word2Vec", "glove": "dlcli.models.glove:GloVe",
                       "vectors": "dlcli.models.word2vec:StaticVectors"}),
    "lm": Imported({"rnn_lm": "dlcli.models.rnn_lm:RNNLanguageModel", "gpt": "dlcli.models.gpt:GPT",
                    "elmo": "dlcli.models.elmo:ELMo"}),
    "mlm": Imported({"bert": "dlcli.models.bert:BERT"}),
    "seq2seq": Imported({"rnn_seq2seq": "dlcli.models.rnn_seq2seq:RNNSeq2Seq",
                         "transformer_seq2seq": "dlcli.models.transformer_seq2seq:TransformerSeq2Seq"}),
}

# train.optimizer types that run a model's own training kernel -> the (task, model type) pairs
# whose models implement it (see dlcli/steps.py).
KERNELS: dict[str, set[tuple[str, str]]] = {"hogwild_sgd": {("classify", "fasttext"), ("embed", "word2vec")},
                                            "hogwild_adagrad": {("embed", "glove")}}

OPTIMIZERS: MutableMapping[str, Any] = Imported({
    "sgd": "torch.optim:SGD", "adam": "torch.optim:Adam", "adamw": "torch.optim:AdamW",
    "adagrad": "torch.optim:Adagrad", "adadelta": "torch.optim:Adadelta",
    "hogwild_sgd": HogwildSGD, "hogwild_adagrad": HogwildAdaGrad,
})

VOCABS = {name: kind.build for name, kind in vocabularies.TYPES.items()}

# How many leading positional arguments each kind of builder takes from the data, not the recipe
# (a model builder: as many as its task adapter's `model_positional`).
_POSITIONAL = {"optimizer": 1, "lr_schedule": 3, "vocab": 1}


def register_task(name: str, adapter: type, models: dict[str, Any]) -> None:
    """Add a task and its models (a plug-in, or a test's own task); the names become checkpoint format."""
    if name in TASKS:
        raise ValueError(f"task {name!r} is registered already")
    TASKS[name] = adapter
    MODELS[name] = dict(models)


def register_model(task: str, name: str, builder: Any, *, kernels: tuple[str, ...] = ()) -> None:
    """Add a model type to a task; `kernels`: the step strategies (train.optimizer types) it implements."""
    if name in MODELS[task]:
        raise ValueError(f"model type {name!r} is registered for {task} already")
    MODELS[task][name] = builder
    for kernel in kernels:
        KERNELS[kernel].add((task, name))


def lookup(table: dict, name: str, dotted: str) -> Any:
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, list(table), n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}?" if close else f"choose one of: {', '.join(sorted(table))}"
    raise RecipeError(f"{dotted}: unknown type {name!r}", hint)


def task_adapter(task: str):
    return lookup(TASKS, task, "task")


def load_recipe(path, overrides=()) -> Recipe:
    """A recipe file read with its task's sections (see dlcli.recipe.load_recipe)."""
    return recipe_module.load_recipe(path, list(overrides), task_adapter)


def parse_recipe(raw: dict, source: str = "<recipe>") -> Recipe:
    return recipe_module.parse_recipe(raw, task_adapter, source)


def resolve(kind: str, table: dict, component: Component, dotted: str) -> tuple[Any, dict]:
    """The builder a component names and its checked, coerced, defaults-filled kwargs."""
    builder = lookup(table, component.type, f"{dotted}.type")
    return builder, bind_kwargs(builder, component.kwargs, dotted, skip=_POSITIONAL[kind])


def model_builder(task: str, component: Component) -> tuple[Any, dict]:
    builder = lookup(lookup(MODELS, task, "task"), component.type, "model.type")
    return builder, bind_kwargs(builder, component.kwargs, "model", skip=task_adapter(task).model_positional)


@dataclass(frozen=True)
class Resolved:
    """Every builder a recipe names, each with its checked, defaults-filled kwargs."""

    adapter: Any
    model: tuple[Any, dict]
    vocabs: dict[str, tuple[Any, dict]]  # the task's declared vocabulary names -> (builder, kwargs)
    optimizer: tuple[Any, dict]
    lr_schedule: tuple[Any, dict]
    step: type  # the step strategy (dlcli/steps.py)

    def recipe_dict(self, recipe) -> dict:
        """The recipe as a plain dict with every component's defaults written out."""
        out = recipe.to_dict()
        out["model"] = {"type": recipe.model.type, **self.model[1]}
        if isinstance(recipe.vocab, Component):
            out["vocab"] = {"type": recipe.vocab.type, **self.vocabs["vocab"][1]}
        elif recipe.vocab is not None:
            out["vocab"] = {name: {"type": recipe.vocab[name].type, **kwargs}
                            for name, (_, kwargs) in self.vocabs.items()}
        out["train"]["optimizer"] = {"type": recipe.train.optimizer.type, **self.optimizer[1]}
        out["train"]["lr_schedule"] = {"type": recipe.train.lr_schedule.type, **self.lr_schedule[1]}
        return out


def resolve_recipe(recipe: Recipe) -> Resolved:
    """Bind every component of a recipe: `recipes validate` catches all that training would."""
    adapter = task_adapter(recipe.task)
    components = {"vocab": recipe.vocab} if isinstance(recipe.vocab, Component) else (recipe.vocab or {})
    parts = Resolved(
        adapter=adapter,
        model=model_builder(recipe.task, recipe.model),
        vocabs={name: resolve("vocab", VOCABS, c, "vocab" if name == "vocab" else f"vocab.{name}")
                for name, c in components.items()},
        optimizer=resolve("optimizer", OPTIMIZERS, recipe.train.optimizer, "train.optimizer"),
        lr_schedule=resolve("lr_schedule", SCHEDULES, recipe.train.lr_schedule, "train.lr_schedule"),
        step=_step_strategy(recipe),
    )
    adapter.check_recipe(recipe)
    parts.step.check(recipe, adapter)
    metric = recipe.train.metric
    if metric is not None and metric not in adapter.metrics:
        close = difflib.get_close_matches(metric, list(adapter.metrics), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"choose one of: {', '.join(adapter.metrics)}"
        raise RecipeError(f"train.metric: the {recipe.task} task reports no {metric!r}", hint)
    _try_build(parts)
    return parts


def _step_strategy(recipe: Recipe) -> type:
    kind = recipe.train.optimizer.type
    if kind not in KERNEL_STEPS:
        return AutogradStep
    able = sorted(model for task, model in KERNELS[kind] if task == recipe.task)
    if recipe.model.type not in able:
        raise RecipeError(f"train.optimizer: {kind} runs a model's own training kernel, and a {recipe.task} "
                          f"{recipe.model.type} model has none",
                          f"models with one: {', '.join(able) or 'none'}; or train by autograd (e.g. sgd)")
    return KERNEL_STEPS[kind]


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
    """Build on a dummy parameter, so bad optimizer or schedule values fail now, not mid-run (a
    kernel's optimizer, which only carries the lr, over none: torch stays unloaded)."""
    if issubclass(parts.optimizer[0], LearningRate):
        build_optimization(parts, [], 10, 5)
        return
    import torch

    build_optimization(parts, [torch.zeros(1, requires_grad=True)], 10, 5)
