"""A word-vectors file (word2vec text or binary, GloVe text, fastText .vec) as a dlcli embeddings
checkpoint, which `dlcli embed`, `dlcli evaluate` and `data.vectors` accept like a trained one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from dlcli.errors import DataError
from dlcli.text.ngrams import WHITESPACE
from dlcli.text.vectors import read_vectors
from dlcli.text.vocab import PAD, UNK, TokenVocab


def convert_vectors(paths: list[Path]) -> dict:
    """The payload of an embeddings checkpoint holding every distinct word of the file (the first
    entry of a repeated word wins, as `load_vectors` reads them); lines are split at whitespace."""
    from dlcli.tasks.embed import EmbedData, EmbedPredict

    if len(paths) != 1:
        raise DataError(f"convert vectors reads one file, not {len(paths)}")
    words, matrix = read_vectors(paths[0])
    first: dict[str, int] = {}
    for row, word in enumerate(words):
        first.setdefault(word, row)
    vocab = TokenVocab("word", [PAD, UNK, *first], False, WHITESPACE)
    table = torch.zeros(len(first) + 2, matrix.shape[1])
    table[2:] = torch.from_numpy(matrix[list(first.values())])
    kwargs = {"embedding_dim": int(matrix.shape[1])}
    return {
        "task": "embed",
        "recipe": {"task": "embed", "model": {"type": "vectors", **kwargs},
                   "data": dataclasses.asdict(EmbedData()), "predict": dataclasses.asdict(EmbedPredict())},
        "model": {"type": "vectors", "kwargs": kwargs},
        "vocab": vocab.to_dict(),
        "state_dict": {"embedding.weight": table},
        "metrics": {},
        "converted_from": [paths[0].name],
    }
