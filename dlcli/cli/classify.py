"""`dlcli classify MODEL [INPUT]`."""

from __future__ import annotations

import typer

EXAMPLES = """Examples:

  printf 'What is the capital of France ?\\n' | dlcli classify runs/textcnn_trec.pt

  dlcli classify model.pt questions.txt --top-k 3 | jq -r .label

  dlcli classify tags.pt docs.jsonl --input-format jsonl --threshold 0.3

  echo 'a gorgeous , witty film' | dlcli classify runs/attn_lstm_sst2.pt --explain | jq -c .attention
"""


def classify_command(
    model: str = typer.Argument(..., help="Checkpoint written by `dlcli train`."),
    input: str = typer.Argument("-", help="Text file, one text per line ('-' = stdin)."),
    top_k: int = typer.Option(None, "--top-k", "-k", min=1,
                              help="Labels listed per text [default: the checkpoint's, 1]."),
    threshold: float = typer.Option(None, "--threshold", help="Also list every label scoring >= this "
                                    "(multi-label models default to 0.5)."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Texts per forward pass."),
    explain: bool = typer.Option(False, "--explain", help="Add \"attention\": [{\"token\", \"weight\"}], the "
                                 "model's weight on each token (attention models such as attn_lstm)."),
    input_format: str = typer.Option("text", "--input-format", help="text: one text per line; jsonl: "
                                     "objects with \"text\" (and optional \"id\")."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of the input."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N, mps or auto."),
):
    """Classify texts; one JSON object per input line, in input order.

    Record: {"id", "label", "score", "top_k": [{"label", "score"}]}, plus "labels" (every label
    scoring >= the threshold) when a threshold applies. "id" is the line number, or the "id"
    field of a JSON Lines input.
    """
    from dlcli import checkpoint
    from dlcli.cli._io import JsonlWriter, open_input
    from dlcli.errors import RecipeError
    from dlcli.numpy_predict import load_classifier

    if input_format not in ("text", "jsonl"):
        raise RecipeError(f"--input-format: {input_format!r} is not text or jsonl")
    path = checkpoint.resolve_model(model)
    data = checkpoint.read(path)  # without torch, which FastText on the CPU never needs (~1.5 s sooner)
    fast = load_classifier(path, data) if device == "cpu" and not explain else None
    if fast is not None:
        run = fast.classify
    else:
        from dlcli import api

        loaded = api.load_model(path, device, data)

        def run(stream, source, **options):
            return api.classify(loaded, stream, source, explain=explain, **options)

    writer = JsonlWriter()
    with open_input(input) as (stream, source):
        for records in run(stream, source, input_format=input_format, encoding=encoding, top_k=top_k,
                           threshold=threshold, batch_size=batch_size):
            writer.write(records)
