"""Is the signal flowing? Gradient norms per layer, and the gradient-flow chart.

- :func:`plot_gradient_norms`: the norm of each layer's weight gradient
  ``||grads["W"]||_2`` against the step, log scale, one panel per variant.
- :func:`plot_gradient_flow`: the back-propagated signal by depth. For each
  layer, the mean absolute ``delta = dL/dz`` (the gradient at the layer's
  pre-activation, which backward multiplies by ``W^T`` to send on), at a few
  chosen steps. A signal that vanishes shows as a line falling from the output
  (right) towards the input (left); an exploding one rises.
- :func:`plot_flow_comparison`: the same profile, one line per variant, at one
  step, so variants can be compared on one axis.

Notes
-----
``delta`` is used rather than the weight gradient because it is the signal the
chain rule carries from layer to layer; ``grads["W"] = x^T delta`` also depends
on the size of the layer's input ``x``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from annlens.errors import DataError
from annlens.viz.panels import layer_lines_by_variant
from annlens.viz.style import (
    grid_shape,
    headline,
    label_grid,
    log_y,
    new_figure,
    note,
    palette_for,
    styled,
    time_colors,
    variant_label,
)
from annlens.viz.tables import (
    nearest_step,
    ordered_layers,
    pick_steps,
    positive_rows,
    select,
    stats_table,
    variants_of,
)

STAGE_SYMBOLS = {
    "delta": ("δ", "δ = ∂L/∂z"),
    "grad_output": ("∂L/∂a", "∂L/∂a"),
    "grad_input": ("∂L/∂x", "∂L/∂x"),
}


def symbol(stage: str) -> tuple[str, str]:
    """The short symbol of a stage and its definition: ``("δ", "δ = ∂L/∂z")``."""
    if stage.startswith("gradient:"):
        name = f"∂L/∂{stage.split(':', 1)[1]}"
        return name, name
    return STAGE_SYMBOLS.get(stage, (stage, stage))


def quantity_label(quantity: str, short: str) -> str:
    """``"mean |δ|"`` for ``("mean_abs", "δ")``, ``"‖∂L/∂W‖₂"`` for ``l2``."""
    forms = {"mean_abs": "mean |{}|", "l2": "‖{}‖₂", "rms": "rms of {}"}
    return forms.get(quantity, quantity + " of {}").format(short)


def _profile(
    ax: Axes,
    table: pd.DataFrame,
    layers: list[str],
    step: int,
    colour: object,
    label: str,
) -> None:
    """Draw one quantity against depth at ``step`` on ``ax``."""
    at = table.loc[table["step"] == step].groupby("layer")["value"].mean()
    positions = [i for i, layer in enumerate(layers) if layer in at.index]
    values = [at[layers[i]] for i in positions]
    ax.plot(positions, values, color=colour, marker="o", markersize=4, label=label)


def _depth_axis(ax: Axes, layers: list[str]) -> None:
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels(
        layers,
        rotation=45 if len(layers) > 5 else 0,
        ha="right" if len(layers) > 5 else "center",
    )
    ax.set_xlim(-0.4, len(layers) - 0.6)


@styled
def plot_gradient_norms(
    stats: pd.DataFrame,
    *,
    stage: str = "gradient:W",
    quantity: str = "l2",
    layers: Sequence[str] | None = None,
    palette: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Figure:
    """The norm of each layer's gradient against the step, on a log axis.

    Parameters
    ----------
    stats : DataFrame
        The statistics long table.
    stage : str
        ``"gradient:W"`` (the weight gradient) by default; ``"delta"`` or
        ``"grad_output"`` also work.
    quantity : str
        ``"l2"`` (Frobenius norm) by default, or ``"rms"``, ``"mean_abs"``.
    layers, palette, title
        See :func:`annlens.viz.panels.layer_lines_by_variant`.
    """
    table = select(stats_table(stats), stage=stage, quantity=quantity)
    if table.empty:
        raise DataError(f"no rows with stage {stage!r} and quantity {quantity!r}")
    table = positive_rows(table, stage, quantity)
    label = quantity_label(quantity, symbol(stage)[0])
    return layer_lines_by_variant(
        table,
        layers=ordered_layers(stats, table, layers),
        palette=palette,
        ylabel=label,
        title=title or f"Gradient norm per layer: {label}",
        log=True,
    )


@styled
def plot_gradient_flow(
    stats: pd.DataFrame,
    *,
    steps: Sequence[int] | None = None,
    stage: str = "delta",
    quantity: str = "mean_abs",
    layers: Sequence[str] | None = None,
    palette: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Figure:
    """Mean |delta| per layer, input to output, at chosen steps; a panel per variant.

    Parameters
    ----------
    stats : DataFrame
        The statistics long table.
    steps : sequence of int, optional
        Steps to draw (each snapped to the nearest recorded step); by default
        four, log-spaced from the first to the last.
    stage : str
        ``"delta"`` (dL/dz, the back-propagated signal) by default.
    quantity : str
        ``"mean_abs"`` by default.
    layers : sequence of str, optional
        Layers in order, input to output.
    palette : mapping of str to str, optional
        Colour per variant, used for the panel titles.

    Returns
    -------
    Figure
        y: the quantity on a log axis; x: layers by depth; one line per step,
        dark (early) to bright (late).
    """
    table = select(stats_table(stats), stage=stage, quantity=quantity)
    if table.empty:
        raise DataError(f"no rows with stage {stage!r} and quantity {quantity!r}")
    table = positive_rows(table, stage, quantity)
    names = ordered_layers(stats, table, layers)
    variants = variants_of(table)
    colours = palette_for(variants, palette)
    short, definition = symbol(stage)

    rows, columns = grid_shape(len(variants))
    figure, axes = new_figure(rows, columns, row_height=3.6, sharey=True)
    for ax, variant in zip(axes.flat, variants, strict=False):
        part = table.loc[table["variant"] == variant]
        recorded = part["step"].unique()
        chosen = (
            sorted({nearest_step(recorded, s) for s in steps})
            if steps is not None
            else pick_steps(recorded)
        )
        for step, colour in zip(chosen, time_colors(len(chosen)), strict=True):
            _profile(ax, part, names, step, colour, f"step {step}")
        _depth_axis(ax, names)
        log_y(ax)
        ax.set_title(variant_label(variant), color=colours[variant])
        if ax.lines:
            ax.legend(loc="best", title="after step")
        else:
            note(ax, "not recorded")
    label_grid(
        axes,
        len(variants),
        "layer (input → output)",
        f"{quantity_label(quantity, short)} (log scale)",
    )
    headline(
        figure,
        title
        or f"Gradient flow: back-propagated signal {definition} by depth, "
        "at chosen steps",
    )
    return figure


@styled
def plot_flow_comparison(
    stats: pd.DataFrame,
    *,
    step: int | str = "last",
    stage: str = "delta",
    quantity: str = "mean_abs",
    layers: Sequence[str] | None = None,
    palette: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Figure:
    """Mean |delta| by depth at one step, one line per variant, on one axis.

    Parameters
    ----------
    step : int or {"first", "last"}
        The step to compare at, snapped per variant to its nearest recorded
        step; ``"last"`` takes each variant's last recorded step.
    stage, quantity, layers, palette, title
        As in :func:`plot_gradient_flow`.

    Notes
    -----
    A second panel shows the ratio of each layer's value to the last layer's,
    which removes the overall scale and leaves only the decay with depth.
    """
    table = select(stats_table(stats), stage=stage, quantity=quantity)
    if table.empty:
        raise DataError(f"no rows with stage {stage!r} and quantity {quantity!r}")
    table = positive_rows(table, stage, quantity)
    # Inf has no place on the ratio panel: leave it out of both
    table = table.loc[np.isfinite(table["value"].to_numpy(dtype=np.float64))]
    names = ordered_layers(stats, table, layers)
    variants = variants_of(table)
    colours = palette_for(variants, palette)
    short, definition = symbol(stage)
    label = quantity_label(quantity, short)

    figure, axes = new_figure(1, 2, row_height=4.2)
    absolute, relative = axes[0]
    steps_used = []
    for variant in variants:
        part = table.loc[table["variant"] == variant]
        at = nearest_step(part["step"].unique(), step)
        steps_used.append(at)
        name = variant_label(variant)
        _profile(absolute, part, names, at, colours[variant], name)
        profile = part.loc[part["step"] == at].groupby("layer")["value"].mean()
        present = [n for n in names if n in profile.index]
        if present:
            scaled = np.array([profile[n] for n in present]) / profile[present[-1]]
            relative.plot(
                [names.index(n) for n in present],
                scaled,
                color=colours[variant],
                marker="o",
                markersize=4,
                label=name,
            )
    for ax in (absolute, relative):
        _depth_axis(ax, names)
        log_y(ax)
        ax.set_xlabel("layer (input → output)")
    relative.axhline(1.0, color="#888888", linewidth=0.8, linestyle=":")
    absolute.set_title(label)
    absolute.set_ylabel(f"{label} (log scale)")
    relative.set_title("relative to the last layer")
    relative.set_ylabel("ratio to the last layer (log scale)")
    absolute.legend(title="variant")
    when = (
        f"step {steps_used[0]}"
        if len(set(steps_used)) == 1
        else f"each variant's {step} step"
        if isinstance(step, str)
        else "step ~" + str(step)
    )
    headline(figure, title or f"Back-propagated signal {definition} by depth at {when}")
    return figure
