"""`dlcli train RECIPE`."""

from __future__ import annotations

import os
from pathlib import Path

import typer

EXAMPLES = """Examples:

  dlcli train recipes/quickstart.yaml --out runs/quickstart.pt --plot

  DLCLI_DATA_DIR=../shared/datasets dlcli train classify/textcnn_trec --set train.epochs=5 --overwrite

  torchrun --nproc-per-node 2 -m dlcli train recipes/classify/textcnn_mr.yaml --device cpu
"""


def train_command(
    recipe: str = typer.Argument(..., help="Recipe YAML file, or the name of a shipped recipe "
                                 "(see `dlcli recipes list`)."),
    out: Path = typer.Option(None, "--out", "-o", help="Checkpoint to write [default: runs/<recipe>.pt]. "
                             "Its metrics log and resumable train state go next to it."),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe value: KEY=VALUE, "
                                        "e.g. --set train.epochs=5 (repeatable)."),
    device: str = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps "
                               "[default: the recipe's]."),
    data_dir: str = typer.Option(None, "--data-dir", help="Data root for relative data paths "
                                 "[default: $DLCLI_DATA_DIR, else ./data]."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the train state saved next "
                                "to --out (after Ctrl-C, or to train more epochs)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start a new run over an earlier run's "
                                   "files at --out. The earlier model stays at --out until the new run "
                                   "finishes."),
    threads: int = typer.Option(None, "--threads", min=1, help="CPU threads for training (torch's and the "
                                "lock-free kernels') [default: $OMP_NUM_THREADS if set, else every core]. "
                                "On cores that other jobs use too, 1 is often several times faster."),
    plot: bool = typer.Option(False, "--plot", help="Also draw the training loss and dev metric curves into "
                              "<out stem>.metrics.png beside the checkpoint (needs matplotlib: "
                              "pip install 'dlcli[plot]')."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or messages on stderr."),
):
    """Train a model from a YAML recipe and write one self-describing checkpoint.

    Prints a JSON summary on stdout: {"checkpoint", "metric", "best", "best_step", "steps", "epochs"}
    (and "plot", the picture's path, with --plot).
    Ctrl-C saves a resumable state and exits 130; continue with --resume.

    What is at --out is never lost by accident. A new run refuses (exit 2) to start where an earlier
    one left a model, metrics log or train state, unless given --resume (continue that run) or
    --overwrite (replace it). With --overwrite the earlier model stays at --out until the new run
    finishes: meanwhile the new run keeps its best model in <out stem>.partial.pt, and Ctrl-C, an error
    or a crash leave the earlier model in place (--resume continues the new run). --out must name a
    regular file (not a directory, device or FIFO). One run at a time writes an --out: a second one
    fails at once (exit 1), naming the first.
    """
    from dlcli import api
    from dlcli.cli._io import console, write_json
    from dlcli.cli.recipes import resolve_recipe

    path = resolve_recipe(recipe)
    if plot:  # before training: a missing package must not cost a run
        from dlcli.plots import require_matplotlib

        require_matplotlib("--plot")
    summary = api.train(path, overrides=overrides, out=out, device=device, data_dir=data_dir,
                        resume=resume, overwrite=overwrite, console=console(quiet), threads=threads)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary from rank 0
        if plot:
            summary["plot"] = str(_plot_run(Path(summary["checkpoint"]), summary["metric"], console(quiet)))
        write_json(summary)  # valid UTF-8 even for a file name that is not (files.safe_json)


def _plot_run(checkpoint_path: Path, metric: str, messages) -> Path:
    """The run's metrics log (all of it, across --resume) drawn beside the checkpoint."""
    from dlcli import plots
    from dlcli.run_outputs import Outputs

    files = Outputs.of(checkpoint_path)
    picture = plots.plot_history(plots.read_metrics_log(files.log), files.picture, title=checkpoint_path.name,
                                 metric=metric)
    messages.print(f"wrote {picture}", markup=False, soft_wrap=True)
    return picture
