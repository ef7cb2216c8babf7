"""Pictures as PNG files: attention heatmaps and training curves. matplotlib is an optional extra
(`pip install 'dlcli[plot]'`), imported only when a picture is asked for, and drawn with its Agg
canvas directly: no pyplot, no display, no change to the user's matplotlib state."""

from __future__ import annotations

import json
import logging
import math
import warnings
from contextlib import contextmanager
from pathlib import Path

from dlcli.errors import DataError, DlcliError, RecipeError

INSTALL_HINT = "pip install 'dlcli[plot]'"
# Families with Chinese (and Japanese/Korean) glyphs, tried in order; the first one installed backs
# up DejaVu Sans, matplotlib's own font, for the characters that it lacks.
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
                "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC",
                "Hiragino Sans GB", "Heiti SC", "AR PL UMing CN", "Droid Sans Fallback", "Arial Unicode MS")
CELL = 0.32  # inches a token takes along an axis of the heatmap
MAX_INCHES = 24.0  # the heatmap's largest side; longer sentences label every k-th token
DPI = 100


def require_matplotlib(option: str = "this option") -> None:
    """Fail (exit 2) when matplotlib is missing, before any work that the picture would follow."""
    _matplotlib(option)


def _matplotlib(option: str = "this option"):
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise RecipeError(f"{option} draws with matplotlib, which is not installed", INSTALL_HINT) from None
    return matplotlib, Figure, FigureCanvasAgg


def font_families(installed: set[str] | None = None) -> list[str]:
    """DejaVu Sans and, when one is installed, a CJK family to fall back on for the glyphs it lacks."""
    if installed is None:
        from matplotlib import font_manager

        installed = {font.name for font in font_manager.fontManager.ttflist}
    cjk = next((name for name in CJK_FAMILIES if name in installed), None)
    return ["DejaVu Sans", cjk] if cjk else ["DejaVu Sans"]


@contextmanager
def _drawing():
    """matplotlib's Figure and Agg canvas types, with the fonts set for this picture only and font
    fallback quiet: without a CJK font those glyphs come out as boxes, with no warning for each."""
    matplotlib, figure_type, canvas_type = _matplotlib()
    fonts = logging.getLogger("matplotlib.font_manager")
    level = fonts.level
    fonts.setLevel(logging.ERROR)
    try:
        with matplotlib.rc_context({"font.family": font_families()}), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Glyph .* missing from")
            yield figure_type, canvas_type
    finally:
        fonts.setLevel(level)


def _save(figure, canvas_type, path: Path) -> Path:
    path = Path(path)
    canvas_type(figure)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=DPI)
    except OSError as exc:
        raise DlcliError(f"cannot write the picture {path}: {exc.strerror or exc}",
                         "check that the folder is writable and the disk not full") from None
    return path


def _matrix(weights, rows: int, columns: int):
    import numpy as np

    if type(weights).__module__.startswith("torch"):
        weights = weights.detach().float().cpu().numpy()
    matrix = np.asarray(weights, dtype=np.float64)
    if matrix.shape != (rows, columns):
        raise ValueError(f"attention weights of shape {matrix.shape} for {rows} output and {columns} source tokens")
    return matrix


def _ticks(axis_set, labels_set, labels: list[str], side: float) -> float:
    """Every k-th label, k as small as fits `side` inches; returns the font size."""
    step = max(1, math.ceil(len(labels) * CELL / max(side, CELL)))
    positions = list(range(0, len(labels), step))
    axis_set(positions)
    labels_set([labels[i] for i in positions])
    return 9.0 if step == 1 else 8.0


def plot_attention(source_tokens: list[str], output_tokens: list[str], weights, path, title: str | None = None) -> Path:
    """A heatmap PNG of `weights` (rows: output tokens, columns: source tokens; a torch tensor, a
    numpy array or nested lists), source tokens along x, a colour bar. Returns the path written."""
    source, output = [str(t) for t in source_tokens], [str(t) for t in output_tokens]
    matrix = _matrix(weights, len(output), len(source))
    longest = max((len(t) for t in source + output), default=1)
    margin = min(3.0, 0.6 + 0.09 * longest)  # room for the labels
    width = min(MAX_INCHES, max(4.0, CELL * len(source) + margin + 1.6))
    height = min(MAX_INCHES, max(3.0, CELL * len(output) + margin + (0.5 if title else 0.2)))
    with _drawing() as (Figure, Canvas):
        figure = Figure(figsize=(width, height), layout="constrained")
        axes = figure.add_subplot()
        if matrix.size:
            image = axes.imshow(matrix, cmap="viridis", vmin=0.0, vmax=max(1.0, float(matrix.max())), aspect="auto",
                                interpolation="nearest")
            figure.colorbar(image, ax=axes, fraction=min(0.05, 0.4 / width), pad=0.02, label="attention")
            size = _ticks(axes.set_xticks, axes.set_xticklabels, source, width - margin - 1.6)
            axes.tick_params(axis="x", labelsize=size, labelrotation=90)
            size = _ticks(axes.set_yticks, axes.set_yticklabels, output, height - margin)
            axes.tick_params(axis="y", labelsize=size)
        else:
            axes.set_axis_off()
            axes.text(0.5, 0.5, "no source or output tokens", ha="center", va="center", transform=axes.transAxes)
        axes.set_xlabel("source")
        axes.set_ylabel("output")
        if title:
            axes.set_title(title)
        return _save(figure, Canvas, path)


def _dev_series(history: list[dict], metric: str | None) -> dict[str, list[tuple[int, float]]]:
    """(step, value) per dev metric: `metric` alone when given, else every fractional score (counts left out)."""
    series: dict[str, list[tuple[int, float]]] = {}
    for record in history:
        for name, value in (record.get("dev") or {}).items():
            if (name == metric if metric else isinstance(value, float)) and isinstance(value, (int, float)):
                series.setdefault(name, []).append((record["step"], float(value)))
    return series


def plot_history(history: list[dict], path, title: str | None = None, *, metric: str | None = None) -> Path:
    """The training loss and the dev metrics over the optimisation steps of a run, from its metrics
    log records (`<out stem>.metrics.jsonl`: `step`, `train_loss`, `dev: {...}`, `best`), as a PNG:
    loss above, dev metrics below (only `metric`, the run's selection metric, when given; its best
    evaluations starred). Returns the path written."""
    losses = [(r["step"], r["train_loss"]) for r in history if isinstance(r.get("train_loss"), (int, float))]
    dev = _dev_series(history, metric)
    with _drawing() as (Figure, Canvas):
        figure = Figure(figsize=(7.0, 6.0 if dev else 3.6), layout="constrained")
        panels = figure.subplots(2 if dev else 1, 1, sharex=True, squeeze=False)[:, 0]
        _draw_loss(panels[0], losses)
        if dev:
            best = [(r["step"], float(r["dev"][metric])) for r in history
                    if metric in dev and r.get("best") and metric in r.get("dev", {})]
            _draw_dev(panels[1], dev, best, metric)
        panels[-1].set_xlabel("step")
        if title:
            figure.suptitle(title)
        return _save(figure, Canvas, path)


def _line(axes, points: list[tuple[int, float]], **style) -> None:
    axes.plot(*zip(*points), marker="o" if len(points) < 30 else None, markersize=3, **style)


def _draw_loss(axes, losses: list[tuple[int, float]]) -> None:
    if losses:
        _line(axes, losses, label="training loss")
    else:
        axes.text(0.5, 0.5, "no training loss logged", ha="center", va="center", transform=axes.transAxes)
    axes.set_ylabel("training loss")
    axes.grid(alpha=0.3)


def _draw_dev(axes, dev: dict[str, list[tuple[int, float]]], best: list[tuple[int, float]], metric: str | None) -> None:
    for name, points in dev.items():
        _line(axes, points, label=f"dev {name}")
    if best:
        axes.plot(*zip(*best), linestyle="none", marker="*", markersize=10, color="tab:red", label="best so far")
    axes.set_ylabel(f"dev {metric}" if metric in dev else "dev")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)


def read_metrics_log(path) -> list[dict]:
    """The records of a metrics log (`<out stem>.metrics.jsonl`), in order."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"no metrics log at {path.resolve()}", "train with the same --out first") from None
    records = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not a JSON record: {exc.msg}") from None
    return records
