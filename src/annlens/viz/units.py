"""Are units alive? Activation distributions over time, dead and saturated units.

- :func:`plot_activation_bands`: for one variant, each layer's activation
  distribution against the step as quantile bands (q05 to q95, q25 to q75)
  around the median, one panel per layer, in the variant's colour.
- :func:`plot_unit_health`: the fraction of dead units (ReLU family) and of
  saturated units (sigmoid and tanh) against the step, one panel per variant.

Notes
-----
The quantiles come from the collectors' fixed-bin histograms, so they are
exact only to a bin width. ``dead_fraction`` counts units whose output is zero
for a whole batch; a unit that is zero for one batch may fire for the next, so
the line is noisier than ``dead_epoch_fraction`` (zero for a whole epoch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from annlens.errors import DataError
from annlens.viz.panels import layer_lines_by_variant
from annlens.viz.style import (
    grid_shape,
    headline,
    label_grid,
    new_figure,
    palette_for,
    styled,
    variant_label,
)
from annlens.viz.tables import (
    MAX_PANELS,
    one_variant,
    ordered_layers,
    select,
    stats_table,
    variants_of,
)

BANDS = (("q05", "q95", 0.18, "5–95 %"), ("q25", "q75", 0.38, "25–75 %"))
STAGE_NAMES = {
    "post_activation": "activation a",
    "pre_activation": "pre-activation z",
    "input": "layer input x",
}
HEALTH_STYLES = {"dead_fraction": "-", "saturated_fraction": "--"}
HEALTH_NAMES = {"dead_fraction": "dead", "saturated_fraction": "saturated"}


def shared_limits(
    wide: pd.DataFrame, layers: Sequence[str], outlier: float = 4.0
) -> dict[str, tuple[float, float]]:
    """One y range for the layers whose spread is typical, so they compare.

    A layer whose q05 to q95 spread exceeds ``outlier`` times the median
    spread (an output layer's logits beside sigmoid units, say) is left out,
    to keep its own scale rather than flatten the others.
    """
    spans = {}
    for layer in layers:
        if layer not in wide.index.get_level_values(0):
            continue
        part = wide.loc[layer]
        lows = part[[c for c in ("q05", "q25", "q50") if c in part]].to_numpy(float)
        highs = part[[c for c in ("q50", "q75", "q95") if c in part]].to_numpy(float)
        lows, highs = lows[np.isfinite(lows)], highs[np.isfinite(highs)]
        if lows.size == 0 or highs.size == 0:  # nothing finite: its own scale
            continue
        low, high = lows.min(), highs.max()
        spans[layer] = (float(low), float(high))
    if not spans:
        return {}
    median = float(np.median([high - low for low, high in spans.values()]))
    typical = {
        layer: (low, high)
        for layer, (low, high) in spans.items()
        if high - low <= outlier * max(median, 1e-12)
    }
    low = min(lo for lo, _ in typical.values())
    high = max(hi for _, hi in typical.values())
    margin = 0.05 * (high - low) if high > low else 0.5
    return {layer: (low - margin, high + margin) for layer in typical}


@styled
def plot_activation_bands(
    stats: pd.DataFrame,
    *,
    variant: str | None = None,
    stage: str = "post_activation",
    layers: Sequence[str] | None = None,
    palette: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Figure:
    """Quantile bands of a layer stage's values against the step, one panel per layer.

    Parameters
    ----------
    stats : DataFrame
        The statistics long table, with quantities ``q05, q25, q50, q75, q95``
        (any band whose quantiles are missing is left out).
    variant : str, optional
        The variant to draw; required when the table holds several.
    stage : str
        ``"post_activation"`` by default; ``"pre_activation"`` shows z.
    layers : sequence of str, optional
        Layers to draw, input to output (default: every layer, or 12 evenly
        spaced from the first to the last when there are more).
    palette : mapping of str to str, optional
        Colour per variant; the bands take the variant's colour.

    Notes
    -----
    Panels share one y range so that layers compare, except a layer whose
    spread is far wider than the others' (see :func:`shared_limits`), which
    keeps its own and says so in its title.
    """
    table = select(
        stats_table(stats), stage=stage, quantity=["q05", "q25", "q50", "q75", "q95"]
    )
    if table.empty:
        raise DataError(f"no quantiles (q05 ... q95) recorded for stage {stage!r}")
    variant = one_variant(table, variant, f"{stage!r} quantiles")
    colour = palette_for(variants_of(table), palette)[variant]
    table = table.loc[table["variant"] == variant]
    wide = table.pivot_table(
        index=["layer", "step"], columns="quantity", values="value", aggfunc="mean"
    )
    names = ordered_layers(stats, table, layers, most=MAX_PANELS)

    rows, columns = grid_shape(len(names))
    figure, axes = new_figure(rows, columns, row_height=2.7, sharex=True)
    limits = shared_limits(wide, names)
    for ax, layer in zip(axes.flat, names, strict=False):
        if layer not in wide.index.get_level_values(0):
            continue
        part = wide.loc[layer].sort_index()
        steps = part.index.to_numpy()
        for low, high, alpha, _ in BANDS:
            if low in part and high in part and steps.size == 1:
                # one recorded step: a band of no width would not show; a bar does
                bottom = part[low].to_numpy(dtype=float)
                ax.bar(
                    steps,
                    part[high].to_numpy(dtype=float) - bottom,
                    bottom=bottom,
                    width=1.0,
                    color=colour,
                    alpha=alpha,
                    linewidth=0,
                )
            elif low in part and high in part:
                ax.fill_between(
                    steps,
                    part[low].to_numpy(dtype=float),
                    part[high].to_numpy(dtype=float),
                    color=colour,
                    alpha=alpha,
                    linewidth=0,
                )
        if steps.size == 1:
            ax.set_xticks(steps)
        if "q50" in part:
            few = steps.size <= 12
            ax.plot(
                steps,
                part["q50"].to_numpy(dtype=float),
                color=colour,
                marker="o" if few else None,
                markersize=3,
            )
        if layer in limits:
            ax.set_ylim(*limits[layer])
            ax.set_title(layer)
        else:
            ax.set_title(f"{layer} (own scale)")
    name = STAGE_NAMES.get(stage, stage)
    label_grid(axes, len(names), "optimizer step", name)
    handles: list[Artist] = [
        Patch(color=colour, alpha=alpha, label=label) for _, _, alpha, label in BANDS
    ]
    handles.append(Line2D([], [], color=colour, label="median"))
    figure.legend(handles=handles, loc="outside right upper", title="quantiles")
    headline(
        figure,
        title or f"Distribution of the {name} over time: {variant_label(variant)}",
    )
    return figure


@styled
def plot_unit_health(
    stats: pd.DataFrame,
    *,
    quantities: Sequence[str] = ("dead_fraction", "saturated_fraction"),
    layers: Sequence[str] | None = None,
    palette: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Figure:
    """Dead and saturated fractions of units against the step, a panel per variant.

    Parameters
    ----------
    stats : DataFrame
        The statistics long table.
    quantities : sequence of str
        Fractions to draw, whatever stage they were recorded at. Each panel's
        title names the fractions it shows; a panel that shows both draws
        ``dead_fraction`` solid and ``saturated_fraction`` dashed.
    layers, palette, title
        See :func:`annlens.viz.panels.layer_lines_by_variant`.
    """
    table = select(stats_table(stats), quantity=list(quantities))
    if table.empty:
        raise DataError(f"none of the quantities {list(quantities)} was recorded")
    # One stage per (layer, quantity): the collectors record each fraction once;
    # if several stages carry it, the activation output wins.
    rank = table["stage"].map({"post_activation": 0, "pre_activation": 1}).fillna(2)
    best = rank.groupby([table["layer"], table["quantity"]]).transform("min")
    table = table.loc[(rank == best).to_numpy()]
    figure = layer_lines_by_variant(
        table,
        layers=ordered_layers(stats, table, layers),
        palette=palette,
        ylabel="fraction of units",
        title=title or "Dead and saturated units per layer",
        log=False,
        styles=HEALTH_STYLES,
        quantity_names=HEALTH_NAMES,
    )
    for ax in figure.axes:
        if ax.get_visible() and ax.lines:
            ax.set_ylim(-0.03, 1.03)
            ax.set_yticks(np.linspace(0, 1, 5))
            ax.set_yticklabels([f"{t:.0%}" for t in np.linspace(0, 1, 5)])
    return figure
