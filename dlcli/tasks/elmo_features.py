"""Frozen ELMo features for a text task's model (`data.elmo`; classify and tag): the biLM of an
elmo language model (task lm, dlcli/models/elmo.py), its layers mixed by learned softmax-normalised
scalar weights times gamma and concatenated with the model's own word embeddings (Peters et al.
2018). The biLM is never trained; its weights are copied into the model before training, with the
spelling of every word (a classifier's vocabulary) or character (a tagger's table) the model can
be given, so the checkpoint predicts on its own: the elmo file is read only when training starts.
A classifier's words outside its vocabulary reach the biLM spelled as well (ids past the
vocabulary, `ClassifyTask.open_words`); its own embedding reads them as <unk>.

A model takes the features when its builder has the `elmo` knob, which the task fills with the
biLM's architecture (a recipe never sets it), and `elmo_dropout`, the dropout on the mixed vector;
it adds the module as `model.elmo` (an ElmoFeatures).
"""

from __future__ import annotations

from dataclasses import dataclass

from dlcli.errors import CheckpointError, DataError, RecipeError
from dlcli.tasks import DataSection
from dlcli.text.chars import word_bytes
from dlcli.text.vocab import PAD, UNK

UNKNOWN_CHAR = "\ufffd"  # how a character the tagger never saw is spelled to the biLM
TAKERS = "classifiers rnn, lstm, gru, bilstm, bigru; taggers bilstm_crf, bilstm_softmax"


@dataclass(frozen=True)
class ElmoData(DataSection):
    """The `data:` key of ELMo features; a task's data section inherits it."""

    # an elmo language model (task lm) whose frozen biLM's mixed layers join the word embeddings:
    # a checkpoint path or shipped name, as data.init; the trained model holds the biLM itself
    elmo: str | None = None


def check_recipe(recipe) -> None:
    if "elmo" in recipe.model.kwargs:
        raise RecipeError("model.elmo: the biLM's architecture comes from the elmo checkpoint",
                          "name the checkpoint in data.elmo instead")
    if recipe.data.elmo and getattr(recipe.data, "init", None):
        raise RecipeError("data.elmo: a model that starts from a pretrained language model (data.init) takes no "
                          "ELMo features", "remove data.elmo or data.init")
    if recipe.data.elmo and recipe.vocab.type != "word":
        raise RecipeError(f"data.elmo: ELMo reads words; a {recipe.vocab.type} vocabulary has none",
                          "use vocab type word")


def load(data):
    """The loaded elmo language model `data.elmo` names, or None."""
    if not data.elmo:
        return None
    from dlcli import loading

    try:
        elmo = loading.load_model(data.elmo)
    except CheckpointError as exc:
        raise CheckpointError(f"data.elmo: {exc.message}", exc.hint) from None
    if elmo.data["task"] != "lm" or elmo.data["model"]["type"] != "elmo":
        raise DataError(f"data.elmo: {elmo.path} is a {elmo.data['task']} {elmo.data['model']['type']} model; "
                        "ELMo features come from an elmo language model (task lm, model type elmo)")
    return elmo


def model_kwargs(kwargs: dict, elmo) -> dict:
    """`kwargs` with the biLM's architecture as the `elmo` knob, when data.elmo names one."""
    if elmo is None:
        return kwargs
    if "elmo" not in kwargs:
        raise RecipeError("data.elmo: this model takes no ELMo features", f"models that do: {TAKERS}")
    from dlcli.models.elmo import bilm_config

    return {**kwargs, "elmo": bilm_config(elmo.data["model"]["kwargs"])}


def word_spellings(tokens: list[str], limit: int) -> list[list[int]]:
    """Each vocabulary word's bytes (+ 1); padding spells nothing."""
    return [[] if t == PAD else word_bytes(t, limit) for t in tokens]


def char_spellings(chars: list[str]) -> list[list[int]]:
    """Each character's bytes (+ 1); padding spells nothing, the unknown character U+FFFD."""
    return [[] if c == PAD else word_bytes(UNKNOWN_CHAR if c == UNK else c, 4) for c in chars]


def attach(model, elmo, spellings: list[list[int]]) -> str | None:
    """Copy the biLM's weights and the spellings into `model.elmo`; the note for the user."""
    if elmo is None:
        return None
    model.elmo.fill(elmo.model.bilm.state_dict(), spellings)
    layers = model.elmo.bilm.num_layers + 1
    return f"ELMo features from {elmo.path}: {layers} layers of width {model.elmo.output_size} mixed, biLM frozen"
