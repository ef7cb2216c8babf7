"""Training MTCNN one stage at a time from sample crop lists: P-Net learns a synthetic face, later
stages start from (and keep) the earlier nets, and the final checkpoint detects through the CLI."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch
import yaml
from helpers import assert_fails, assert_ok, train
from PIL import Image

SIDE = 48


def face_crop(rng, box) -> np.ndarray:
    """Noise with a bright disc (the 'face') filling `box` (fractions of the crop)."""
    pixels = rng.integers(0, 90, (SIDE, SIDE, 3)).astype(np.uint8)
    x1, y1, x2, y2 = (np.array(box) * SIDE).round().astype(int)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
    pixels[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = (230, 200, 170)
    return pixels


def write_crops(folder, n: int = 160, seed: int = 0):
    """A sample list + zip: faces (pos), shifted faces (part), noise (neg), faces with landmarks."""
    rng = np.random.default_rng(seed)
    lines = ["# member\tkind\tvalues"]
    with zipfile.ZipFile(folder / "crops.zip", "w") as zf:
        for i in range(n):
            kind = ("pos", "neg", "part", "landmark", "neg")[i % 5]
            if kind == "neg":
                pixels, values = rng.integers(0, 90, (SIDE, SIDE, 3)).astype(np.uint8), []
            else:
                shift = rng.uniform(-0.05, 0.05, 2) if kind != "part" else rng.uniform(0.2, 0.3, 2)
                box = [0.1 + shift[0], 0.1 + shift[1], 0.9 + shift[0], 0.9 + shift[1]]
                pixels = face_crop(rng, np.clip(box, 0, 1))
                values = [box[0], box[1], box[2] - 1, box[3] - 1]
                if kind == "landmark":
                    values = [0.35, 0.4, 0.65, 0.4, 0.5, 0.55, 0.38, 0.72, 0.62, 0.72]
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG")
            zf.writestr(f"{kind}/{i}.png", buffer.getvalue())
            lines.append("\t".join([f"{kind}/{i}.png", kind, *(f"{v:.4f}" for v in values)]))
    (folder / "crops.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "crops.tsv"


def stage_recipe(folder, stage: str, init=None, **train_cfg) -> object:
    data = {"train": str(folder / "crops.tsv"), "format": "crops", "stage": stage, "dev_fraction": 0.25,
            "cache_dir": str(folder / "cache")}
    if init:
        data["init"] = str(init)
    recipe = {"task": "detect_faces", "seed": 3, "data": data, "model": {"type": "mtcnn"},
              "train": {"epochs": 6, "batch_size": 16, "optimizer": {"type": "adam", "lr": 3.0e-3}, **train_cfg}}
    path = folder / f"{stage}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crops")
    write_crops(folder)
    return folder


@pytest.fixture(scope="module")
def pnet(crops):
    from dlcli import api

    api.train(stage_recipe(crops, "pnet", epochs=10), out=crops / "pnet.pt")
    return crops / "pnet.pt"


def checkpoint(path):
    from dlcli import checkpoint as ckpt

    return ckpt.load(path)


def test_pnet_learns_the_synthetic_face(pnet):
    data = checkpoint(pnet)
    assert data["task_state"]["stage"] == "pnet" and data["task_state"]["stages"] == 1
    assert data["metrics"]["accuracy"] >= 0.9, data["metrics"]
    assert data["metrics"]["n"] == 40  # a quarter of the 160 crops held out


def test_later_stages_keep_the_earlier_nets_and_detect(cli, crops, pnet, tmp_path):
    result = train(cli, stage_recipe(crops, "rnet", init=pnet, max_steps=8), tmp_path / "rnet.pt")
    assert_ok(result)
    result = train(cli, stage_recipe(crops, "onet", init=tmp_path / "rnet.pt", max_steps=8), tmp_path / "onet.pt")
    assert_ok(result)
    first, second, third = checkpoint(pnet), checkpoint(tmp_path / "rnet.pt"), checkpoint(tmp_path / "onet.pt")
    for key, value in first["state_dict"].items():
        if key.startswith("pnet."):
            assert torch.equal(value, third["state_dict"][key]), key
    changed = [k for k in second["state_dict"] if k.startswith("rnet.")
               and not torch.equal(first["state_dict"][k], second["state_dict"][k])]
    assert changed, "R-Net did not train"
    assert all(torch.equal(second["state_dict"][k], third["state_dict"][k]) for k in second["state_dict"]
               if k.startswith("rnet."))
    assert third["task_state"]["stages"] == 3 and "landmark_error" in third["metrics"]

    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 90, (64, 80, 3)).astype(np.uint8)).save(photo)
    result = cli("detect-faces", photo, "--model", tmp_path / "onet.pt")
    assert_ok(result)
    record = result.json()
    assert record["width"] == 80 and isinstance(record["faces"], list)


def test_evaluate_on_a_crop_list_gives_crop_metrics(cli, crops, pnet):
    result = cli("evaluate", pnet, crops / "crops.tsv")
    assert_ok(result)
    metrics = result.json()
    assert metrics["n"] == 160 and metrics["accuracy"] >= 0.9


def test_stage_and_init_are_required(cli, crops, tmp_path):
    path = stage_recipe(crops, "pnet")
    recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    del recipe["data"]["stage"]
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert_fails(train(cli, path, tmp_path / "x.pt"), 2, "data.stage")
    assert_fails(train(cli, stage_recipe(crops, "onet"), tmp_path / "x.pt"), 2, "data.init")


def test_a_bad_crop_line_names_file_and_line(cli, tmp_path):
    write_crops(tmp_path, n=10)
    lines = (tmp_path / "crops.tsv").read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].split("\t")[0] + "\tpos\t0.1\t0.2"
    (tmp_path / "crops.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_fails(train(cli, stage_recipe(tmp_path, "pnet"), tmp_path / "x.pt"), 1, "crops.tsv:4",
                 "4 target values")


def write_photos(folder, n: int = 12, seed: int = 0):
    """Annotated photos (JSON Lines): noise with one or two bright discs as faces."""
    rng = np.random.default_rng(seed)
    (folder / "photos").mkdir()
    lines = []
    for i in range(n):
        pixels = rng.integers(0, 90, (96, 128, 3)).astype(np.uint8)
        boxes = []
        for x in rng.permutation([8, 48, 88])[: 1 + i % 2]:
            side = int(rng.integers(24, 36))
            y = int(rng.integers(4, 96 - side - 4))
            yy, xx = np.mgrid[:96, :128]
            disc = (xx - x - side / 2) ** 2 + (yy - y - side / 2) ** 2 <= (side / 2) ** 2
            pixels[disc] = (230, 200, 170)
            boxes.append([int(x), y, int(x) + side, y + side])
        Image.fromarray(pixels).save(folder / "photos" / f"{i}.png")
        lines.append(json.dumps({"image": f"photos/{i}.png", "boxes": boxes}))
    (folder / "faces.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "faces.jsonl"


def test_the_whole_pipeline_from_annotated_photos(cli, tmp_path):
    write_photos(tmp_path)

    def recipe(stage, init=None):
        path = stage_recipe(tmp_path, stage, init, epochs=2)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["data"].update(train=str(tmp_path / "faces.jsonl"), format="jsonl")
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    assert_ok(train(cli, recipe("pnet"), tmp_path / "pnet.pt"))
    shards = sorted((tmp_path / "cache").rglob("shard_*.npz"))
    assert shards and all(p.parent.name.startswith("pnet-train-") for p in shards)
    made = {p: p.stat().st_mtime_ns for p in shards}
    assert_ok(train(cli, recipe("pnet"), tmp_path / "pnet_again.pt"))
    assert {p: p.stat().st_mtime_ns for p in shards} == made, "the cached samples were made again"
    # R-Net's samples are the windows the trained P-Net proposes, cached apart from P-Net's
    assert_ok(train(cli, recipe("rnet", init=tmp_path / "pnet.pt"), tmp_path / "rnet.pt"))
    assert any(p.parent.name.startswith("rnet-train-") for p in (tmp_path / "cache").rglob("shard_*.npz"))
    assert checkpoint(tmp_path / "rnet.pt")["task_state"]["stages"] == 2
    result = cli("evaluate", tmp_path / "rnet.pt", tmp_path / "faces.jsonl", "--iou", "0.3")
    assert_ok(result)
    assert result.json()["n_faces"] == 18 and result.json()["n_images"] == 12


def test_face_crops_npz_count_as_positives_without_boxes(tmp_path):
    from dlcli.vision.crops import POS, read_crops

    faces = np.random.default_rng(0).integers(0, 256, (5, 36, 36), dtype=np.uint8)
    np.savez(tmp_path / "faces.npz", faces=faces, split=np.array(["train", "val", "train", "train", "val"]))
    crops = read_crops(tmp_path / "faces.npz")
    assert len(crops) == 3 and (crops.kinds == POS).all() and np.isnan(crops.boxes).all()
    assert crops.images.shape == (3, 36, 36, 3) and np.array_equal(crops.images[1, ..., 2], faces[2])


def test_dev_photos_held_out_by_name_and_scored_alone(cli, tmp_path):
    annotations = write_photos(tmp_path)
    path = stage_recipe(tmp_path, "pnet", epochs=1)
    recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    del recipe["data"]["dev_fraction"]
    recipe["data"].update(train=str(annotations), format="jsonl", dev_every=4, negative_ratio=3)
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert_ok(train(cli, path, tmp_path / "pnet.pt"))
    from dlcli.vision.crops import CropSet

    shards = sorted((tmp_path / "cache").rglob("shard_*.npz"))
    assert {p.parent.name.split("-")[1] for p in shards} == {"train", "dev"}
    dev_samples = sum(len(CropSet.load(p)) for p in shards if p.parent.name.startswith("pnet-dev-"))
    metrics = checkpoint(tmp_path / "pnet.pt")["metrics"]
    assert metrics["n_pos"] > 0 and metrics["n"] == dev_samples, "the dev metrics are over the dev photos' samples"

    # sorted by name: 0, 1, 10, 11, 2, 3, ...; every 4th from the first is 0, 2 and 6
    rows = [json.loads(line) for line in annotations.read_text(encoding="utf-8").splitlines()]
    dev = [r for r in rows if r["image"] in ("photos/0.png", "photos/2.png", "photos/6.png")]
    big = sum(min(b[2] - b[0], b[3] - b[1]) >= 30 for r in dev for b in r["boxes"])
    scored = cli("evaluate", tmp_path / "pnet.pt", annotations, "--dev-every", "4").json()
    assert scored["n_images"] == 3 and scored["n_faces"] == sum(len(r["boxes"]) for r in dev)
    small_ignored = cli("evaluate", tmp_path / "pnet.pt", annotations, "--dev-every", "4", "--ignore-under", "30")
    assert_ok(small_ignored)
    assert small_ignored.json()["n_faces"] == big

    recipe["data"]["dev_fraction"] = 0.1
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert_fails(train(cli, path, tmp_path / "x.pt"), 2, "data.dev_every")
    recipe["data"].update(dev_fraction=0.0, format="crops", train=str(write_crops(tmp_path, n=10)))
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert_fails(train(cli, path, tmp_path / "x.pt"), 2, "data.dev_every")
    assert_fails(cli("evaluate", tmp_path / "pnet.pt", annotations, "--dev-every", "1"), 2, "--dev-every")
