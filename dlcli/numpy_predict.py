"""`dlcli classify` without importing torch, for models whose forward pass NumPy runs as fast.

Importing torch costs about 1.5 s before the first line, which is most of the time on a few
thousand short texts. A checkpoint whose model type has a NumPy scorer (FastText) is read with
`checkpoint.read` and scored here; every other model, and options that need the torch model
(`--explain`, a device other than the CPU), go through `api.load_model`. Records are built by the
same `prediction_records` either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from dlcli.errors import CheckpointError
from dlcli.tasks.classify_output import predict_options, prediction_records, probabilities
from dlcli.text.readers import chunked_inputs
from dlcli.text.vocab import vocab_from_dict

# A chunk of this many characters switches to compiled featurizing and scoring: loading numba and
# its kernels (~0.5 s) pays for itself from about here on (20newsgroups: ~1,000 lines).
COMPILED_FROM_CHARS = 1_000_000


def _scorer(model_type: str):
    if model_type == "fasttext":
        from dlcli.models.fasttext_numpy import FastTextScorer

        return FastTextScorer
    return None


@dataclass
class NumpyClassifier:
    data: dict
    vocab: Any
    labels: list[str]
    multi_label: bool
    max_length: int | None
    scorer: Any
    compiled: bool = False

    def classify(self, stream: IO[bytes], source: str = "<stdin>", *, input_format: str = "text",
                 encoding: str = "utf-8", top_k: int | None = None, threshold: float | None = None,
                 batch_size: int | None = None, chunk: int = 4096) -> Iterator[list[dict]]:
        """As `api.classify`: lists of JSON-ready records in input order."""
        top_k, threshold, _ = predict_options(self.data["recipe"], top_k, threshold, batch_size)
        for ids, texts in chunked_inputs(stream, source, input_format, encoding, chunk):
            if not self.compiled and getattr(self.vocab, "compilable", False) and not self.max_length:
                self.compiled = sum(map(len, texts)) >= COMPILED_FROM_CHARS  # and stays on once loaded
            if self.compiled:
                scores = self.scorer.scores_flat(*self.vocab.encode_flat(texts))
            else:
                bags = self.vocab.encode_batch(texts)
                if self.max_length:
                    bags = [b[: self.max_length] for b in bags]
                scores = self.scorer.scores(bags)
            probs = probabilities(scores, self.multi_label or self.scorer.output_activation == "sigmoid")
            yield prediction_records(ids, probs, self.labels, self.multi_label, top_k, threshold)


def load_classifier(path, data: dict) -> NumpyClassifier | None:
    """The checkpoint `data` (`checkpoint.read` of `path`) as a NumPy classifier, or None when its
    model needs torch."""
    scorer = _scorer(data.get("model", {}).get("type")) if data.get("task") == "classify" else None
    if scorer is None:
        return None
    try:
        extra = data["task_state"]
        vocab, labels = vocab_from_dict(data["vocab"]), list(data["labels"])
        model = scorer(data["state_dict"], data["model"]["kwargs"])
        if model.rows != vocab.size or model.num_labels != len(labels):
            raise ValueError(f"the weights hold {model.rows} rows and {model.num_labels} labels, the vocabulary "
                             f"{vocab.size} and the label list {len(labels)}")
        return NumpyClassifier(data, vocab, labels, bool(extra["multi_label"]), extra.get("max_length"), model)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointError(f"{path}: checkpoint content does not fit dlcli "
                              f"{data.get('dlcli_version')}'s models: {exc}") from None
