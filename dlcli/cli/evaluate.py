"""`dlcli evaluate MODEL DATA`."""

from __future__ import annotations

import typer

EXAMPLES = """Examples:

  dlcli evaluate runs/textcnn_trec.pt ../shared/datasets/trec/dev.tsv | jq .accuracy

  dlcli evaluate model.pt reviews.csv --format csv --header --label-column 1 --text-column 0
"""


def evaluate_command(
    model: str = typer.Argument(..., help="Checkpoint written by `dlcli train`."),
    data: str = typer.Argument(..., help="Labelled file, read with the checkpoint's data options."),
    format: str = typer.Option(None, "--format", help="tsv, csv, jsonl or fasttext."),
    label_column: int = typer.Option(None, "--label-column", min=0),
    text_column: int = typer.Option(None, "--text-column", min=0),
    header: bool = typer.Option(None, "--header/--no-header", help="Skip a header line (tsv/csv)."),
    encoding: str = typer.Option(None, "--encoding"),
    threshold: float = typer.Option(None, "--threshold", help="Decision threshold of a multi-label model."),
    device: str = typer.Option("cpu", "--device"),
):
    """Score a model on labelled data; prints ONE JSON object.

    Classification keys: accuracy, macro_f1, n, per_label {label: precision, recall, f1, support},
    confusion {labels, matrix (rows gold, columns predicted)}; multi-label adds micro_f1,
    precision, recall (accuracy is then exact-match).
    """
    from dlcli import api
    from dlcli.cli._io import write_json

    loaded = api.load_model(model, device)
    overrides = {"format": format, "label_column": label_column, "text_column": text_column,
                 "header": header, "encoding": encoding}
    write_json(api.evaluate(loaded, data, overrides, threshold))
