"""Ship a trained checkpoint inside the package as a named default model (dlcli/pretrained/NAME.pt).

Weights are stored as float16, halving the file; loading casts them back to float32, and the
script checks that the shipped copy scores the same on the dev file as the original.

    DLCLI_DATA_DIR=../shared/datasets python scripts/ship_pretrained.py en-ner runs/bilstm_crf_conll2003_en.pt \\
        --recipe recipes/tag/bilstm_crf_conll2003_en.yaml
    python scripts/ship_pretrained.py mtcnn runs/mtcnn.pt --recipe recipes/detect/mtcnn_onet_faces.yaml \
        --dev faces_dev/annotations.jsonl
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--dev", type=Path, help="the file to compare scores on [default: the recipe's data.dev]")
    args = parser.parse_args()

    data = checkpoint.load(args.checkpoint)
    payload = {k: v for k, v in data.items() if k not in HEADER}
    payload["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in data["state_dict"].items()}
    payload["shipped"] = {"name": args.name, "recipe": args.recipe.as_posix(),
                          "date": datetime.date.today().isoformat()}
    out = checkpoint.PRETRAINED_DIR / f"{args.name}.pt"
    checkpoint.save(out, payload)

    recipe = load_recipe(args.recipe)
    dev = args.dev or resolve_data_path(recipe.data.dev, data_root(), args.recipe.parent)
    before = api.evaluate(api.load_model(args.checkpoint), dev)
    after = api.evaluate(api.load_model(args.name), dev)
    metric = next(m for m in ("f1", "ap", "accuracy") if m in before)
    print(f"{out} ({os.path.getsize(out) / 1e6:.1f} MB): dev {metric} {after[metric]:.4f} shipped, "
          f"{before[metric]:.4f} original")
    if abs(after[metric] - before[metric]) > 0.002:
        raise SystemExit("float16 weights changed the dev score by more than 0.002: ship float32 instead")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
