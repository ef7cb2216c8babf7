"""`dlcli embed MODEL [INPUT]`: word vectors, neighbours and analogies from an embeddings checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from dlcli.cli._io import on_error_option, quiet_option, threads_option

EXPORTS = {"word2vec": "word2vec", "word2vec-bin": "word2vec_binary", "glove": "glove"}

EXAMPLES = """Examples:

  echo 'king' | dlcli embed runs/word2vec.pt --neighbors 5 | jq -c '.neighbors[].word'

  printf 'man king woman\\nparis france rome\\n' | dlcli embed runs/word2vec.pt --analogy | jq -c .answers[0]

  dlcli embed runs/word2vec.pt --export word2vec-bin --out vectors.bin
"""


def embed_command(
    model: str = typer.Argument(..., help="Embeddings checkpoint (dlcli train with task: embed, or dlcli "
                                "convert vectors)."),
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
    input_format: str = typer.Option("text", "--input-format", help="text: one input per line; jsonl: "
                                     "objects with \"text\" (and optional \"id\")."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of the input."),
    on_error: str = on_error_option(),
    threads: int = threads_option(),
    quiet: bool = quiet_option(),
):
    """Word vectors from an embeddings model; one JSON object per input line, in input order.

    Record: {"id", "text", "vector" (the mean of the line's known words' vectors, null if none),
    "unknown": [words the model does not know]}; with --neighbors {"id", "text", "neighbors":
    [{"word", "score"}], "unknown"}; with --analogy {"id", "query", "answers": [{"word",
    "score"}], "unknown"} (no answers when a word is unknown). A line's mean is summed in blocks
    of words, so a line of any length is answered in time linear in it and bounded memory.
    """
    from dlcli import api
    from dlcli.cli._io import stream_predictions
    from dlcli.errors import RecipeError

    if sum([words, neighbors is not None, analogy]) > 1:
        raise RecipeError("--words, --neighbors and --analogy ask for different records: choose one")
    loaded = api.load_model(model)
    api.expect_task(loaded, "embed", "dlcli embed")
    if export is not None:
        _export(loaded, export, out)
        return
    options = {"words": words or None, "neighbors": neighbors, "analogy": analogy or None, "top_k": top_k,
               "restrict": restrict}
    stream_predictions(loaded, input, options, input_format=input_format, encoding=encoding, on_error=on_error,
                       threads=threads, quiet=quiet)


def _export(loaded, kind: str, out: Path | None) -> None:
    from dlcli.errors import RecipeError
    from dlcli.text.vectors import write_vectors

    if kind not in EXPORTS:
        raise RecipeError(f"--export: {kind!r} is not one of {', '.join(EXPORTS)}")
    if out is None:
        raise RecipeError("--export needs --out FILE")
    words, matrix = loaded.task.export_vectors(loaded.model)
    write_vectors(out, words, matrix, EXPORTS[kind])
