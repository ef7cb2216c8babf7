"""What `dlcli classify` prints for a text, from its label probabilities, and the checks of its
options (NumPy, no torch: the torch-free FastText backend and ClassifyTask.predict share them)."""

from __future__ import annotations

import numpy as np


def probabilities(scores: np.ndarray, sigmoid: bool) -> np.ndarray:
    """(N, C) logits as probabilities: one sigmoid per label, or a softmax over the labels."""
    if sigmoid:
        return np.exp(-np.logaddexp(0.0, -scores, dtype=np.float32))
    shifted = scores - scores.max(1, keepdims=True)
    np.exp(shifted, out=shifted)
    return shifted / shifted.sum(1, keepdims=True)


def check_classify_options(options: dict) -> None:
    """Refuse classify options out of range (the CLI checks its own; this guards the API)."""
    from dlcli.errors import RecipeError

    if int(options.get("top_k", 1)) < 1:
        raise RecipeError(f"--top-k: {options['top_k']} is below 1", "list at least one label per text")
    if int(options.get("batch_size", 1)) < 1:
        raise RecipeError(f"--batch-size: {options['batch_size']} is below 1")


def prediction_records(ids: list, probs: np.ndarray, labels: list[str], multi_label: bool, top_k: int = 1,
                       threshold: float | None = None) -> list[dict]:
    """One record per row of probs (N, C): {"id", "label", "score", "top_k"}, plus "labels" (every
    label scoring >= threshold; multi-label models default to 0.5). Ties rank the lower label index first."""
    k = max(1, min(top_k, len(labels)))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    top_p = np.take_along_axis(probs, order, axis=1).tolist()
    order = order.tolist()
    if threshold is None and multi_label:
        threshold = 0.5
    above = (probs >= threshold).tolist() if threshold is not None else None
    records = []
    for n, id_ in enumerate(ids):
        top = [{"label": labels[i], "score": round(p, 6)} for i, p in zip(order[n], top_p[n])]
        rec = {"id": id_, "label": top[0]["label"], "score": top[0]["score"], "top_k": top}
        if above is not None:
            rec["labels"] = [name for name, yes in zip(labels, above[n]) if yes]
        records.append(rec)
    return records
