"""`dlcli predict MODEL [INPUT]`: any task's model, its records as JSON Lines."""

from __future__ import annotations

import typer

from dlcli.cli._io import on_error_option, quiet_option, threads_option

EXAMPLES = """Examples:

  printf 'what is the capital of France ?\\n' | dlcli predict runs/textcnn_trec.pt --set top_k=2

  dlcli predict zh-seg news.txt | jq -c .tokens

  ls photos/*.jpg | dlcli predict mtcnn --set min_face=40
"""


def predict_command(
    model: str = typer.Argument(..., help="Checkpoint written by `dlcli train`, or a shipped model's name."),
    input: str = typer.Argument("-", help="Input file ('-' = stdin): one text per line, or for a face "
                                "detector one image path per line."),
    options: list[str] = typer.Option([], "--set", help="A prediction option, KEY=VALUE (the keys of the "
                                      "checkpoint's `predict` section, e.g. top_k=3, and the task's own: "
                                      "explain, n_best, ...; see `dlcli info MODEL | jq .recipe.predict`)."),
    input_format: str = typer.Option("text", "--input-format", help="text: one input per line; jsonl: "
                                     "objects with \"text\" (and optional \"id\")."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of the input."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N, mps or auto."),
    on_error: str = on_error_option(),
    threads: int = threads_option(),
    quiet: bool = quiet_option(),
):
    """Predict with a model of any task; one JSON object per input, in input order.

    The task's own command (classify, tag, detect-faces) offers named options and text formats;
    this one serves every task, including tasks added as plug-ins, with the same records.
    """
    from dlcli import api
    from dlcli.cli._io import stream_predictions
    from dlcli.recipe import parse_overrides

    given = parse_overrides(options, "--set")
    predictor = api.load_predictor(model, device, set(given))
    stream_predictions(predictor, input, given, input_format=input_format, encoding=encoding, on_error=on_error,
                       threads=threads, quiet=quiet)
