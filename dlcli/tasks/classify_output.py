"""What `dlcli classify` prints for a text, from its label probabilities (NumPy, no torch: the
torch-free FastText path and ClassifyTask.predict share it)."""

from __future__ import annotations

import numpy as np


def probabilities(scores: np.ndarray, sigmoid: bool) -> np.ndarray:
    """(N, C) logits as probabilities: one sigmoid per label, or a softmax over the labels."""
    if sigmoid:
        return np.exp(-np.logaddexp(0.0, -scores, dtype=np.float32))
    shifted = scores - scores.max(1, keepdims=True)
    np.exp(shifted, out=shifted)
    return shifted / shifted.sum(1, keepdims=True)


def predict_options(recipe: dict, top_k: int | None, threshold: float | None,
                    batch_size: int | None) -> tuple[int, float | None, int]:
    """Command-line values, else the recipe's `predict` section, else the defaults."""
    section = recipe.get("predict", {})
    return (top_k or section.get("top_k", 1),
            threshold if threshold is not None else section.get("threshold"),
            batch_size or section.get("batch_size", 256))


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
