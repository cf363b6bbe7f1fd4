"""The standard set of figures for a run, grouped by the question each answers.

:func:`standard_figures` turns whatever tables a run has into figures, each
tagged with one of the four report questions and a caption saying how to read
it. A figure whose table or quantities were not recorded is left out (logged
at INFO), so a run that collected little still gets a report; a figure that
fails for another reason is left out with a :class:`RuntimeWarning` naming it.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from annlens.errors import DataError
from annlens.viz.curves import plot_curves
from annlens.viz.distributions import plot_histograms
from annlens.viz.flow import (
    plot_flow_comparison,
    plot_gradient_flow,
    plot_gradient_norms,
)
from annlens.viz.spectra import plot_spectra
from annlens.viz.steps import plot_step_loss, plot_update_ratios
from annlens.viz.units import plot_activation_bands, plot_unit_health

logger = logging.getLogger("annlens")

SIGNAL = "Is the signal flowing?"
UNITS = "Are units alive?"
STEP_SIZE = "Is the step size right?"
LEARNED = "Did it learn?"
QUESTIONS: tuple[str, ...] = (SIGNAL, UNITS, STEP_SIZE, LEARNED)


@dataclass
class ReportFigure:
    """A figure in the report: the question it answers, a file name, a caption.

    Attributes
    ----------
    question : str
        One of :data:`QUESTIONS` (another string makes a section of its own,
        after the four).
    name : str
        A file-safe name, used for the saved PNG and SVG and the HTML anchor.
    figure : Figure
    caption : str
        How to read the figure, in a sentence or two.
    """

    question: str
    name: str
    figure: Figure
    caption: str = ""

    @property
    def title(self) -> str:
        """The figure's own title (its suptitle, else its first panel's)."""
        if self.figure.get_suptitle():
            return str(self.figure.get_suptitle())
        for ax in self.figure.axes:
            if ax.get_title():
                return str(ax.get_title())
        return self.name

    def __repr__(self) -> str:
        return f"ReportFigure({self.question!r}, {self.name!r})"


def slug(text: str) -> str:
    """A file-safe, anchor-safe name: lower case, ``a-z0-9`` and dashes."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned or "figure"


def variant_slugs(variants: Sequence[str]) -> dict[str, str]:
    """A distinct :func:`slug` per variant, in the order given.

    Names that slug alike (``v_1`` and ``v-1``, ``A`` and ``a``) would share
    a figure file and an anchor; each later one gets ``-2``, ``-3``, ...
    """
    slugs: dict[str, str] = {}
    for variant in dict.fromkeys(variants):
        base = slug(variant or "run")
        name, n = base, 2
        while name in slugs.values():
            name, n = f"{base}-{n}", n + 1
        slugs[variant] = name
    return slugs


CAPTIONS = {
    "gradient-flow": (
        "Mean |δ| per layer, where δ = ∂L/∂z is the gradient a layer passes "
        "back through its weights. A line that falls from right (output) to "
        "left (input) is a vanishing signal; one that rises is exploding. "
        "Flat is healthy."
    ),
    "flow-comparison": (
        "The same profile for every variant at its last recorded step. The "
        "right panel divides by the last layer's value: how many times smaller "
        "the signal arriving at each layer is."
    ),
    "gradient-norms": (
        "‖∂L/∂W‖₂ of each layer's weights over training, log scale. Lines that "
        "sit decades apart mean the early layers learn far slower than the late "
        "ones."
    ),
    "spectra": (
        "Singular values of each weight matrix by rank, dashed at the first "
        "recorded step, solid at the last. The largest bounds how much a layer "
        "can amplify a signal; a steep fall means few directions are used."
    ),
    "unit-health": (
        "Fraction of units that output zero for a whole batch (dead, ReLU "
        "family) or sit in the flat tails of their nonlinearity (saturated, "
        "sigmoid and tanh). Neither kind passes a gradient back."
    ),
    "activations": (
        "Each layer's activations over training: light band 5–95 %, dark band "
        "25–75 %, line the median. Bands pinned to the ends of the range mean "
        "saturation; a band collapsing to zero means dying units."
    ),
    "update-ratios": (
        "‖ΔW‖ / ‖W‖ for each layer at each step. Around 1e-3 (dashed) is the "
        "usual healthy range for SGD; far below, the layer barely moves; far "
        "above, the step size is likely too large."
    ),
    "step-loss": (
        "The batch loss at every recorded step (in long runs drawn faint, with "
        "a moving mean on top). Oscillation or a rise points to a step size "
        "that is too large."
    ),
    "curves": (
        "Loss and metrics per epoch: solid for training, dashed for "
        "validation. A widening gap is overfitting; flat lines, no learning."
    ),
    "weights": (
        "Weight histograms at chosen steps (as densities). Little change from "
        "the first step means the layer barely learned."
    ),
    "gradients": (
        "Histograms of the weight gradients ∂L/∂W at chosen steps, as densities "
        "on a log axis so that the tails show. A spike at zero with nothing "
        "around it is a layer that receives no signal; tails that widen over "
        "training are gradients that grow."
    ),
}


def standard_figures(
    *,
    stats: pd.DataFrame | None = None,
    metrics: pd.DataFrame | None = None,
    histograms: pd.DataFrame | None = None,
    spectra: pd.DataFrame | None = None,
    palette: Mapping[str, str] | None = None,
    layers: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
) -> list[ReportFigure]:
    """Every standard figure the given tables allow, in report order.

    Parameters
    ----------
    stats, metrics, histograms, spectra : DataFrame, optional
        The tables of :mod:`annlens.viz.tables`; any may be missing.
    palette : mapping of str to str, optional
        Colour per variant, shared by every figure.
    layers : sequence of str, optional
        Layers in forward order (default: found in ``stats``).
    variants : sequence of str, optional
        Variants to draw the per-variant figures for (default: all in the
        tables).

    Returns
    -------
    list of ReportFigure
    """
    entries: list[ReportFigure] = []

    def attempt(
        question: str, name: str, build: Callable[[], Figure], caption_key: str
    ) -> None:
        try:
            figure = build()
        except DataError as error:
            logger.info("report: no %s figure (%s)", name, error)
            return
        except Exception as error:  # one broken figure must not cost the report
            warnings.warn(
                f"the {name!r} figure could not be drawn and is left out of the "
                f"report: {type(error).__name__}: {error}",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        entries.append(ReportFigure(question, name, figure, CAPTIONS[caption_key]))

    def per_variant(table: pd.DataFrame | None) -> list[str]:
        if table is None:
            return []
        found = list(dict.fromkeys(table.get("variant", pd.Series([""])).fillna("")))
        return [v for v in (variants or found) if v in found]

    names = variant_slugs([*per_variant(stats), *per_variant(histograms)])
    common: dict[str, Any] = {"palette": palette, "layers": layers}
    if stats is not None:
        attempt(
            SIGNAL,
            "gradient-flow",
            lambda: plot_gradient_flow(stats, **common),
            "gradient-flow",
        )
        if len(per_variant(stats)) > 1:
            attempt(
                SIGNAL,
                "flow-comparison",
                lambda: plot_flow_comparison(stats, **common),
                "flow-comparison",
            )
        attempt(
            SIGNAL,
            "gradient-norms",
            lambda: plot_gradient_norms(stats, **common),
            "gradient-norms",
        )
    if spectra is not None:
        attempt(SIGNAL, "spectra", lambda: plot_spectra(spectra, **common), "spectra")
    if histograms is not None:
        for variant in per_variant(histograms):
            attempt(
                SIGNAL,
                f"gradients-{names[variant]}",
                lambda v=variant: plot_histograms(  # type: ignore[misc]
                    histograms, stage="gradient:W", variant=v, layers=layers
                ),
                "gradients",
            )

    if stats is not None:
        attempt(
            UNITS,
            "unit-health",
            lambda: plot_unit_health(stats, **common),
            "unit-health",
        )
        for variant in per_variant(stats):
            attempt(
                UNITS,
                f"activations-{names[variant]}",
                lambda v=variant: plot_activation_bands(  # type: ignore[misc]
                    stats, variant=v, **common
                ),
                "activations",
            )

    if stats is not None:
        attempt(
            STEP_SIZE,
            "update-ratios",
            lambda: plot_update_ratios(stats, **common),
            "update-ratios",
        )
        attempt(
            STEP_SIZE,
            "step-loss",
            lambda: plot_step_loss(stats, palette=palette),
            "step-loss",
        )

    if metrics is not None:
        attempt(
            LEARNED, "curves", lambda: plot_curves(metrics, palette=palette), "curves"
        )
    if histograms is not None:
        for variant in per_variant(histograms):
            attempt(
                LEARNED,
                f"weights-{names[variant]}",
                lambda v=variant: plot_histograms(  # type: ignore[misc]
                    histograms, stage="param:W", variant=v, layers=layers
                ),
                "weights",
            )
    return entries
