"""Decision boundaries of a classifier on two-dimensional data.

:func:`plot_decision_boundary` evaluates a ``predict`` callable on a grid that
covers the data, shades each point of the plane by the class it is given, draws
the boundaries between classes, and scatters the data on top. Given a mapping
of variant names to callables it draws one panel per variant, titled in the
variant's colour.

``predict`` receives an array of shape (m, 2) and may return

- class labels, shape (m,), integers;
- one score per class, shape (m, k) with k >= 2: the class is the arg max;
- one value per point for two classes, shape (m,) or (m, 1), floats: a
  probability of class 1 when every value lies in [0, 1] (threshold 0.5),
  otherwise a logit (threshold 0).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from annlens.errors import ConfigError, DataError, LabelError, ShapeError, check_count
from annlens.viz.style import (
    grid_shape,
    headline,
    label_grid,
    new_figure,
    palette_for,
    styled,
    variant_label,
)

Predict = Callable[[np.ndarray], np.ndarray]


def predicted_classes(output: np.ndarray, m: int) -> np.ndarray:
    """Class labels, shape (m,), from what a ``predict`` callable returned."""
    output = np.asarray(output)
    if output.ndim == 2 and output.shape[1] == 1:
        output = output[:, 0]
    if output.shape[0] != m or output.ndim not in (1, 2):
        raise ShapeError(
            f"predict on a grid of {m} points must return shape ({m},) or "
            f"({m}, k); got {output.shape}"
        )
    if output.ndim == 2:
        return output.argmax(axis=1)
    if np.issubdtype(output.dtype, np.integer) or np.issubdtype(output.dtype, np.bool_):
        return output.astype(np.int64)
    if np.all((output >= 0) & (output <= 1)):
        return (output >= 0.5).astype(np.int64)
    return (output >= 0).astype(np.int64)


@styled
def plot_decision_boundary(
    predict: Predict | Mapping[str, Predict],
    x: np.ndarray,
    y: np.ndarray,
    *,
    resolution: int = 200,
    padding: float = 0.1,
    class_names: Sequence[str] | None = None,
    feature_names: Sequence[str] = ("x₁", "x₂"),
    palette: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Figure:
    """Shade the plane by predicted class and scatter the data on top.

    Parameters
    ----------
    predict : callable or mapping of str to callable
        Maps points, shape (m, 2), to predictions (see the module docstring);
        a mapping gives one panel per variant.
    x : ndarray, shape (n, 2)
        The data points.
    y : ndarray, shape (n,)
        Their integer class labels.
    resolution : int
        Grid points along each axis.
    padding : float
        Margin around the data, as a fraction of its range.
    class_names : sequence of str, optional
        Legend names of the classes (default ``class 0``, ``class 1``, ...).
    feature_names : sequence of str
        Axis labels.
    palette : mapping of str to str, optional
        Colour per variant, for the panel titles.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ShapeError(f"decision boundaries need x of shape (n, 2); got {x.shape}")
    if y.shape != (x.shape[0],):
        raise ShapeError(f"y must have shape ({x.shape[0]},) to match x; got {y.shape}")
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        raise DataError(
            f"x holds NaN or Inf in {bad.size} rows (first at row {bad[0]}); the "
            "plane to shade is spanned by the data's range"
        )
    if y.dtype.kind not in "iub" and not (
        y.dtype.kind == "f" and np.array_equal(y, np.round(y)) and (y >= 0).all()
    ):
        raise LabelError(
            f"y holds class labels, integers >= 0; got dtype {y.dtype} with values "
            f"such as {y.ravel()[:3].tolist()}"
        )
    check_count("resolution", resolution, low=2, hint=" (grid points per axis)")
    models = dict(predict) if isinstance(predict, Mapping) else {"": predict}
    if not models:
        raise ConfigError(
            "plot_decision_boundary got an empty mapping of predict functions; "
            "help: give one predict function, or a mapping of name to predict"
        )
    for name, function in models.items():
        if not callable(function):
            raise ConfigError(
                f"plot_decision_boundary predict {name!r} must be callable "
                f"(such as model.forward), got {type(function).__name__}"
            )
    colours = palette_for(list(models), palette)

    low, high = x.min(axis=0), x.max(axis=0)
    margin = padding * np.maximum(high - low, 1e-12)
    u = np.linspace(low[0] - margin[0], high[0] + margin[0], resolution)
    v = np.linspace(low[1] - margin[1], high[1] + margin[1], resolution)
    uu, vv = np.meshgrid(u, v)
    grid = np.column_stack([uu.ravel(), vv.ravel()])
    labels = np.unique(y.astype(np.int64))
    k = int(max(labels.max(initial=0), 1)) + 1
    base = matplotlib.colormaps["tab10"]
    class_colours = [base(i % 10) for i in range(k)]
    regions = ListedColormap(class_colours)

    rows, columns = grid_shape(len(models))
    width = 10.0 if len(models) > 1 else 7.5
    figure, axes = new_figure(
        rows,
        columns,
        width=width,
        row_height=3.6 if len(models) > 1 else 5.0,
        sharex=True,
        sharey=True,
    )
    for ax, (variant, model) in zip(axes.flat, models.items(), strict=False):
        # A diverged model (huge weights) overflows on the grid; its classes
        # are still drawn, and the divergence is the run's finding to report,
        # not a warning of this figure.
        with np.errstate(over="ignore", invalid="ignore"):
            output = model(grid)
        classes = predicted_classes(output, grid.shape[0]).reshape(uu.shape)
        ax.pcolormesh(
            uu,
            vv,
            classes,
            cmap=regions,
            vmin=-0.5,
            vmax=k - 0.5,
            alpha=0.28,
            shading="auto",
            rasterized=True,
        )
        ax.contour(
            uu, vv, classes, levels=np.arange(k) + 0.5, colors="#222222", linewidths=1.0
        )
        ax.scatter(
            x[:, 0],
            x[:, 1],
            c=[class_colours[int(c)] for c in y],
            s=14,
            edgecolors="white",
            linewidths=0.4,
        )
        ax.set_aspect("auto")
        ax.grid(False)
        if variant:
            ax.set_title(variant_label(variant), color=colours[variant])
    label_grid(axes, len(models), feature_names[0], feature_names[1])

    names = list(class_names) if class_names else [f"class {c}" for c in range(k)]
    handles = [
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            color=class_colours[c],
            label=names[c] if c < len(names) else f"class {c}",
        )
        for c in labels
    ]
    handles.append(Line2D([], [], color="#222222", linewidth=1.0, label="boundary"))
    figure.legend(handles=handles, loc="outside right upper", title="true class")
    headline(figure, title or "Decision boundary: predicted class (shading) and data")
    return figure
