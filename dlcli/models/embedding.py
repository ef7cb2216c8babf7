"""What the embed task asks of every word-embedding model, declared once with the common values.

An embedding model is NumPy tables, not a torch module: it trains with its own kernel (a
`train.optimizer` of steps.KERNEL_STEPS) and nothing else, so training, saving and loading one
never imports torch (about 190 MB of resident memory, as much as gensim's whole word2vec run).
It trains on one of two inputs, the corpus itself (word2vec) or its co-occurrence counts (GloVe),
and defines `vectors()`: the (V, D) word vectors it gives (rows 0 and 1, padding and unknown,
never train). It offers what the trainer and the loader ask of a model: `state_dict` and
`load_state_dict` under the names the torch modules that these models once were gave their
tensors (so their files load unchanged), `parameters` and `eval`.
"""

from __future__ import annotations

import numpy as np


def draw_generator() -> np.random.Generator:
    """A generator seeded from NumPy's global one, which the run seeds (device.seed_everything)."""
    return np.random.default_rng(np.random.randint(0, 2**63 - 1, dtype=np.int64))


class EmbeddingTables:
    trains_on = "corpus"  # "corpus": sentences of word ids; "cooccurrence": (row, col, count) entries
    window = 5  # context words on each side
    tables: dict[str, str] = {}  # state_dict name -> the attribute holding that array
    buffers: frozenset[str] = frozenset()  # names of tables that are not trained (counts, AdaGrad's sums)

    def fit_counts(self, counts: np.ndarray) -> None:
        """Told the corpus frequency of every vocabulary word before training; draws the starting
        weights (a loaded model never does)."""

    def vectors(self) -> np.ndarray:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, attr) for name, attr in self.tables.items()}

    def load_state_dict(self, state: dict) -> None:
        """Adopt the arrays of `state` (a checkpoint's are mapped from the file, copy-on-write)."""
        missing, unexpected = self.tables.keys() - state.keys(), state.keys() - self.tables.keys()
        if missing or unexpected:
            raise ValueError(f"state_dict: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        for name, attr in self.tables.items():
            own, given = getattr(self, attr), np.asarray(state[name])
            if given.shape != own.shape:
                raise ValueError(f"{name}: shape {given.shape} in the state, {own.shape} in the model")
            given = np.ascontiguousarray(given, dtype=own.dtype)
            if not given.flags.writeable:
                given = given.copy()
            setattr(self, attr, given)

    def parameters(self) -> list[np.ndarray]:
        return [getattr(self, attr) for name, attr in self.tables.items() if name not in self.buffers]

    def eval(self) -> EmbeddingTables:
        return self
