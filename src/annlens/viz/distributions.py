"""Weight and gradient histograms at chosen steps, from the histogram table.

:func:`plot_histograms` draws, for one variant and one stage (``param:W`` for
the weights, ``gradient:W`` for their gradients, or any recorded stage), one
panel per layer with one outline per chosen step, dark (early) to bright
(late). Counts are divided by the total count and the bin width, so steps
whose histograms saw different numbers of values still compare (a density).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from annlens.errors import DataError
from annlens.viz.style import (
    grid_shape,
    headline,
    label_grid,
    log_y,
    new_figure,
    styled,
    time_colors,
    variant_label,
)
from annlens.viz.tables import (
    HISTOGRAM_COLUMNS,
    MAX_PANELS,
    nearest_step,
    one_variant,
    ordered_layers,
    pick_steps,
    require,
)

HEAVY_TAILED = ("gradient:", "update:", "delta", "grad_output", "grad_input")
PARAM_WORDS = {"W": "weight W", "b": "bias b", "gamma": "scale γ", "beta": "shift β"}


def stage_label(stage: str) -> str:
    """Words for a stage on an axis: ``param:W`` is 'weight W'."""
    kind, _, name = stage.partition(":")
    return {
        "param": PARAM_WORDS.get(name, f"parameter {name}"),
        "gradient": f"gradient ∂L/∂{name}",
        "update": f"update Δ{name}",
        "post_activation": "activation a",
        "pre_activation": "pre-activation z",
        "delta": "δ = ∂L/∂z",
        "grad_output": "∂L/∂a",
    }.get(kind, stage)


@styled
def plot_histograms(
    histograms: pd.DataFrame,
    *,
    stage: str = "param:W",
    variant: str | None = None,
    steps: Sequence[int] | None = None,
    layers: Sequence[str] | None = None,
    palette: Mapping[str, str] | None = None,
    log_density: bool | None = None,
    title: str | None = None,
) -> Figure:
    """Histograms of one stage at chosen steps, one panel per layer.

    Parameters
    ----------
    histograms : DataFrame
        ``step, epoch, variant, layer, stage, bin_lo, bin_hi, count``.
    stage : str
        ``"param:W"`` by default; ``"gradient:W"`` for the weight gradients.
    variant : str, optional
        The variant to draw; required when the table holds several.
    steps : sequence of int, optional
        Steps to draw, snapped to recorded ones; by default up to four,
        log-spaced from the first to the last.
    layers : sequence of str, optional
        Layers to draw, input to output (default: every layer, or 12 evenly
        spaced from the first to the last when there are more).
    palette : mapping of str to str, optional
        Accepted for a uniform signature; lines here are coloured by step.
    log_density : bool, optional
        A log y axis, which shows the tails; by default for the backward
        stages (gradients, updates, deltas), whose values pile up near zero.
    """
    table = require(histograms, HISTOGRAM_COLUMNS, "histogram")
    table = table.assign(variant=table["variant"].fillna("").astype(str))
    table = table.loc[table["stage"] == stage]
    if table.empty:
        raise DataError(f"no histograms recorded for stage {stage!r}")
    variant = one_variant(table, variant, f"{stage!r} histograms")
    table = table.loc[table["variant"] == variant]
    if log_density is None:
        log_density = stage.startswith(HEAVY_TAILED)
    recorded = table["step"].unique()
    chosen = (
        sorted({nearest_step(recorded, s) for s in steps})
        if steps is not None
        else pick_steps(recorded)
    )
    names = ordered_layers(histograms, table, layers, most=MAX_PANELS)
    colours = time_colors(len(chosen))

    rows, columns = grid_shape(len(names))
    figure, axes = new_figure(rows, columns, row_height=2.7)
    for ax, layer in zip(axes.flat, names, strict=False):
        part = table.loc[table["layer"] == layer]
        for step, colour in zip(chosen, colours, strict=True):
            at = part.loc[part["step"] == step].sort_values("bin_lo")
            finite = np.isfinite(at[["bin_lo", "bin_hi", "count"]].to_numpy(float))
            at = at.loc[finite.all(axis=1)]
            if at.empty:  # nothing, or a step whose values were not finite
                continue
            lo = at["bin_lo"].to_numpy(dtype=float)
            hi = at["bin_hi"].to_numpy(dtype=float)
            if np.all(hi <= lo):
                # every value equal (a dead layer's zero gradient): a point
                # mass has no finite density, so it is marked where it sits
                ax.axvline(lo[0], color=colour, linewidth=1.4, linestyle=":")
                ax.plot([], [], color=colour, linewidth=1.4, label=f"step {step}")
                continue
            count = at["count"].to_numpy(dtype=float)
            total = count.sum()
            density = count / (total * np.maximum(hi - lo, 1e-300)) if total else count
            if log_density:  # empty bins leave gaps rather than drop to zero
                density = np.where(density > 0, density, np.nan)
            edges = np.append(lo, hi[-1])
            ax.stairs(
                density,
                edges,
                baseline=None if log_density else 0.0,
                color=colour,
                linewidth=1.4,
                label=f"step {step}",
            )
        if log_density:
            log_y(ax)
        ax.set_title(layer)
        ax.tick_params(axis="x", labelsize=8.5)
    label_grid(
        axes,
        len(names),
        stage_label(stage),
        "density" + (" (log scale)" if log_density else ""),
    )
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", title="after step")
    headline(
        figure,
        title
        or f"Histograms of {stage_label(stage)} per layer: {variant_label(variant)}",
    )
    return figure
