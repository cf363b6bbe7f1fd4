"""The small-multiples layout several figures share: one panel per variant, one
line per layer coloured by depth, against the optimizer step.

Each panel's title is written in its variant's colour, so the variant colours
stay the same as in the figures that overlay variants. The layer legend sits
outside the panels, on the right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from annlens.viz.style import (
    auto_window,
    depth_colors,
    grid_shape,
    headline,
    label_grid,
    legend_line,
    log_y,
    new_figure,
    note,
    palette_for,
    smooth,
    variant_label,
)
from annlens.viz.tables import layer_order, series, variants_of


def layer_lines_by_variant(
    table: pd.DataFrame,
    *,
    layers: Sequence[str] | None,
    palette: Mapping[str, str] | None,
    ylabel: str,
    title: str,
    log: bool,
    styles: Mapping[str, str] | None = None,
    quantity_names: Mapping[str, str] | None = None,
) -> Figure:
    """One panel per variant; in each, one line per layer (and per quantity).

    Parameters
    ----------
    table : DataFrame
        Rows of the statistics long table, already selected.
    layers : sequence of str, optional
        Layers to draw, input to output (callers order them by the whole
        table with :func:`annlens.viz.tables.ordered_layers`); default the
        order :func:`annlens.viz.tables.layer_order` finds in ``table``.
    palette : mapping of str to str, optional
        Colour per variant, used for the panel titles.
    ylabel, title : str
    log : bool
        Log y axis.
    styles : mapping of str to str, optional
        Line style per quantity, used in panels that hold several quantities
        (``{"dead_fraction": "-", "saturated_fraction": "--"}``).
    quantity_names : mapping of str to str, optional
        Short names per quantity, for panel titles and the legend, when
        ``table`` holds several quantities.

    Notes
    -----
    Series longer than 150 records are smoothed by a centred moving mean over
    about 1/60 of their length, so that eight layers stay tellable apart; the
    y label says so.
    """
    names = list(layers) if layers is not None else layer_order(table)
    variants = variants_of(table)
    colours = palette_for(variants, palette)
    line_colours = dict(zip(names, depth_colors(len(names)), strict=True))
    quantities = list(dict.fromkeys(table["quantity"]))
    styles = styles or {}

    rows, columns = grid_shape(len(variants))
    figure, axes = new_figure(
        rows, columns, row_height=3.4 if columns > 1 else 4.0, sharex=True, sharey=True
    )
    smoothed = False
    mixed_any = False
    short = quantity_names or {}
    for ax, variant in zip(axes.flat, variants, strict=False):
        part = table.loc[table["variant"] == variant]
        present = [q for q in quantities if q in set(part["quantity"])]
        mixed = len(present) > 1
        mixed_any |= mixed
        for layer in names:
            for quantity in present:
                rows_ = part.loc[
                    (part["layer"] == layer) & (part["quantity"] == quantity)
                ]
                if rows_.empty:
                    continue
                steps, values = series(rows_)
                window = auto_window(values.size)
                smoothed |= window > 1
                ax.plot(
                    steps,
                    smooth(values, window),
                    color=line_colours[layer],
                    linestyle=styles.get(quantity, "-") if mixed else "-",
                    # a line through one point draws nothing: mark it
                    marker="o" if values.size == 1 else "",
                    markersize=4,
                )
        if not ax.lines:
            note(ax, "not recorded for this variant")
        heading = variant_label(variant)
        if len(quantities) > 1 and present:
            heading += ": " + " and ".join(short.get(q, q) for q in present)
        ax.set_title(heading, color=colours[variant])
        if log and ax.lines:
            log_y(ax)
    label = ylabel + (" (log scale)" if log else "")
    if smoothed:
        label += ", moving mean"
    label_grid(axes, len(variants), "optimizer step", label)

    handles = [Line2D([], [], color=line_colours[n], label=n) for n in names]
    if mixed_any:
        handles += [
            legend_line(short.get(q, q), linestyle=styles.get(q, "-"))
            for q in quantities
        ]
    figure.legend(
        handles=handles, loc="outside right upper", title="layer (input → output)"
    )
    headline(figure, title)
    return figure
