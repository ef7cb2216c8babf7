"""`dlcli embed MODEL [INPUT]`: word vectors, neighbours and analogies from an embeddings checkpoint;
sentence and token vectors from an encoder (BERT, ELMo)."""

from __future__ import annotations

from pathlib import Path

import typer

from dlcli.cli._io import on_error_option, quiet_option, threads_option

EXPORTS = {"word2vec": "word2vec", "word2vec-bin": "word2vec_binary", "glove": "glove"}

EXAMPLES = """Examples:

  echo 'king' | dlcli embed runs/word2vec.pt --neighbors 5 | jq -c '.neighbors[].word'

  printf 'man king woman\\nparis france rome\\n' | dlcli embed runs/word2vec.pt --analogy | jq -c .answers[0]

  dlcli embed runs/word2vec.pt --export word2vec-bin --out vectors.bin

  echo 'A man is eating food.' | dlcli embed minilm.pt --pool mean --normalize | jq -c '.vector[:3]'

  echo 'The bank raised its rates .' | dlcli embed runs/elmo_mini_wiki.pt --tokens --layer 2 | jq -c .tokens
"""


def embed_command(
    model: str = typer.Argument(..., help="Embeddings checkpoint (dlcli train with task: embed, or dlcli "
                                "convert vectors), or an encoder (dlcli convert bert; task: mlm; an elmo "
                                "language model)."),
    input: str = typer.Argument("-", help="Text file, one word, phrase or sentence per line ('-' = stdin)."),
    words: bool = typer.Option(False, "--words", help="One record per token: {\"id\", \"token\", \"known\", "
                               "\"vector\"}."),
    neighbors: int = typer.Option(None, "--neighbors", min=1, help="The K nearest words (cosine) of each line's "
                                  "vector, the line's own words left out."),
    analogy: bool = typer.Option(False, "--analogy", help="Lines 'a b c': the words d best completing a : b :: "
                                 "c : d (3CosAdd, a, b and c left out)."),
    top_k: int = typer.Option(None, "--top-k", min=1, help="Analogy answers listed [default: the checkpoint's, 10]."),
    restrict: int = typer.Option(None, "--restrict", min=1, help="Search only the N most frequent words."),
    export: str = typer.Option(None, "--export", help="Write every word's vector instead: word2vec (text), "
                               "word2vec-bin or glove, to --out."),
    out: Path = typer.Option(None, "--out", "-o", help="File --export writes."),
    pool: str = typer.Option(None, "--pool", help="Encoder: a line's vector is the [CLS] state (cls) or the mean "
                             "over its tokens, [CLS] and [SEP] included (mean) [default: the checkpoint's]."),
    normalize: bool = typer.Option(None, "--normalize/--no-normalize", help="Encoder: vectors scaled to unit "
                                   "length [default: the checkpoint's]."),
    tokens: bool = typer.Option(False, "--tokens", help="Encoder: every token's contextual vector: {\"id\", "
                                "\"text\", \"tokens\", \"vectors\"}."),
    max_length: int = typer.Option(None, "--max-length", min=3, help="Encoder: tokens a line keeps, [CLS] and "
                                   "[SEP] included [default: the checkpoint's, else the model's positions]."),
    layer: int = typer.Option(None, "--layer", min=0, help="ELMo: the vectors of one layer (0: the token layer, "
                              "1..L: the LSTM layers) [default: the mean of all layers]."),
    input_format: str = typer.Option("text", "--input-format", help="text: one input per line; jsonl: "
                                     "objects with \"text\" (and optional \"id\")."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of the input."),
    on_error: str = on_error_option(),
    threads: int = threads_option(),
    quiet: bool = quiet_option(),
):
    """Word vectors from an embeddings model, or contextual vectors from an encoder; one JSON
    object per input line, in input order.

    Record: {"id", "text", "vector" (the mean of the line's known words' vectors, null if none),
    "unknown": [words the model does not know]}; with --neighbors {"id", "text", "neighbors":
    [{"word", "score"}], "unknown"}; with --analogy {"id", "query", "answers": [{"word",
    "score"}], "unknown"} (no answers when a word is unknown). A line's mean is summed in blocks
    of words, so a line of any length is answered in time linear in it and bounded memory.

    An encoder (BERT) reads [CLS] line [SEP]: {"id", "text", "vector"} pooled by --pool, or with
    --tokens {"id", "text", "tokens", "vectors"} (one per WordPiece token, [CLS] and [SEP]
    included). A line longer than --max-length is cut, and its record says so: "truncated":
    {"length", "kept"} in tokens.

    An ELMo (an elmo language model) gives the same records: --pool mean (its only pooling) over the
    line's words, or --tokens; a word's vector is the mean of the biLM's layers, or --layer K's
    ([forward; backward] states; 0 the token layer, twice). --max-length counts words.
    """
    from dlcli import api
    from dlcli.cli._io import stream_predictions
    from dlcli.errors import DataError, RecipeError

    if sum([words, neighbors is not None, analogy, tokens]) > 1:
        raise RecipeError("--words, --neighbors, --analogy and --tokens ask for different records: choose one")
    if tokens and pool is not None:
        raise RecipeError("--pool makes one vector a line, --tokens one a token: choose one")
    loaded = api.load_model(model)
    if loaded.task.command != "dlcli embed":
        raise DataError(f"dlcli embed needs an embeddings or encoder model; this checkpoint is a "
                        f"{loaded.data['task']} model", f"use {loaded.task.command} with it")
    if export is not None:
        _export(loaded, export, out)
        return
    options = {"words": words or None, "neighbors": neighbors, "analogy": analogy or None, "top_k": top_k,
               "restrict": restrict, "pool": pool, "normalize": normalize, "tokens": tokens or None,
               "max_length": max_length, "layer": layer}
    stream_predictions(loaded, input, options, input_format=input_format, encoding=encoding, on_error=on_error,
                       threads=threads, quiet=quiet)


def _export(loaded, kind: str, out: Path | None) -> None:
    from dlcli.errors import RecipeError
    from dlcli.text.vectors import write_vectors

    if loaded.data["task"] != "embed":
        raise RecipeError(f"--export writes a table of word vectors; a {loaded.data['task']} model's vectors "
                          "depend on the sentence", "use --tokens for each token's vector in context")
    if kind not in EXPORTS:
        raise RecipeError(f"--export: {kind!r} is not one of {', '.join(EXPORTS)}")
    if out is None:
        raise RecipeError("--export needs --out FILE")
    words, matrix = loaded.task.export_vectors(loaded.model)
    write_vectors(out, words, matrix, EXPORTS[kind])
