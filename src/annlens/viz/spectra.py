"""Singular-value spectra of the weight matrices, from the spectra table.

:func:`plot_spectra` draws one panel per layer: the singular values of that
layer's ``W`` in decreasing order against their rank, on a log axis, one colour
per variant, dashed at the first recorded step and solid at the last. A
spectrum that falls steeply means the layer maps its input onto a few
directions (a low effective rank); the largest singular value is the most the
layer can stretch a signal, and so bounds how much it can amplify a gradient
passing back through it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from annlens.errors import DataError
from annlens.viz.style import (
    grid_shape,
    headline,
    label_grid,
    legend_line,
    log_y,
    new_figure,
    palette_for,
    styled,
    variant_label,
)
from annlens.viz.tables import (
    MAX_PANELS,
    SPECTRA_COLUMNS,
    nearest_step,
    ordered_layers,
    require,
    variants_of,
)


@styled
def plot_spectra(
    spectra: pd.DataFrame,
    *,
    param: str = "W",
    steps: Sequence[int | str] = ("first", "last"),
    layers: Sequence[str] | None = None,
    palette: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Figure:
    """Singular values of each layer's weights by rank, variants overlaid.

    Parameters
    ----------
    spectra : DataFrame
        ``step, epoch, variant, layer, param, index, value``; ``index`` counts
        singular values from the largest (0).
    param : str
        The parameter whose spectra to draw (``"W"``).
    steps : sequence of int or {"first", "last"}
        Steps to draw per variant, snapped to recorded ones; the first is
        dashed and thin, the last solid, any in between dotted.
    layers : sequence of str, optional
        Layers to draw, input to output (default: every layer, or 12 evenly
        spaced from the first to the last when there are more).
    palette : mapping of str to str, optional
        Colour per variant.
    """
    table = require(spectra, SPECTRA_COLUMNS, "spectra")
    table = table.assign(variant=table["variant"].fillna("").astype(str))
    table = table.loc[table["param"] == param]
    if table.empty:
        raise DataError(f"no singular-value spectra recorded for parameter {param!r}")
    table = table.loc[table["value"] > 0]
    variants = variants_of(table)
    colours = palette_for(variants, palette)
    names = ordered_layers(
        spectra.assign(stage="param:"), table, layers, most=MAX_PANELS
    )
    wanted = list(steps)

    rows, columns = grid_shape(len(names))
    figure, axes = new_figure(rows, columns, row_height=2.8, sharex=True)
    styles = {0: "--", len(wanted) - 1: "-"}
    used_steps: dict[int, set[int]] = {i: set() for i in range(len(wanted))}
    for ax, layer in zip(axes.flat, names, strict=False):
        part = table.loc[table["layer"] == layer]
        for variant in variants:
            own = part.loc[part["variant"] == variant]
            if own.empty:
                continue
            recorded = own["step"].unique()
            for i, step in enumerate(wanted):
                at_step = nearest_step(recorded, step)
                used_steps[i].add(at_step)
                at = own.loc[own["step"] == at_step].sort_values("index")
                ax.plot(
                    at["index"].to_numpy() + 1,
                    at["value"].to_numpy(dtype=float),
                    color=colours[variant],
                    linestyle=styles.get(i, ":"),
                    linewidth=1.0 if i == 0 and len(wanted) > 1 else 1.6,
                )
        log_y(ax)
        ax.set_title(layer)
    label_grid(axes, len(names), "rank (1 = largest)", "singular value (log scale)")

    handles = [
        Line2D([], [], color=colours[v], label=variant_label(v)) for v in variants
    ]
    for i, step in enumerate(wanted):
        steps_here = sorted(used_steps[i])
        where = (
            f"step {steps_here[0]}"
            if len(steps_here) == 1
            else f"{step} step"
            if isinstance(step, str)
            else f"step ~{step}"
        )
        handles.append(legend_line(where, linestyle=styles.get(i, ":")))
    figure.legend(handles=handles, loc="outside right upper", title="variant, step")
    headline(figure, title or f"Singular values of {param} per layer")
    return figure
