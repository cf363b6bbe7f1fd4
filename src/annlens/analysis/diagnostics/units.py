"""Rules on unit health: dead ReLU units and saturated sigmoid or tanh units.

Each rule makes one finding per definition, naming every layer where the
condition held, with the per-layer values as evidence.

References
----------
Glorot, X. & Bengio, Y. (2010). Understanding the difficulty of training deep
feedforward neural networks. AISTATS. (Saturation of sigmoid hidden layers.)

Lu, L., Shin, Y., Su, Y. & Karniadakis, G. E. (2020). Dying ReLU and
initialization: theory and numerical examples. Communications in
Computational Physics 28(5).
"""

from __future__ import annotations

import pandas as pd

from annlens.analysis.diagnostics.base import Rule
from annlens.analysis.diagnostics.findings import Finding
from annlens.analysis.diagnostics.settings import DiagnosticSettings
from annlens.analysis.diagnostics.view import StatsView, finite_median, persistent


class DeadUnits(Rule):
    """Too many ReLU units output zero, for whole batches or a whole epoch."""

    name = "dead_units"
    source = (
        "Lu et al. (2020), Dying ReLU and initialization; practice: the share "
        "of ReLU units that never activate"
    )
    suggestion = (
        "Lower the learning rate, use He initialisation with biases at zero (or "
        "slightly positive), or switch to Leaky ReLU or ELU, whose units can "
        "recover."
    )

    def check(self, view: StatsView, settings: DiagnosticSettings) -> list[Finding]:
        findings = []
        batch = view.table("post_activation", "dead_fraction")
        chosen, spans, values = _persistently_above(
            batch, settings.dead_batch, settings.persistence
        )
        if chosen:
            measured = max(values.values())
            findings.append(
                self.finding(
                    view,
                    severity="critical" if measured >= 0.9 else "warning",
                    layers=tuple(chosen),
                    step_range=(min(s for s, _ in spans), max(e for _, e in spans)),
                    measured=measured,
                    threshold=settings.dead_batch,
                    definition=(
                        "dead for the batch: share of a layer's units with z <= 0 "
                        "for every sample of the batch (dead_fraction), median over "
                        "the recorded steps where it exceeded the threshold (at "
                        "least half of them), largest over the layers named"
                    ),
                    message=(
                        f"{_listing(values)} of the units output zero for whole "
                        f"batches (median), above {settings.dead_batch:g}."
                    ),
                    evidence={"median_dead_fraction": values},
                )
            )

        epoch = view.table("post_activation", "dead_epoch_fraction")
        chosen, steps, values = [], [], {}
        for layer in epoch.columns:
            series = epoch[layer].dropna()
            over = series[series > settings.dead_epoch]
            if len(over):
                chosen.append(str(layer))
                steps += [int(over.index[0]), int(over.index[-1])]
                values[str(layer)] = float(over.iloc[-1])
        if chosen:
            measured = max(values.values())
            findings.append(
                self.finding(
                    view,
                    severity="critical" if measured >= 0.9 else "warning",
                    layers=tuple(chosen),
                    step_range=(min(steps), max(steps)),
                    measured=measured,
                    threshold=settings.dead_epoch,
                    definition=(
                        "dead for the epoch: share of a layer's units with z <= 0 "
                        "for every sample of every batch of an epoch "
                        "(dead_epoch_fraction), last epoch above the threshold"
                    ),
                    message=(
                        f"{_listing(values)} of the units never activated during "
                        f"an epoch, above {settings.dead_epoch:g}."
                    ),
                    evidence={"dead_epoch_fraction": values},
                )
            )
        return findings


class SaturatedUnits(Rule):
    """Too many sigmoid or tanh entries sit where the activation is flat."""

    name = "saturated_units"
    source = (
        "Glorot & Bengio (2010), Understanding the difficulty of training deep "
        "feedforward neural networks (saturation of sigmoid layers)"
    )
    suggestion = (
        "Standardise the inputs, initialise with Glorot's scale, add batch "
        "normalisation before the nonlinearity, or use tanh or a ReLU-family "
        "activation instead of sigmoid in hidden layers."
    )

    def check(self, view: StatsView, settings: DiagnosticSettings) -> list[Finding]:
        table = view.table("pre_activation", "saturated_fraction")
        chosen, spans, values = _persistently_above(
            table, settings.saturated, settings.persistence
        )
        if not chosen:
            return []
        measured = max(values.values())
        return [
            self.finding(
                view,
                severity="critical" if measured >= 0.9 else "warning",
                layers=tuple(chosen),
                step_range=(min(s for s, _ in spans), max(e for _, e in spans)),
                measured=measured,
                threshold=settings.saturated,
                definition=(
                    "share of a layer's z entries (samples x units) where the "
                    "activation's slope is under the Saturation collector's "
                    "fraction of its peak (2% by default: |z| >= 2.64 for tanh, "
                    "5.29 for sigmoid; saturated_fraction), median over the "
                    "recorded steps where it exceeded the threshold (at least "
                    "half of them), largest over the layers named"
                ),
                message=(
                    f"{_listing(values)} of the pre-activations lie where the "
                    f"activation is flat (median), above {settings.saturated:g}; "
                    "little gradient passes through them."
                ),
                evidence={"median_saturated_fraction": values},
            )
        ]


def _persistently_above(
    table: pd.DataFrame, threshold: float, persistence: float
) -> tuple[list[str], list[tuple[int, int]], dict[str, float]]:
    """The layers whose fraction stays above ``threshold`` at enough steps.

    Parameters
    ----------
    table : DataFrame, (steps, layers)
        A per-layer fraction by step, as :meth:`StatsView.table` returns it.
    threshold : float
        The fraction a layer must exceed.
    persistence : float
        The share of recorded steps it must exceed it at (see
        :func:`~annlens.analysis.diagnostics.view.persistent`).

    Returns
    -------
    chosen, spans, values
        The layers named, the first and last step each exceeded the threshold,
        and each layer's median fraction over the steps where it exceeded the
        threshold (so the value reported is above the threshold it is held to).
    """
    chosen, spans, values = [], [], {}
    for layer in table.columns:
        series = table[layer].dropna()
        held, start, end, _ = persistent(series > threshold, persistence)
        if held:
            chosen.append(str(layer))
            spans.append((start, end))
            values[str(layer)] = finite_median(series[series > threshold])
    return chosen, spans, values


def _listing(values: dict[str, float]) -> str:
    """``"dense_0: 62%, dense_1: 80%"``."""
    return ", ".join(f"{layer}: {value:.0%}" for layer, value in values.items())
