"""Did it learn? Loss and metric curves per variant, train against validation.

:func:`plot_curves` draws the metrics history (one panel per metric, one
colour per variant, solid with circles for training, dashed with squares
for validation, dotted with triangles for test, so that one-epoch points and
the test score are told apart too). :func:`plot_variant_comparison` overlays
the variants on any one statistic of the long table, one panel per layer,
against the optimizer step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from annlens.errors import DataError
from annlens.training.history import History
from annlens.viz.style import (
    auto_window,
    grid_shape,
    headline,
    hide_unused,
    label_grid,
    legend_line,
    log_y,
    new_figure,
    palette_for,
    smooth,
    styled,
    variant_label,
)
from annlens.viz.tables import (
    MAX_PANELS,
    metrics_long,
    ordered_layers,
    select,
    series,
    stats_table,
    variants_of,
)

SPLIT_STYLES = {"train": "-", "val": "--", "test": ":"}
#: A marker per split, so that single points (one epoch, the test score)
#: tell the splits apart where a line style cannot.
SPLIT_MARKERS = {"train": "o", "val": "s", "test": "^"}
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}
#: Metrics-history columns that are settings or parts of the loss, not results.
NOT_DRAWN = ("lr", "penalty")


def wants_log(values: np.ndarray) -> bool:
    """Whether positive values span more than 1.5 decades (then use a log axis)."""
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size < 2 or positive.size < values[np.isfinite(values)].size:
        return False
    return bool(np.log10(positive.max() / positive.min()) > 1.5)


def split_legend(
    figure: Figure,
    splits: Sequence[str],
    variants: Sequence[str],
    palette: Mapping[str, str],
) -> None:
    """One legend, outside the panels, naming the variants by colour and the
    splits by line style and marker."""
    handles = [
        Line2D([], [], color=palette[v], label=variant_label(v)) for v in variants
    ]
    handles += [
        legend_line(
            SPLIT_NAMES.get(s, s),
            linestyle=SPLIT_STYLES.get(s, "-."),
            marker=SPLIT_MARKERS.get(s, "D"),
            markersize=4,
        )
        for s in splits
    ]
    figure.legend(handles=handles, loc="outside right upper", title="variant, split")


@styled
def plot_curves(
    metrics: pd.DataFrame | History,
    *,
    metric_names: Sequence[str] | None = None,
    palette: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Figure:
    """Loss and metric curves per variant, training and validation.

    Parameters
    ----------
    metrics : DataFrame or History
        A metrics history, long (``variant, epoch, split, metric, value``) or
        wide (see :mod:`annlens.viz.tables`), or what ``Trainer.fit`` returns.
    metric_names : sequence of str, optional
        The metrics to draw, one panel each; by default every metric, loss
        first, except the bookkeeping columns of :data:`NOT_DRAWN` (``lr``,
        ``penalty``), which can be named here.
    palette : mapping of str to str, optional
        Colour per variant (see :func:`annlens.viz.style.variant_palette`).
    title : str, optional

    Returns
    -------
    Figure
        One panel per metric against the epoch, numbered from 1 as annlens
        shows epochs everywhere (a table's epoch 0 is epoch 1 on the axis).
        A panel whose values span more than 1.5 decades uses a log axis and
        says so in its label.
    """
    long = metrics_long(metrics)
    if long.empty:
        raise DataError("the metrics table has no rows to draw")
    names = (
        list(metric_names)
        if metric_names
        else sorted(
            (m for m in long["metric"].unique() if m not in NOT_DRAWN),
            key=lambda m: (m != "loss", m),
        )
    )
    if not names:
        raise DataError(
            f"the metrics table holds only {sorted(long['metric'].unique())}; "
            "name them in metric_names= to draw them"
        )
    variants = variants_of(long)
    colours = palette_for(variants, palette)
    splits = [s for s in ("train", "val", "test") if s in set(long["split"])]
    splits += sorted(set(long["split"]) - set(splits))

    rows, columns = grid_shape(len(names), max_columns=2)
    figure, axes = new_figure(rows, columns, row_height=3.8)
    for ax, name in zip(axes.flat, names, strict=False):
        part = long.loc[long["metric"] == name]
        if part.empty:
            raise DataError(
                f"metric {name!r} is not in the metrics table; it has "
                f"{sorted(long['metric'].unique())}"
            )
        finite = part.loc[np.isfinite(part["value"].to_numpy(dtype=float))]
        missing = [
            variant_label(v) for v in variants if v not in set(finite["variant"])
        ]
        for (variant, split), group in part.groupby(["variant", "split"], sort=False):
            epochs, values = series(group, x="epoch")
            ax.plot(
                epochs + 1,  # stored from 0, shown from 1: the first is epoch 1
                values,
                color=colours[variant],
                linestyle=SPLIT_STYLES.get(split, "-."),
                marker=SPLIT_MARKERS.get(split, "D") if epochs.size <= 30 else None,
                markersize=3,
            )
        if missing:
            # a variant with no finite value here (a NaN loss, which the
            # metrics table cannot tell from a missing one) draws nothing: say so
            ax.text(
                0.02,
                0.02,
                f"no finite values (NaN, Inf or not recorded): {', '.join(missing)}",
                transform=ax.transAxes,
                ha="left",
                va="bottom",
                color="#777777",
                fontsize="small",
            )
        log = wants_log(part["value"].to_numpy(dtype=float))
        if log:
            log_y(ax)
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        shown = np.unique(part["epoch"].to_numpy(dtype=float)) + 1
        if shown.size == 1:
            # one epoch: without this the axis ticks fractions of an epoch
            ax.set_xlim(shown[0] - 0.5, shown[0] + 0.5)
            ax.set_xticks(shown)
        ax.set_ylabel(name.replace("_", " ") + (" (log scale)" if log else ""))
    hide_unused(axes, len(names))
    split_legend(figure, splits, variants, colours)
    headline(
        figure, title or "Learning curves: training (solid) and validation (dashed)"
    )
    return figure


@styled
def plot_variant_comparison(
    stats: pd.DataFrame,
    stage: str,
    quantity: str,
    *,
    layers: Sequence[str] | None = None,
    palette: Mapping[str, str] | None = None,
    log: bool | None = None,
    title: str | None = None,
    ylabel: str | None = None,
) -> Figure:
    """Variants overlaid on one statistic against the step, one panel per layer.

    Parameters
    ----------
    stats : DataFrame
        The statistics long table.
    stage, quantity : str
        The statistic, such as ``("delta", "mean_abs")`` or ``("model", "loss")``.
    layers : sequence of str, optional
        The layers to draw, one panel each (default: every layer with the
        statistic, input to output, or 12 evenly spaced from the first to the
        last when there are more; ``["model"]`` for whole-model quantities).
    palette : mapping of str to str, optional
    log : bool, optional
        Log y axis; by default when the values span more than 1.5 decades.

    Notes
    -----
    Series longer than 150 records are drawn faint as recorded, with a centred
    moving mean over about 1/60 of their length drawn on top.
    """
    table = select(stats_table(stats), stage=stage, quantity=quantity)
    if table.empty:
        raise DataError(f"no rows with stage {stage!r} and quantity {quantity!r}")
    names = ordered_layers(stats, table, layers, most=MAX_PANELS) or ["model"]
    variants = variants_of(table)
    colours = palette_for(variants, palette)
    values = table["value"].to_numpy(dtype=float)
    log = wants_log(values) if log is None else log
    label = ylabel or f"{quantity} of {stage}"

    rows, columns = grid_shape(len(names))
    figure, axes = new_figure(
        rows,
        columns,
        row_height=3.0 if len(names) > 1 else 4.0,
        sharex=True,
        sharey=True,
    )
    for ax, layer in zip(axes.flat, names, strict=False):
        for variant in variants:
            part = table.loc[(table["layer"] == layer) & (table["variant"] == variant)]
            if part.empty:
                continue
            steps, ys = series(part)
            window = auto_window(ys.size)
            colour = colours[variant]
            if window > 1:
                ax.plot(steps, ys, color=colour, alpha=0.25, linewidth=0.8)
            ax.plot(
                steps, smooth(ys, window), color=colour, label=variant_label(variant)
            )
        if layer != "model":
            ax.set_title(layer)
        if log:
            log_y(ax)
    label_grid(axes, len(names), "optimizer step", label + (" (log)" if log else ""))
    axes.flat[0].legend(title="variant")
    headline(figure, title or f"{label} by variant")
    return figure
