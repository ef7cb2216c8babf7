"""Dev splits carved from the training file: a contiguous held-out block, or one fold of k.

A random slice of the training file makes a flattering dev set when the test set is other
documents (MSRA NER's is): sentences from the same article land on both sides. The last share of
the file, in file order, is held out instead (`data.dev_from_train`), so dev is other documents
too. Where one dev split is too small or noisy to choose settings on (MPQA's phrases), k-fold
cross-validation (`dlcli cross-validate`) trains on all folds but one, k times: `data.folds` cuts
the file into that many contiguous blocks and `data.fold` names the one held out. The blocks are
cut in file order, so a shuffled file gives random folds and an ordered one document-like blocks;
`data.held_out_order: shuffled` cuts them from the records in a fixed shuffle instead, for a file
sorted by label. The shuffle does not depend on the recipe's seed: runs that compare seeds or
settings hold out the same records.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from dlcli.errors import DataError, RecipeError
from dlcli.recipe import bounded, choice
from dlcli.tasks import DataSection

SHUFFLE_SEED = 13


@dataclass(frozen=True)
class HeldOutData(DataSection):
    dev_from_train: float | None = bounded(None, gt=0, lt=1)  # the file's last share of records is dev
    folds: int | None = bounded(None, ge=2)  # k-fold: the file in this many contiguous blocks ...
    fold: int = bounded(0, ge=0)  # ... of which this one (from 0) is dev
    held_out_order: str = choice("file", ("file", "shuffled"))  # the order the held-out records are cut in


def check(data: HeldOutData) -> None:
    """Refuse a data section whose dev split is named twice or whose fold does not exist."""
    if data.folds is not None:
        if data.fold >= data.folds:
            raise RecipeError(f"data.fold: {data.fold} is not a fold of {data.folds} (0 to {data.folds - 1})")
        if data.dev or data.dev_from_train:
            named = "data.dev" if data.dev else "data.dev_from_train"
            raise RecipeError(f"data.folds: the held-out fold is the dev split, and {named} names another",
                              f"remove {named} (or --set {named}=null)")
    elif data.dev and data.dev_from_train:
        raise RecipeError("data.dev_from_train: the recipe names data.dev too", "keep one of the two")


def split(train: list, dev: list | None, data: HeldOutData, source: str) -> tuple[list, list | None]:
    """(train, dev) records with the held-out part of `train` moved to dev, as `data` (passed by
    `check`) says; the records as read when it says nothing. `source` names the training file in
    errors."""
    n = len(train)
    records = f"{n:,} record{'s' * (n != 1)}"
    if (data.folds is not None or data.dev_from_train) and data.held_out_order == "shuffled":
        train = list(train)
        random.Random(SHUFFLE_SEED).shuffle(train)
    if data.folds is not None:
        if n < data.folds:
            raise DataError(f"{source}: {records} cannot make {data.folds} folds")
        lo, hi = block(n, data.folds, data.fold)
        return train[:lo] + train[hi:], train[lo:hi]
    if data.dev_from_train:
        held = max(1, round(n * data.dev_from_train))
        if held >= n:
            raise DataError(f"{source}: holding out {data.dev_from_train:g} of {records} leaves none to train on",
                            "lower data.dev_from_train, or name a dev file in data.dev")
        return train[:n - held], train[n - held:]
    return train, dev


def block(n: int, folds: int, fold: int) -> tuple[int, int]:
    """Records [lo, hi) of fold `fold` when n records are cut into `folds` contiguous blocks whose
    sizes differ by at most one."""
    return n * fold // folds, n * (fold + 1) // folds


def dev_source(data: HeldOutData) -> str:
    """Where the dev records came from, for messages about them."""
    if data.folds is not None:
        return f"fold {data.fold} of {data.folds} of {data.train}"
    if data.dev_from_train:
        return f"the last {data.dev_from_train:g} of {data.train}"
    return str(data.dev)
