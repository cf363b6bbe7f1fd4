"""The diagnostic rules by name, and :func:`diagnose`, which runs them.

``diagnose(recorder.to_dataframe())`` returns a list of
:class:`~annlens.analysis.diagnostics.findings.Finding`, most severe first.
Each rule's threshold is a field of
:class:`~annlens.analysis.diagnostics.settings.DiagnosticSettings`.

=======================  ====================================================
rule                     fires when
=======================  ====================================================
``vanishing_gradients``  delta's squared norm, first layer / last, < 1e-2
``exploding_gradients``  that ratio > 1e4, or the gradient norm grows 1e3-fold
                         or exceeds 1e3
``dead_units``           > 50% of ReLU units dead for whole batches, or > 25%
                         dead for a whole epoch
``saturated_units``      > 40% of sigmoid/tanh entries in the flat region
``update_ratio``         median ``||update|| / ||W||`` < 1e-5 or > 1e-1
``diverging_loss``       smoothed loss ends 10% above its start, or gives back
                         half of its progress
``flat_loss``            smoothed loss ends within 1% of its start, or (from
                         step 0) within three standard errors of its noise
``plateau``              a quarter of the run with < 1% fall, still above half
                         of the starting loss
``non_finite``           NaN or Inf in a statistic of the data
=======================  ====================================================

The gradient ratios across depth are critical beyond the square of their
threshold (below 1e-4, above 1e8), warnings short of it.

Once a statistic of the data turns NaN or Inf, what follows is the wreck of
the run, not its cause: every rule but ``non_finite`` reads only the steps
before the first such step, so that a run that blew up is not also told that
its weights barely move or its units are dead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from annlens.analysis.diagnostics.base import Rule
from annlens.analysis.diagnostics.findings import SEVERITIES, Finding
from annlens.analysis.diagnostics.gradients import (
    ExplodingGradients,
    VanishingGradients,
)
from annlens.analysis.diagnostics.settings import DiagnosticSettings
from annlens.analysis.diagnostics.training import (
    DATA_QUANTITIES,
    DivergingLoss,
    FlatLoss,
    NonFinite,
    Plateau,
    UpdateRatio,
)
from annlens.analysis.diagnostics.units import DeadUnits, SaturatedUnits
from annlens.analysis.diagnostics.view import (
    StatsView,
    check_frame,
    check_metrics,
    layer_order,
    train_loss,
)
from annlens.errors import ConfigError, UnknownNameError, unknown_name

#: Every rule by name, in the order findings are listed within a severity.
RULES: dict[str, type[Rule]] = {
    cls.name: cls
    for cls in (
        NonFinite,
        VanishingGradients,
        ExplodingGradients,
        DeadUnits,
        SaturatedUnits,
        UpdateRatio,
        DivergingLoss,
        FlatLoss,
        Plateau,
    )
}


def _resolve(rules: Sequence[str | Rule] | None) -> list[Rule]:
    if rules is None:
        return [cls() for cls in RULES.values()]
    chosen: list[Rule] = []
    for rule in rules:
        if isinstance(rule, Rule):
            chosen.append(rule)
        elif isinstance(rule, str) and rule in RULES:
            chosen.append(RULES[rule]())
        elif isinstance(rule, str):
            raise UnknownNameError(unknown_name("diagnostic rule", rule, list(RULES)))
        else:
            raise ConfigError(f"rules are names or Rule instances, got {rule!r}")
    return chosen


def diagnose(
    frame: Any,
    metrics: Any = None,
    *,
    rules: Sequence[str | Rule] | None = None,
    settings: DiagnosticSettings | None = None,
    **overrides: Any,
) -> list[Finding]:
    """Run the diagnostic rules on a statistics table.

    Parameters
    ----------
    frame : DataFrame
        The statistics table (``Recorder.to_dataframe()``, or several
        variants concatenated).
    metrics : DataFrame or History, optional
        The per-epoch metrics history, wide (``epoch``, ``train_loss``, ...,
        ``variant``) or long (``variant, epoch, split, metric, value``), or
        the History that ``Trainer.fit`` returns; any other table is refused
        with a ``DataError`` naming its columns. The
        loss rules read its training loss for a variant whose statistics hold
        no ``loss`` rows; their step ranges are then epochs.
    rules : sequence of str or Rule, optional
        Which rules (default: all of :data:`RULES`).
    settings : DiagnosticSettings, optional
        The thresholds (default: the documented defaults).
    **overrides
        Single thresholds to change, such as ``dead_batch=0.3``.

    Returns
    -------
    list of Finding
        Most severe first; within a severity, by variant then rule order.
    """
    frame = check_frame(frame)
    metrics = check_metrics(metrics)
    settings = (settings or DiagnosticSettings()).updated(**overrides)
    chosen = _resolve(rules)
    order = layer_order(frame)
    findings: list[Finding] = []
    for variant, rows in frame.groupby("variant", sort=False):
        loss = train_loss(metrics, str(variant))
        view = StatsView(rows, str(variant), order, loss)
        healthy = StatsView(_before_non_finite(rows), str(variant), order, loss)
        for rule in chosen:
            findings += rule.check(
                view if isinstance(rule, NonFinite) else healthy, settings
            )
    rank = {name: i for i, name in enumerate(RULES)}
    findings.sort(
        key=lambda f: (-SEVERITIES.index(f.severity), f.variant, rank.get(f.rule, 99))
    )
    return findings


def _before_non_finite(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the steps before a statistic of the data first went NaN or Inf."""
    data = rows[rows["quantity"].isin(DATA_QUANTITIES)]
    bad = ~np.isfinite(data["value"].to_numpy(dtype=np.float64))
    if not bad.any():
        return rows
    first = data["step"].to_numpy()[bad].min()
    return rows[rows["step"] < first]
