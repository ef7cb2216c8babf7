"""Ship a trained checkpoint inside the package as a named default model (dlcli/pretrained/NAME.pt).

Weights are stored as float16, halving the file; loading casts them back to float32, and the
script checks that the shipped copy scores the same on the dev file as the original. The shipped
copy takes its `predict` settings from the recipe as it is now (tuned on dev after training).

    DLCLI_DATA_DIR=../shared/datasets python scripts/ship_pretrained.py en-ner runs/bilstm_crf_conll2003_en.pt \\
        --recipe recipes/tag/bilstm_crf_conll2003_en.yaml
    DLCLI_DATA_DIR=../shared/datasets python scripts/ship_pretrained.py mtcnn runs/mtcnn_wider.pt \
        --recipe recipes/detect/mtcnn_onet_wider.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
from pathlib import Path

import torch

from dlcli import api, checkpoint
from dlcli.recipe import data_root, resolve_data_path
from dlcli.registry import load_recipe

HEADER = ("format", "format_version", "dlcli_version")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--recipe", type=Path, required=True, help="the recipe that trained it (recorded)")
    parser.add_argument("--dev", type=Path, help="the file to compare scores on [default: the recipe's data.dev, "
                        "or the dev photos of its data.dev_every]")
    args = parser.parse_args()

    data = checkpoint.load(args.checkpoint)
    payload = {k: v for k, v in data.items() if k not in HEADER}
    payload["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in data["state_dict"].items()}
    payload["shipped"] = {"name": args.name, "recipe": args.recipe.as_posix(),
                          "date": datetime.date.today().isoformat()}
    out = checkpoint.PRETRAINED_DIR / f"{args.name}.pt"
    recipe = load_recipe(args.recipe)
    # inference settings tuned after training (they change nothing the training did) ship as the
    # recipe now states them, so retraining from the recipe gives the shipped model
    if dataclasses.is_dataclass(recipe.predict):
        tuned = dataclasses.asdict(recipe.predict)
        if tuned != payload["recipe"].get("predict"):
            print(f"predict settings from {args.recipe}: {tuned} (the checkpoint had "
                  f"{payload['recipe'].get('predict')})")
            payload["recipe"] = {**payload["recipe"], "predict": tuned}
    # the shipped model is replaced only once its copy has passed the check below
    candidate = out.with_name(f".{out.stem}.candidate.pt")
    checkpoint.save(candidate, payload)

    options = {}
    if args.dev:
        dev = args.dev
    elif getattr(recipe.data, "dev_every", 0):  # a face recipe's dev photos, held out of its training file
        dev = resolve_data_path(recipe.data.train, data_root(), args.recipe.parent)
        options["dev_every"] = recipe.data.dev_every
    else:
        dev = resolve_data_path(recipe.data.dev, data_root(), args.recipe.parent)
    original = api.load_model(args.checkpoint)
    original.data["recipe"] = payload["recipe"]  # scored with the predict settings it ships with
    before = api.evaluate(original, dev, **options)
    after = api.evaluate(api.load_model(candidate), dev, **options)
    metric = next(m for m in ("f1", "ap", "accuracy") if m in before)
    print(f"{out} ({os.path.getsize(candidate) / 1e6:.1f} MB): dev {metric} {after[metric]:.4f} shipped, "
          f"{before[metric]:.4f} original")
    if abs(after[metric] - before[metric]) > 0.002:
        candidate.unlink()
        raise SystemExit("float16 weights changed the dev score by more than 0.002: ship float32 instead "
                         f"({out} is unchanged)")
    os.replace(candidate, out)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
