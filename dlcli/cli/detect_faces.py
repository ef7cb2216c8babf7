"""`dlcli detect-faces [IMAGE... | -] [--model PATH]`."""

from __future__ import annotations

import sys

import typer

from dlcli.cli._io import quiet_option, threads_option

# The detector shipped in the package (dlcli/pretrained/mtcnn.pt, trained by recipes/detect/).
DEFAULT_MODEL = "mtcnn"

EXAMPLES = """Examples:

  dlcli detect-faces group.jpg | jq -c '.faces[].box'

  find photos -name '*.jpg' | dlcli detect-faces > faces.jsonl

  dlcli detect-faces a.jpg panorama.tif -m original.pt --max-side 0 --draw drawn/ --crop faces/
"""


def detect_faces_command(
    images: list[str] = typer.Argument(None, metavar="IMAGE", help="Image files; none or '-': read "
                                       "paths from stdin, one per line."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Face detector: a checkpoint from "
                              "`dlcli train` or `dlcli convert mtcnn`, or a shipped model's name."),
    min_face: float = typer.Option(None, "--min-face", min=1, help="Smallest face sought, in pixels; smaller is "
                                   "slower [default: the checkpoint's, 20]."),
    thresholds: str = typer.Option(None, "--thresholds", help="Score thresholds of P-Net, R-Net and O-Net, "
                                   "comma-separated [default: the checkpoint's, 0.6,0.7,0.7]."),
    factor: float = typer.Option(None, "--factor", help="Scale step of the image pyramid, between 0 and 1; "
                                 "larger is slower and finds a few more faces [default: the checkpoint's, 0.709]."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Images read and detected together; "
                                   "same-size images share forward passes [default: 8]."),
    draw: str = typer.Option(None, "--draw", metavar="DIR", help="Write <stem>.png copies with boxes and "
                             "landmarks drawn into DIR."),
    crop: str = typer.Option(None, "--crop", metavar="DIR", help="Write square face crops <stem>_<i>.png into "
                             "DIR (i: the face's place in the record)."),
    crop_size: int = typer.Option(160, "--crop-size", min=1, help="Side of the face crops, in pixels."),
    max_side: int = typer.Option(None, "--max-side", metavar="N", help="Scale larger images down so that "
                                 "their longer side is N pixels before detecting (boxes and landmarks are still "
                                 "in the file's pixels): bounds the memory and time a huge image takes, at the "
                                 "cost of faces that become smaller than --min-face. 0: detect at full size, "
                                 "memory growing with the pixels [default: 4096]."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N, mps or auto."),
    threads: int = threads_option(),
    quiet: bool = quiet_option(),
):
    """Detect faces (MTCNN) in image files; one JSON object per image, in input order.

    Record: {"image", "width", "height", "faces": [{"box": [x1, y1, x2, y2], "score",
    "landmarks": [[x, y] x 5]}]}, faces best first. Coordinates are pixels of the upright image
    (EXIF orientation applied), 0-based, x2/y2 exclusive; the landmarks are the eyes, the nose
    tip and the mouth corners as the original MTCNN orders them. An image that cannot be read
    gives {"image", "error"}; the others are still processed, and the exit code is then 1.

    "image" is the path as given. Paths are bytes: one that is not valid UTF-8 is written with each
    undecodable byte as a \\udcXX escape (Python's surrogateescape: os.fsencode(record["image"])
    gives the bytes back); its other characters are written as they are.
    A stdin line longer than 4096 bytes cannot name a file: it gets an error record, the path cut
    and ending in "...".
    """
    from pathlib import Path

    from dlcli import api
    from dlcli.cli._io import count_progress, write_predictions

    loaded = api.load_model(model, device)
    api.expect_task(loaded, "detect_faces", "dlcli detect-faces")
    chunks = api.batched(_paths(images), batch_size or loaded.predict_defaults.get("batch_size", 8))
    options = {"draw_dir": Path(draw) if draw else None, "crop_dir": Path(crop) if crop else None,
               "crop_size": crop_size, "min_face": min_face, "thresholds": _thresholds(thresholds),
               "factor": factor, "batch_size": batch_size, "max_side": max_side}
    listed = len(images) if images and images != ["-"] else None
    with count_progress(listed, "images", quiet) as advance:
        write_predictions(loaded, chunks, options, threads=threads, quiet=quiet, advance=advance, inputs="images")


def _paths(images: list[str] | None):
    from dlcli.errors import RecipeError
    from dlcli.pathlists import path_lines

    if not images or images == ["-"]:
        return path_lines(sys.stdin.buffer)  # bytes: any file name, and binary junk, reads
    if "-" in images:
        raise RecipeError("'-' (paths from stdin) cannot be mixed with image paths",
                          "list the images on stdin, or give them all as arguments")
    return iter(images)


def _thresholds(text: str | None) -> list[float] | None:
    from dlcli.errors import RecipeError

    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values:
        raise RecipeError(f"--thresholds: {text!r} is not three numbers between 0 and 1",
                          "give one per net, P-Net, R-Net and O-Net, e.g. 0.6,0.7,0.7")
    return values
