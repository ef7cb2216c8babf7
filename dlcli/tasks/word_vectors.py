"""Pretrained word vectors for the word embedding of a text task (`data.vectors`): the data keys
that name them and the step that copies them in before training. Classification and tagging share it."""

from __future__ import annotations

from dataclasses import dataclass

from dlcli.checkpoint import is_checkpoint
from dlcli.recipe import choice, data_path
from dlcli.tasks import DataSection
from dlcli.text.vectors import FORMATS, fill_rows, init_embedding, read_vectors, select_rows
from dlcli.text.vocab import TokenVocab


@dataclass(frozen=True)
class WordVectorsData(DataSection):
    vectors: str | None = data_path()  # word2vec or GloVe vectors that initialise the word embedding
    vectors_format: str = choice("auto", (*FORMATS, "dlcli"))  # dlcli: an embeddings checkpoint
    # add the vectors' words missing from the training data to the vocabulary, so they keep their
    # pretrained rows at prediction time (word and char vocabularies)
    vectors_extend: bool = False


def _from_checkpoint(data: WordVectorsData) -> bool:
    return data.vectors_format == "dlcli" or (data.vectors_format == "auto" and is_checkpoint(data.vectors))


def vector_words(data: WordVectorsData) -> list[str]:
    """The words `data.vectors` holds, in its order."""
    if _from_checkpoint(data):
        from dlcli.tasks.embed import checkpoint_vectors

        return checkpoint_vectors(data.vectors)[0]
    return read_vectors(data.vectors, data.vectors_format, data.encoding)[0]


def extended(vocab: TokenVocab, data: WordVectorsData) -> TokenVocab:
    """`vocab` with the vectors' words it lacks appended (ids of its own words unchanged)."""
    if not (data.vectors and data.vectors_extend):
        return vocab
    known = set(vocab.tokens)
    extra = []
    for word in vector_words(data):
        word = word.lower() if vocab.lowercase else word
        if word not in known:
            known.add(word)
            extra.append(word)
    return TokenVocab(vocab.kind, [*vocab.tokens, *extra], vocab.lowercase, vocab.pattern, vocab.keep_spaces,
                      bos=vocab.bos_id is not None, eos=vocab.eos_id is not None)


def init_word_vectors(table, vocab, data: WordVectorsData) -> str:
    """Fill the rows of `table` (an nn.Embedding over `vocab`) whose words `data.vectors` has (a
    vectors file, or a dlcli embeddings checkpoint); returns the note that says how many."""
    if _from_checkpoint(data):
        from dlcli.tasks.embed import checkpoint_vectors

        words, matrix = checkpoint_vectors(data.vectors)
        entries = zip(words, matrix.tolist())
        found = fill_rows(table, *select_rows(entries, vocab.index, vocab.lowercase, data.vectors), data.vectors)
    else:
        found = init_embedding(table, vocab.index, vocab.lowercase, data.vectors, data.vectors_format, data.encoding)
    return f"{data.vectors}: initialised {found:,} of {len(vocab.index):,} vocabulary words"
