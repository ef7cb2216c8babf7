"""`dlcli info MODEL`."""

from __future__ import annotations

import typer

EXAMPLES = """Examples:

  dlcli info runs/textcnn_trec.pt | jq .recipe.model

  dlcli info runs/textcnn_trec.pt | jq .metrics.accuracy
"""


def info_command(model: str = typer.Argument(..., help="Checkpoint file.")):
    """Show what a checkpoint holds (task, resolved recipe, labels, metrics, sizes) as JSON."""
    from dlcli import checkpoint
    from dlcli.cli._io import write_json

    write_json(checkpoint.describe(checkpoint.load(checkpoint.resolve_model(model))))
