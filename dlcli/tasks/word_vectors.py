"""Pretrained word vectors for the word embedding of a text task (`data.vectors`): the data keys
that name them and the step that copies them in before training. Classification and tagging share it."""

from __future__ import annotations

from dataclasses import dataclass

from dlcli.recipe import choice, data_path
from dlcli.tasks import DataSection
from dlcli.text.vectors import FORMATS, init_embedding


@dataclass(frozen=True)
class WordVectorsData(DataSection):
    vectors: str | None = data_path()  # word2vec or GloVe vectors that initialise the word embedding
    vectors_format: str = choice("auto", FORMATS)


def init_word_vectors(table, vocab, data: WordVectorsData) -> str:
    """Fill the rows of `table` (an nn.Embedding over `vocab`) whose words `data.vectors` has;
    returns the note that says how many."""
    found = init_embedding(table, vocab.index, vocab.lowercase, data.vectors, data.vectors_format, data.encoding)
    return f"{data.vectors}: initialised {found:,} of {len(vocab.index):,} vocabulary words"
