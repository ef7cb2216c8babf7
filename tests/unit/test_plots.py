"""Pictures: attention heatmaps and training curves as PNG files, and the error without matplotlib."""

from __future__ import annotations

import builtins
import struct

import numpy as np
import pytest
import torch

from dlcli import plots
from dlcli.errors import RecipeError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    """(width, height) in pixels from the PNG's IHDR chunk; fails on anything that is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def attention(rows: int, columns: int, seed: int = 0) -> torch.Tensor:
    return torch.softmax(torch.randn(rows, columns, generator=torch.Generator().manual_seed(seed)), dim=-1)


def history(epochs: int = 5) -> list[dict]:
    return [{"epoch": e, "step": 8 * e, "lr": 0.05, "train_loss": 1.0 / e, "best": e != 4,
             "dev": {"accuracy": 0.5 + 0.08 * e, "macro_f1": 0.4 + 0.1 * e, "n": 36}} for e in range(1, epochs + 1)]


@pytest.fixture
def without_matplotlib(monkeypatch):
    pytest.importorskip("matplotlib")  # (so that the other tests here would have run)
    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)


def test_attention_heatmap_is_a_png_that_grows_with_the_sentences(tmp_path):
    pytest.importorskip("matplotlib")
    short = plots.plot_attention("the cat sat .".split(), "le chat .".split(), attention(3, 4), tmp_path / "short.png")
    source, output = [f"word{i}" for i in range(30)], [f"mot{i}" for i in range(24)]
    long = plots.plot_attention(source, output, attention(24, 30).numpy(), tmp_path / "a" / "long.png", title="long")
    (w1, h1), (w2, h2) = png_size(short), png_size(long)
    assert w2 > w1 and h2 > h1
    assert long.parent.name == "a"  # the folder was made


def test_very_long_sentences_are_capped(tmp_path):
    pytest.importorskip("matplotlib")
    path = plots.plot_attention([f"s{i}" for i in range(120)], [f"o{i}" for i in range(100)],
                                np.full((100, 120), 1 / 120), tmp_path / "huge.png")
    width, height = png_size(path)
    assert max(width, height) <= plots.MAX_INCHES * plots.DPI


def test_attention_takes_lists_and_tensors_that_need_grad_and_chinese_tokens(tmp_path):
    pytest.importorskip("matplotlib")
    weights = attention(2, 3).requires_grad_()
    png_size(plots.plot_attention(list("我爱你"), ["I", "love"], weights, tmp_path / "zh.png", title="中文"))
    png_size(plots.plot_attention(["a"], ["b"], [[1.0]], tmp_path / "list.png"))
    png_size(plots.plot_attention([], [], np.zeros((0, 0)), tmp_path / "empty.png"))  # an empty line


def test_attention_refuses_weights_of_the_wrong_shape(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match=r"shape \(4, 3\) for 3 output and 4 source tokens"):
        plots.plot_attention(list("abcd"), list("xyz"), np.ones((4, 3)), tmp_path / "x.png")


def test_a_cjk_font_backs_up_dejavu_when_one_is_installed():
    assert plots.font_families({"DejaVu Sans", "WenQuanYi Zen Hei", "Noto Sans CJK JP"}) == [
        "DejaVu Sans", "Noto Sans CJK JP"]  # the first in CJK_FAMILIES' order
    assert plots.font_families({"DejaVu Sans"}) == ["DejaVu Sans"]


def test_history_curves_with_and_without_dev_metrics(tmp_path):
    pytest.importorskip("matplotlib")
    two_panels = png_size(plots.plot_history(history(), tmp_path / "h.png", title="run", metric="accuracy"))
    png_size(plots.plot_history(history(), tmp_path / "all.png"))  # every fractional dev metric
    no_dev = [{"epoch": e, "step": 8 * e, "lr": 0.1, "train_loss": 1.0 / e} for e in (1, 2)]
    one_panel = png_size(plots.plot_history(no_dev, tmp_path / "loss.png"))
    assert two_panels[1] > one_panel[1]
    png_size(plots.plot_history([{"epoch": 1, "step": 8, "lr": 0.1}], tmp_path / "old.png"))  # a log without loss


def test_dev_series_leaves_out_counts_unless_named():
    assert set(plots._dev_series(history(), None)) == {"accuracy", "macro_f1"}
    assert plots._dev_series(history(2), "n") == {"n": [(8, 36.0), (16, 36.0)]}


def test_an_unwritable_path_is_a_dlcli_error(tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "file").write_text("x")
    with pytest.raises(plots.DlcliError, match="cannot write the picture"):
        plots.plot_history(history(), tmp_path / "file" / "h.png")


def test_without_matplotlib_the_error_says_how_to_install_it(without_matplotlib, tmp_path):
    with pytest.raises(RecipeError) as info:
        plots.require_matplotlib("--plot")
    assert info.value.exit_code == 2
    assert info.value.message == "--plot draws with matplotlib, which is not installed"
    assert info.value.hint == "pip install 'dlcli[plot]'"
    with pytest.raises(RecipeError, match="not installed"):
        plots.plot_attention(["a"], ["b"], [[1.0]], tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()


def test_metrics_log_reading_names_the_bad_line(tmp_path):
    log = tmp_path / "m.metrics.jsonl"
    log.write_text('{"step": 1}\n\n{"step": 2\n', encoding="utf-8")
    with pytest.raises(plots.DataError, match="m.metrics.jsonl:3: not a JSON record"):
        plots.read_metrics_log(log)
    log.write_text('{"step": 1}\n{"step": 2}\n', encoding="utf-8")
    assert plots.read_metrics_log(log) == [{"step": 1}, {"step": 2}]
