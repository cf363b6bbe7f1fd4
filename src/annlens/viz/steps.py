"""Is the step size right? Update ratios and the loss step by step.

- :func:`plot_update_ratios`: ``||update|| / ||param||`` of each layer's
  weights against the step, log scale, one panel per variant, with the
  ``1e-3`` reference line.
- :func:`plot_step_loss`: the training loss at every recorded step, variants
  overlaid; oscillation or a rise shows a step that is too large.

Notes
-----
An update ratio near ``1e-3`` is a common rule of thumb for a healthy learning
rate with SGD-like optimizers (Karpathy's CS231n notes): far below, the layer
barely moves; far above, each step rewrites a noticeable part of the weights.
It is a reference, not a law: adaptive optimizers and the end of a schedule
sit lower by design.

References
----------
A. Karpathy, "CS231n: Neural networks part 3, babysitting the learning
process", Stanford, 2016.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from annlens.errors import DataError
from annlens.viz.curves import plot_variant_comparison
from annlens.viz.panels import layer_lines_by_variant
from annlens.viz.style import styled
from annlens.viz.tables import ordered_layers, positive_rows, select, stats_table

REFERENCE_RATIO = 1e-3


def power_of_ten(value: float) -> str:
    """``"1e-3"`` for 0.001; other numbers as ``:g`` writes them."""
    exponent = np.log10(value) if value > 0 else np.nan
    if np.isfinite(exponent) and exponent == round(exponent):
        return f"1e{int(round(exponent))}"
    return f"{value:g}"


@styled
def plot_update_ratios(
    stats: pd.DataFrame,
    *,
    stage: str = "update:W",
    reference: float = REFERENCE_RATIO,
    layers: Sequence[str] | None = None,
    palette: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Figure:
    """Each layer's update ratio ``||update|| / ||param||`` against the step.

    Parameters
    ----------
    stats : DataFrame
        The statistics long table, with quantity ``update_ratio``.
    stage : str
        ``"update:W"`` by default; ``"update:b"`` for the biases.
    reference : float
        Where to draw the dashed reference line (``1e-3``).
    layers, palette, title
        See :func:`annlens.viz.panels.layer_lines_by_variant`.
    """
    table = select(stats_table(stats), stage=stage, quantity="update_ratio")
    if table.empty:
        raise DataError(f"no update_ratio rows with stage {stage!r}")
    table = positive_rows(table, stage, "update_ratio")
    param = stage.split(":", 1)[1] if ":" in stage else stage
    figure = layer_lines_by_variant(
        table,
        layers=ordered_layers(stats, table, layers),
        palette=palette,
        ylabel=f"‖Δ{param}‖ / ‖{param}‖",
        title=title or f"Update ratio per layer, ‖Δ{param}‖ / ‖{param}‖",
        log=True,
    )
    for ax in figure.axes:
        if ax.get_visible() and ax.lines:
            ax.axhline(reference, color="#333333", linestyle="--", linewidth=1.2)
    reference_handle = Line2D(
        [],
        [],
        color="#333333",
        linestyle="--",
        label=f"{power_of_ten(reference)} reference",
    )
    legend = figure.legends[0]
    handles = [*legend.legend_handles, reference_handle]
    legend.remove()
    figure.legend(
        handles=handles, loc="outside right upper", title="layer (input → output)"
    )
    return figure


@styled
def plot_step_loss(
    stats: pd.DataFrame,
    *,
    palette: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Figure:
    """The training loss at every recorded step, variants overlaid.

    Reads rows with layer ``"model"``, stage ``"model"`` and quantity
    ``"loss"``. Long series are drawn faint as recorded with a moving mean on
    top (see :func:`annlens.viz.curves.plot_variant_comparison`).
    """
    return plot_variant_comparison(
        stats,
        "model",
        "loss",
        layers=["model"],
        palette=palette,
        title=title or "Training loss at each recorded step",
        ylabel="batch loss",
    )
