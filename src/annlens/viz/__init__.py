"""Figures and the HTML report: what the statistics tables show, by question.

Figure functions take pandas DataFrames (the tables of
:mod:`annlens.viz.tables`) and return :class:`matplotlib.figure.Figure`
objects, built without ``pyplot`` so that nothing needs a display;
:func:`save_figure` writes PNG and SVG. :func:`build_report` writes one
self-contained ``report.html``.

=====================================  =====================================
question                               figures
=====================================  =====================================
Is the signal flowing?                 :func:`plot_gradient_flow`,
                                       :func:`plot_flow_comparison`,
                                       :func:`plot_gradient_norms`,
                                       :func:`plot_spectra`,
                                       :func:`plot_histograms` (gradients)
Are units alive?                       :func:`plot_unit_health`,
                                       :func:`plot_activation_bands`
Is the step size right?                :func:`plot_update_ratios`,
                                       :func:`plot_step_loss`
Did it learn?                          :func:`plot_curves`,
                                       :func:`plot_histograms` (weights),
                                       :func:`plot_decision_boundary`
any statistic, variants overlaid       :func:`plot_variant_comparison`
=====================================  =====================================
"""

from annlens.viz.boundary import plot_decision_boundary
from annlens.viz.curves import plot_curves, plot_variant_comparison
from annlens.viz.distributions import plot_histograms
from annlens.viz.flow import (
    plot_flow_comparison,
    plot_gradient_flow,
    plot_gradient_norms,
)
from annlens.viz.gallery import QUESTIONS, ReportFigure, standard_figures
from annlens.viz.report import build_report
from annlens.viz.rundir import RunTables, load_run
from annlens.viz.spectra import plot_spectra
from annlens.viz.steps import plot_step_loss, plot_update_ratios
from annlens.viz.style import save_figure, variant_palette
from annlens.viz.tables import metrics_long
from annlens.viz.units import plot_activation_bands, plot_unit_health

__all__ = [
    "QUESTIONS",
    "ReportFigure",
    "RunTables",
    "build_report",
    "load_run",
    "metrics_long",
    "plot_activation_bands",
    "plot_curves",
    "plot_decision_boundary",
    "plot_flow_comparison",
    "plot_gradient_flow",
    "plot_gradient_norms",
    "plot_histograms",
    "plot_spectra",
    "plot_step_loss",
    "plot_unit_health",
    "plot_update_ratios",
    "plot_variant_comparison",
    "save_figure",
    "standard_figures",
    "variant_palette",
]
