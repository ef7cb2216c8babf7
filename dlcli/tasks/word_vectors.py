"""Pretrained word vectors for the word embedding of a text task (`data.vectors`): the data keys
that name them and the step that copies them in before training. Classification and tagging share it."""

from __future__ import annotations

from dataclasses import dataclass

from dlcli.checkpoint import is_checkpoint
from dlcli.recipe import choice, data_path
from dlcli.tasks import DataSection
from dlcli.text.vectors import FORMATS, fill_rows, init_embedding, select_rows


@dataclass(frozen=True)
class WordVectorsData(DataSection):
    vectors: str | None = data_path()  # word2vec or GloVe vectors that initialise the word embedding
    vectors_format: str = choice("auto", (*FORMATS, "dlcli"))  # dlcli: an embeddings checkpoint


def init_word_vectors(table, vocab, data: WordVectorsData) -> str:
    """Fill the rows of `table` (an nn.Embedding over `vocab`) whose words `data.vectors` has (a
    vectors file, or a dlcli embeddings checkpoint); returns the note that says how many."""
    if data.vectors_format == "dlcli" or (data.vectors_format == "auto" and is_checkpoint(data.vectors)):
        from dlcli.tasks.embed import checkpoint_vectors

        words, matrix = checkpoint_vectors(data.vectors)
        entries = zip(words, matrix.tolist())
        found = fill_rows(table, *select_rows(entries, vocab.index, vocab.lowercase, data.vectors), data.vectors)
    else:
        found = init_embedding(table, vocab.index, vocab.lowercase, data.vectors, data.vectors_format, data.encoding)
    return f"{data.vectors}: initialised {found:,} of {len(vocab.index):,} vocabulary words"
