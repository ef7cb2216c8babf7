"""`dlcli cross-validate RECIPE --folds K`."""

from __future__ import annotations

from pathlib import Path

import typer

EXAMPLES = """Examples:

  dlcli cross-validate classify/textcnn_mpqa --folds 10 --set train.eval_every=null | jq .at_best

  dlcli cross-validate recipes/quickstart.yaml --folds 5 | jq -c '.by_eval[] | [.epoch, .mean]'
"""


def cross_validate_command(
    recipe: str = typer.Argument(..., help="Recipe YAML file, or the name of a shipped recipe (a classify or "
                                 "tag recipe)."),
    folds: int = typer.Option(10, "--folds", "-k", help="Contiguous blocks of the training file; each is "
                              "the dev split of one run."),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe value: KEY=VALUE (repeatable)."),
    data_dir: str = typer.Option(None, "--data-dir", help="Data root for relative data paths "
                                 "[default: $DLCLI_DATA_DIR, else ./data]."),
    keep: Path = typer.Option(None, "--keep", help="Keep each fold's checkpoint and metrics log in this "
                              "folder [default: they are deleted]."),
    threads: int = typer.Option(None, "--threads", min=1, help="CPU threads for training "
                                "[default: $OMP_NUM_THREADS if set, else every core]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or messages on stderr."),
):
    """Cross-validate a recipe on its training file: k runs, each holding out one block as dev.

    The recipe's data.dev is not read. Prints one JSON report on stdout: {"metric", "folds",
    "per_fold": [{"fold", "best", "best_step", "evaluations"}], "by_eval": [{"epoch", "step",
    "mean", "std", "min", "max"}], "at_best", "best_mean"}. by_eval is the fold-mean metric at each
    evaluation and at_best its best row: the score to choose settings by, and the number of epochs
    to train the final model for. best_mean, the mean of each fold's own best, flatters.
    """
    from dlcli import api
    from dlcli.cli._io import console, write_json
    from dlcli.cli.recipes import resolve_recipe

    path = resolve_recipe(recipe)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    write_json(api.cross_validate(path, folds, overrides=overrides, data_dir=data_dir, keep=keep,
                                  console=console(quiet)))
