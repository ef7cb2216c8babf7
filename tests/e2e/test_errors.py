"""Bad input through the CLI: each error has its exit code, a message on stderr, and empty stdout."""

from __future__ import annotations

import pytest
import torch
from helpers import RunsCodeOnLoad, assert_fails, assert_ok, synthetic_rows, train, write_tsv

from dlcli import checkpoint

# ---------------------------------------------------------------- recipes and usage (exit 2)


def test_unknown_model_type(cli, dataset):
    recipe = dataset.recipe(model={"type": "textcn"})
    assert_fails(train(cli, recipe, dataset.root / "m.pt"), 2, "model.type", "'textcn'", "did you mean 'textcnn'")
    assert not (dataset.root / "m.pt").exists()


def test_unknown_recipe_key(cli, dataset):
    recipe = dataset.recipe(train={"epohcs": 3})
    assert_fails(train(cli, recipe, dataset.root / "m.pt"), 2, "train.epohcs", "did you mean 'epochs'")


def test_unknown_model_knob_via_set(cli, dataset):
    result = train(cli, dataset.recipe(), dataset.root / "m.pt", "--set", "model.embeding_dim=8")
    assert_fails(result, 2, "model.embeding_dim", "did you mean 'embedding_dim'")


def test_a_knob_value_the_model_refuses_is_a_recipe_error(cli, dataset):
    out = dataset.root / "m.pt"
    result = train(cli, dataset.recipe(model={"type": "lstm", "pooling": "median"}), out)
    assert_fails(result, 2, "model: pooling must be one of", "median")
    assert not out.exists()


def test_unknown_dev_metric_fails_before_training(cli, dataset):
    result = train(cli, dataset.recipe(), dataset.root / "m.pt", "--set", "train.metric=acuracy")
    assert_fails(result, 2, "train.metric", "did you mean 'accuracy'")
    assert not (dataset.root / "m.metrics.jsonl").exists()


@pytest.mark.parametrize("setting, key", [("train.lr_schedule={type: step, unit: week}", "train.lr_schedule"),
                                          ("train.optimizer.lr=-1", "train.optimizer")])
def test_bad_optimizer_or_schedule_values_fail_before_training(cli, dataset, setting, key):
    assert_fails(train(cli, dataset.recipe(), dataset.root / "m.pt", "--set", setting), 2, key)


def test_missing_recipe(cli, tmp_path):
    assert_fails(train(cli, tmp_path / "nope.yaml", tmp_path / "m.pt"), 2, str(tmp_path / "nope.yaml"),
                 "dlcli recipes list")


@pytest.mark.parametrize("args, message, help_of", [
    (["classify"], "missing argument 'model'", "dlcli classify"),
    (["classify", "m.pt", "--top-k", "0"], "invalid value for '--top-k'", "dlcli classify"),
    (["classify", "m.pt", "--threshold", "abc"], "invalid value for '--threshold'", "dlcli classify"),
    (["tag", "--batch-size", "0"], "invalid value for '--batch-size'", "dlcli tag"),
    (["train", "--bogus"], "no such option: --bogus", "dlcli train"),
    (["no-such-command"], "no such command 'no-such-command'", "dlcli"),
])
def test_usage_errors_have_dlcli_format(cli, args, message, help_of):
    """The command-line library's own errors read like every other: `dlcli: error:` + `hint:`."""
    result = cli(*args)
    assert_fails(result, 2, f"dlcli: error: {message}", f"hint: see '{help_of} --help'")
    assert "Usage:" not in result.err and "internal error" not in result.err


def test_fp16_needs_cuda(cli, dataset):
    result = train(cli, dataset.recipe(precision="fp16"), dataset.root / "m.pt", "--device", "cpu")
    assert_fails(result, 2, "precision: fp16 needs a CUDA device", "bf16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_gpu(cli, dataset):
    assert_fails(train(cli, dataset.recipe(), dataset.root / "m.pt", "--device", "cuda"), 2, "no CUDA GPU")


def test_unknown_device(cli, dataset):
    assert_fails(train(cli, dataset.recipe(), dataset.root / "m.pt", "--device", "tpu"), 2, "device:")


def test_bad_input_format_option(cli, trained):
    assert_fails(cli("classify", trained, "--input-format", "xml"), 2, "--input-format")


# ---------------------------------------------------------------- data (exit 1)


def test_malformed_training_line_names_file_and_line(cli, dataset):
    lines = dataset.train.read_text().splitlines()
    lines[4] = lines[4].replace("\t", " ")
    dataset.train.write_text("\n".join(lines) + "\n")
    assert_fails(train(cli, dataset.recipe(), dataset.root / "m.pt"), 1, f"{dataset.train}:5:", "tab-separated")


def test_non_utf8_training_data_names_file_and_line(cli, dataset):
    with dataset.train.open("ab") as fh:
        fh.write(b"animal\tthe caf\xe9 cat\n")
    line = len(dataset.train.read_bytes().splitlines())
    result = train(cli, dataset.recipe(), dataset.root / "m.pt")
    assert_fails(result, 1, f"{dataset.train}:{line}: not valid utf-8", "--encoding")


def test_missing_data_file_points_at_the_data_readme(cli, dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DLCLI_DATA_DIR", raising=False)
    recipe = dataset.recipe(data={"train": "corpus/train.tsv"})
    result = train(cli, recipe, tmp_path / "m.pt")
    assert_fails(result, 1, str(tmp_path / "data" / "corpus" / "train.tsv"), "data/README.md")


def test_data_dir_option_and_env_set_the_root(cli, dataset, tmp_path, monkeypatch):
    recipe = dataset.recipe(data={"train": "corpus/train.tsv", "dev": None}, train={"epochs": 1})
    root = tmp_path / "elsewhere"
    (root / "corpus").mkdir(parents=True)
    write_tsv(root / "corpus" / "train.tsv", synthetic_rows(5, seed=3))
    assert_ok(train(cli, recipe, tmp_path / "a.pt", "--data-dir", root))
    monkeypatch.setenv("DLCLI_DATA_DIR", str(root))
    assert_ok(train(cli, recipe, tmp_path / "b.pt"))


def test_single_label_training_data(cli, dataset):
    write_tsv(dataset.train, [("animal", "cat")] * 5)
    assert_fails(train(cli, dataset.recipe(), dataset.root / "m.pt"), 1, "fewer than two labels")


def test_classify_non_utf8_input(cli, trained, tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"the red cat\nun caf\xe9 tiger\n")
    for result, source in ((cli("classify", trained, path), path), (cli("classify", trained, stdin=path.read_bytes()),
                                                                    "<stdin>")):
        assert result.code == 1 and [r["id"] for r in result.records()] == [1]  # the line before it is answered
        assert f"{source}:2: not valid utf-8" in result.err and "--encoding" in result.err
        assert "output incomplete: 1 record written before this error" in result.err
    result = cli("classify", trained, path, "--encoding", "latin-1")
    assert_ok(result)
    assert [r["id"] for r in result.records()] == [1, 2]


def test_classify_malformed_jsonl_input(cli, trained):
    result = cli("classify", trained, "--input-format", "jsonl", stdin=b'{"text": "cat"}\n{"text": \n')
    assert result.code == 1 and [r["id"] for r in result.records()] == [1]
    assert "<stdin>:2: invalid JSON" in result.err and "output incomplete" in result.err


def test_classify_missing_input_file(cli, trained, tmp_path):
    assert_fails(cli("classify", trained, tmp_path / "nope.txt"), 1, str(tmp_path / "nope.txt"))


def test_evaluate_malformed_line(cli, trained, tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("animal\tcat\ncolour\n")
    assert_fails(cli("evaluate", trained, path), 1, f"{path}:2:")


def test_evaluate_missing_file(cli, trained, tmp_path):
    assert_fails(cli("evaluate", trained, tmp_path / "dev.tsv"), 1, str(tmp_path / "dev.tsv"))


# ---------------------------------------------------------------- checkpoints (exit 1)


@pytest.mark.parametrize("command", ["classify", "info", "evaluate"])
def test_checkpoint_carrying_code_is_refused_and_never_runs(cli, trained, tmp_path, command):
    marker, evil = tmp_path / "marker", tmp_path / "evil.pt"
    data = checkpoint.load(trained)
    data["state_dict"] = {"weight": RunsCodeOnLoad(marker)}
    torch.save(data, evil)
    extra = [trained.parent / "dev.tsv"] if command == "evaluate" else []
    assert_fails(cli(command, evil, *extra, stdin=b"red cat\n"), 1, "refused to load", "not plain data")
    assert not marker.exists()


def test_truncated_checkpoint(cli, trained, tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(trained.read_bytes()[:1000])
    assert_fails(cli("classify", broken, stdin=b"red cat\n"), 1, str(broken), "truncated or damaged")


def test_newer_checkpoint_format(cli, trained, tmp_path):
    newer = tmp_path / "newer.pt"
    data = checkpoint.load(trained)
    checkpoint.save(newer, {**data, "format_version": checkpoint.FORMAT_VERSION + 1, "dlcli_version": "99.0"})
    assert_fails(cli("info", newer), 1, "newer than this dlcli reads", "upgrade dlcli")


def test_checkpoint_naming_an_unregistered_model(cli, trained, tmp_path):
    odd = tmp_path / "odd.pt"
    data = checkpoint.load(trained)
    checkpoint.save(odd, {**data, "model": {"type": "os.system", "kwargs": {}}})
    assert_fails(cli("classify", odd, stdin=b"red cat\n"), 1, "does not fit", "os.system")


def test_train_state_is_not_a_model(cli, trained):
    state = trained.with_name("model.train-state.pt")
    assert_fails(cli("classify", state, stdin=b"red cat\n"), 1, "expected a dlcli.model")


def test_missing_checkpoint(cli, tmp_path):
    assert_fails(cli("classify", tmp_path / "nope.pt"), 1, str(tmp_path / "nope.pt"))


# ---------------------------------------------------------------- bugs stay short


def test_internal_error_is_one_line_without_traceback(cli, trained, monkeypatch):
    from dlcli import api

    def broken(*args, **kwargs):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(api, "load_model", broken)
    assert_fails(cli("classify", trained), 1, "internal error: ZeroDivisionError: oops", "DLCLI_DEBUG=1")


def test_debug_lets_the_exception_through(trained, monkeypatch):
    from dlcli import api
    from dlcli.cli import run

    monkeypatch.setattr(api, "load_model", lambda *a, **k: 1 / 0)
    monkeypatch.setenv("DLCLI_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        run(["classify", str(trained)])
