"""train.layer_lr_decay: a gpt or bert classifier's parameters split into layers, input first and
head last, every parameter in exactly one; the optimizer gives each layer the lr of the one above
times the decay; a model without layers refuses the key, naming it."""

from __future__ import annotations

import pytest
from helpers import assert_fails, assert_ok, make_dataset, train

from dlcli import registry, training
from dlcli.models.bert_classifier import BertClassifier
from dlcli.models.gpt_classifier import GPTClassifier
from dlcli.tasks.classify import ClassifyTask

BUILT = {
    "gpt": lambda: GPTClassifier(30, 3, 0, context_length=16, embedding_dim=8, num_layers=3, num_heads=2),
    "bert": lambda: BertClassifier(30, 3, 0, hidden_size=8, num_layers=3, num_heads=2, max_position_embeddings=16,
                                   cls_id=1, sep_id=2),
}


@pytest.mark.parametrize("name", sorted(BUILT))
def test_layers_partition_the_parameters(name):
    model = BUILT[name]()
    layers = model.layer_groups()
    assert len(layers) == 3 + 2  # embeddings, three blocks, the head
    ids = [id(p) for layer in layers for p in layer]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    assert any(p is model.output.weight for p in layers[-1])


@pytest.mark.parametrize("name", sorted(BUILT))
def test_each_layer_learns_at_the_decay_times_the_one_above(name):
    recipe = registry.parse_recipe({"task": "classify", "data": {"train": "x.tsv"},
                                        "model": {"type": name},
                                        "train": {"optimizer": {"type": "adamw", "lr": 0.01}, "layer_lr_decay": 0.5}})
    parts = registry.resolve_recipe(recipe)
    task = ClassifyTask.__new__(ClassifyTask)
    task.splits = {"train": ([[1]] * 64, [0] * 64)}
    optimizer, _ = training._optimization(parts, BUILT[name](), task, recipe.train, 1)
    lrs = [group["lr"] for group in optimizer.param_groups]
    assert lrs == pytest.approx([0.01 * 0.5 ** k for k in range(4, -1, -1)])


def test_a_model_without_layers_refuses_the_key(cli, tmp_path):
    data = make_dataset(tmp_path)
    recipe = data.recipe(train={"layer_lr_decay": 0.8})
    assert_fails(train(cli, recipe, tmp_path / "m.pt"), 2, "train.layer_lr_decay")
    assert_fails(train(cli, recipe, tmp_path / "m.pt", "--set", "train.layer_lr_decay=0"), 2, "layer_lr_decay")
    gpt = data.recipe("gpt.yaml", model={"type": "gpt", "context_length": 16, "embedding_dim": 8, "num_layers": 2,
                                         "num_heads": 2},
                      train={"layer_lr_decay": 0.8, "epochs": 1, "optimizer": {"type": "adamw", "lr": 0.003}})
    assert_ok(train(cli, gpt, tmp_path / "g.pt"))
