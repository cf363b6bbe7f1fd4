"""The look shared by every annlens figure: colours, sizes, fonts, saving.

Colour rules, the same in every figure:

- one colour per **variant**, from a colour-blind-safe qualitative palette,
  fixed by the order of the variant list passed to :func:`variant_palette`
  (the report builds it once and hands it to every figure);
- **depth** (layers, input to output) on a sequential map, dark to light;
- **time** (chosen steps) on a second sequential map, dark (early) to bright
  (late).

Figures are built on :class:`matplotlib.figure.Figure` directly, never through
``pyplot``: nothing global is touched, nothing needs a display, and a figure is
freed when the last reference to it goes. :func:`save_figure` writes PNG and
SVG atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatterSciNotation

from annlens.errors import ConfigError
from annlens.io.atomic import write_bytes

# The Okabe-Ito palette without its yellow (too pale on white), then black.
VARIANT_COLORS: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
)

#: Width of a full-width report figure, in inches. PNGs are saved at DPI pixels
#: per inch; the report shows them at 100 CSS pixels per inch (sharp on
#: high-density screens).
FULL_WIDTH = 10.0
DPI = 150
FORMATS = ("png", "svg")

RC: Any = {  # matplotlib types its keys as literals; any valid key works
    "font.size": 11,
    "axes.titlesize": 11.5,
    "axes.titleweight": "bold",
    "axes.labelsize": 10.5,
    "xtick.labelsize": 9.5,
    "ytick.labelsize": 9.5,
    "legend.fontsize": 9.5,
    "legend.title_fontsize": 10,
    "legend.frameon": False,
    "figure.titlesize": 14,
    "figure.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#d9d9d9",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "lines.linewidth": 1.6,
    "svg.fonttype": "none",
    "svg.hashsalt": "annlens",
}

SVG_RC: Any = {"svg.fonttype": "none", "svg.hashsalt": "annlens"}

P = ParamSpec("P")
R = TypeVar("R")


def styled(function: Callable[P, R]) -> Callable[P, R]:
    """Build the decorated figure function's artists under the annlens style."""

    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with matplotlib.rc_context(RC):
            return function(*args, **kwargs)

    return wrapper


def new_figure(
    nrows: int = 1,
    ncols: int = 1,
    *,
    width: float = FULL_WIDTH,
    row_height: float = 3.6,
    sharex: bool = False,
    sharey: bool = False,
) -> tuple[Figure, np.ndarray]:
    """A figure with a grid of axes, laid out by matplotlib's constrained layout.

    Returns
    -------
    figure : Figure
    axes : ndarray of Axes, shape (nrows, ncols)
    """
    figure = Figure(figsize=(width, row_height * nrows), layout="constrained")
    axes = figure.subplots(nrows, ncols, sharex=sharex, sharey=sharey, squeeze=False)
    return figure, axes


def grid_shape(n: int, max_columns: int = 3) -> tuple[int, int]:
    """Rows and columns of a small-multiples grid for ``n`` panels."""
    columns = min(max(n, 1), max_columns)
    return -(-max(n, 1) // columns), columns


def hide_unused(axes: np.ndarray, used: int) -> None:
    """Hide the panels of a grid beyond the first ``used``."""
    for ax in axes.flat[used:]:
        ax.set_visible(False)


def label_grid(axes: np.ndarray, used: int, xlabel: str, ylabel: str) -> None:
    """Label the x axis of each panel with no used panel below it, the y axis of
    the first column, and hide the panels beyond the first ``used``."""
    columns = axes.shape[1]
    for i, ax in enumerate(axes.flat[:used]):
        row, column = divmod(i, columns)
        if (row + 1) * columns + column >= used:
            ax.set_xlabel(xlabel)
            ax.tick_params(labelbottom=True)
        if column == 0:
            ax.set_ylabel(ylabel)
    hide_unused(axes, used)


def legend_line(
    label: str, color: Any = "#555555", linestyle: Any = "-", **properties: Any
) -> Line2D:
    """A legend entry drawn as a line (``linestyle`` any matplotlib style)."""
    return Line2D([], [], color=color, linestyle=linestyle, label=label, **properties)


def log_y(ax: Axes) -> None:
    """A log y axis that also labels some minor ticks when it spans under two
    decades (by default only powers of ten carry a label)."""
    ax.set_yscale("log")
    ax.yaxis.set_minor_formatter(
        LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(2, 0.5))
    )


def headline(figure: Figure, text: str) -> None:
    """The figure's title, flush left, so that a legend on the right stays clear."""
    figure.suptitle(text, x=0.01, ha="left")


LABEL_CHARS = 32


def variant_label(variant: str) -> str:
    """The name shown for a variant; the single run of a table has variant ``""``.

    A name longer than :data:`LABEL_CHARS` keeps its start and its end around
    an ellipsis, so that a panel title or a legend entry does not run over its
    neighbours (the colour, and the report's tables, give the whole name).
    """
    if not variant:
        return "run"
    if len(variant) <= LABEL_CHARS:
        return variant
    head = (LABEL_CHARS - 1) // 2
    return variant[:head] + "…" + variant[-(LABEL_CHARS - 1 - head) :]


def variant_palette(variants: Sequence[str]) -> dict[str, str]:
    """One colour per variant, in the order given; the palette repeats past seven.

    Pass the same palette to every figure of a report so that a variant keeps
    its colour everywhere, also in figures that show only some variants.
    """
    ordered = list(dict.fromkeys(variants))
    return {v: VARIANT_COLORS[i % len(VARIANT_COLORS)] for i, v in enumerate(ordered)}


def palette_for(
    variants: Sequence[str], palette: Mapping[str, str] | None
) -> dict[str, str]:
    """``palette`` completed with colours for variants it lacks."""
    result = dict(palette or {})
    missing = [v for v in variants if v not in result]
    used = len(result)
    for i, variant in enumerate(missing):
        result[variant] = VARIANT_COLORS[(used + i) % len(VARIANT_COLORS)]
    return result


def depth_colors(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` colours for layers from input (dark) to output (light)."""
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.0, 0.88, max(n, 1))][:n]


def time_colors(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` colours for steps from early (dark) to late (bright)."""
    cmap = matplotlib.colormaps["plasma"]
    return [cmap(x) for x in np.linspace(0.0, 0.82, max(n, 1))][:n]


def note(ax: Axes, text: str) -> None:
    """Write a short grey note in the middle of an empty panel."""
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        color="#777777",
        wrap=True,
    )
    ax.set_xticks([])
    ax.set_yticks([])


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving mean over ``window`` points (edges use fewer points)."""
    if window <= 1 or values.size < 3:
        return values
    kernel = np.ones(window)
    finite = np.isfinite(values)
    sums = np.convolve(np.where(finite, values, 0.0), kernel, mode="same")
    counts = np.convolve(finite.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def auto_window(n_points: int) -> int:
    """A smoothing window: none up to 150 points, then about n / 60 points."""
    return 1 if n_points <= 150 else max(3, n_points // 60) | 1


def figure_png(figure: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def figure_svg(figure: Figure) -> bytes:
    """The figure as SVG bytes (text kept as text, no date in the metadata)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(SVG_RC):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def save_figure(
    figure: Figure,
    directory: str | os.PathLike[str],
    name: str,
    *,
    formats: Sequence[str] = FORMATS,
    dpi: int = DPI,
) -> dict[str, Path]:
    """Write ``figure`` as ``directory/name.png`` and ``directory/name.svg``.

    Each file is written to a temporary file beside it and renamed into place
    (:func:`annlens.io.atomic.write_bytes`), so a reader never sees half a
    figure. The folder is created if needed. The layout is solved once, for the
    first format, and reused for the others.

    Parameters
    ----------
    figure : Figure
    directory : str or Path
    name : str
        The file name without extension; no path separators.
    formats : sequence of {"png", "svg"}
    dpi : int
        Pixels per inch of the PNG.

    Returns
    -------
    dict of str to Path
        The path written for each format.
    """
    if not name or Path(name).name != name or name in {".", ".."}:
        raise ConfigError(
            f"save_figure expects a plain file name without folders, got {name!r}"
        )
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ConfigError(
            f"save_figure writes formats {list(FORMATS)}, got {unknown} in {formats!r}"
        )
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    engine = figure.get_layout_engine()
    try:
        for i, fmt in enumerate(formats):
            data = figure_png(figure, dpi) if fmt == "png" else figure_svg(figure)
            if i == 0 and engine is not None:
                # The layout is now computed; keep it for the other formats
                # rather than solve it again (about half the cost of a render).
                figure.set_layout_engine("none")
            path = folder / f"{name}.{fmt}"
            write_bytes(path, data)
            paths[fmt] = path
    finally:
        if engine is not None:
            figure.set_layout_engine(engine)
    return paths


@contextmanager
def style() -> Iterator[None]:
    """The annlens rc settings, for figures a user builds by hand."""
    with matplotlib.rc_context(RC):
        yield
