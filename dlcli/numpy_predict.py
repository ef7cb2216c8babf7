"""Prediction backends that run without torch, chosen by a table of (task, model type).

Importing torch costs about 1.5 s before the first line, which is most of the time on a few
thousand short texts. A checkpoint whose (task, model type) has a backend here, on the CPU, is
scored from `checkpoint.read`'s content with NumPy, unless an option is asked for that the backend
does not implement, or the model holds a setting its scorer does not know: then `api.load_predictor`
takes the torch model. A backend offers what `loading.LoadedModel` offers for prediction and gives
the same records (tests hold FastText's to the torch model's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlcli.errors import CheckpointError
from dlcli.loading import predict_defaults
from dlcli.tasks.classify_output import (
    check_classify_options,
    model_texts,
    note_cuts,
    prediction_records,
    probabilities,
)
from dlcli.text import vocabularies

# A chunk of this many characters switches to compiled featurizing and scoring: loading numba and
# its kernels (~0.5 s) pays for itself from about here on (20newsgroups: ~1,000 lines).
COMPILED_FROM_CHARS = 1_000_000


class FastTextClassifier:
    """`dlcli classify` with a FastText model: NumPy bag means and output layer (FastTextScorer)."""

    options = frozenset({"top_k", "threshold", "batch_size", "tokenize"})  # the classify options it implements
    input_kind = "text"

    def __init__(self, data: dict, scorer):
        extra = data["task_state"]
        self.data = data
        self.vocab, self.labels = vocabularies.from_dict(data["vocab"]), list(data["labels"])
        self.multi_label, self.max_length = bool(extra["multi_label"]), extra.get("max_length")
        self.scorer = scorer
        self.compiled = False
        if scorer.rows != self.vocab.size or scorer.num_labels != len(self.labels):
            raise ValueError(f"the weights hold {scorer.rows} rows and {scorer.num_labels} labels, the vocabulary "
                             f"{self.vocab.size} and the label list {len(self.labels)}")

    @classmethod
    def unsupported(cls, data: dict) -> str | None:
        from dlcli.models.fasttext_numpy import FastTextScorer

        return FastTextScorer.unsupported(data["model"]["kwargs"])

    @classmethod
    def from_content(cls, data: dict) -> FastTextClassifier:
        from dlcli.models.fasttext_numpy import FastTextScorer

        return cls(data, FastTextScorer(data["state_dict"], data["model"]["kwargs"]))

    @property
    def predict_defaults(self) -> dict:
        return predict_defaults(self.data)

    def check_options(self, options: dict) -> None:
        check_classify_options(options)

    def predict(self, ids: list, texts: list[str], options: dict) -> list[dict]:
        texts = model_texts(self.vocab, texts, options.get("tokenize", "auto"))
        if not self.compiled and self.vocab.compilable and not self.max_length:
            self.compiled = sum(map(len, texts)) >= COMPILED_FROM_CHARS  # and stays on once loaded
        if self.compiled:
            scores = self.scorer.scores_flat(*self.vocab.encode_flat(texts))
        else:
            full = self.vocab.encode_batch(texts)
            bags = [b if len(b) <= self.max_length else b[: self.max_length] for b in full] if self.max_length else full
            scores = self.scorer.scores(bags)
        probs = probabilities(scores, self.multi_label or self.scorer.output_activation == "sigmoid")
        records = prediction_records(ids, probs, self.labels, self.multi_label, options["top_k"],
                                     options.get("threshold"))
        if self.max_length:
            note_cuts(records, full, bags, None)
        return records


# (task, model type) -> backend class
BACKENDS: dict[tuple[str, str], Any] = {("classify", "fasttext"): FastTextClassifier}


def backend_for(path: Path, data: dict, options: set[str]):
    """The torch-free backend for a checkpoint's content, or None when none implements its model
    with every option in `options` (names of options given for this run)."""
    backend = BACKENDS.get((data.get("task"), data.get("model", {}).get("type")))
    if backend is None or not options <= backend.options or backend.unsupported(data) is not None:
        return None
    try:
        return backend.from_content(data)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointError(f"{path}: checkpoint content does not fit dlcli "
                              f"{data.get('dlcli_version')}'s models: {exc}") from None
