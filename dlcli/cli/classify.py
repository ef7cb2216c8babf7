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
    from dlcli import api
    from dlcli.cli._io import JsonlWriter, open_input
    from dlcli.errors import RecipeError

    if input_format not in ("text", "jsonl"):
        raise RecipeError(f"--input-format: {input_format!r} is not text or jsonl")
    options = {"top_k": top_k, "threshold": threshold, "batch_size": batch_size, "explain": explain or None}
    # FastText on the CPU predicts without torch (~1.5 s sooner) unless an option needs the torch model
    predictor = api.load_predictor(model, device, {k for k, v in options.items() if v is not None})
    api.expect_task(predictor, "classify", "dlcli classify")
    writer = JsonlWriter()
    with open_input(input) as (stream, source):
        for records in api.predict(predictor, api.text_chunks(stream, source, input_format, encoding, 4096),
                                   **options):
            writer.write(records)
