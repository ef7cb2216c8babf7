"""CUDA: training in each precision, and checkpoints that move between GPU and CPU (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch
from helpers import TINY_TEXTCNN, assert_ok

from dlcli import api

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_training_learns_and_the_checkpoint_loads_on_cpu(cli, dataset, precision):
    out = dataset.root / "m.pt"
    recipe = dataset.recipe(model=TINY_TEXTCNN, train={"epochs": 6}, precision=precision)
    result = cli("train", recipe, "--out", out, "--device", "cuda", "--quiet")
    assert_ok(result)
    assert result.json()["best"] >= 0.9
    on_cpu = api.load_model(out, "cpu")
    assert next(on_cpu.model.parameters()).device.type == "cpu"
    assert api.evaluate(on_cpu, dataset.dev)["accuracy"] >= 0.9


def test_classify_on_cuda_matches_cpu(cli, trained, trained_dev):
    texts = "".join(text + "\n" for _, text in trained_dev).encode()
    on_cpu = cli("classify", trained, "--top-k", "3", stdin=texts).records()
    on_gpu = cli("classify", trained, "--top-k", "3", "--device", "cuda", stdin=texts).records()
    assert [r["label"] for r in on_gpu] == [r["label"] for r in on_cpu]
    for a, b in zip(on_cpu, on_gpu):
        assert [x["score"] for x in a["top_k"]] == pytest.approx([x["score"] for x in b["top_k"]], abs=1e-4)
