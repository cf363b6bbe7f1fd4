"""Automatic diagnoses from the statistics table: rules, thresholds, findings.

>>> findings = diagnose(recorder.to_dataframe())  # doctest: +SKIP
>>> for finding in findings:  # doctest: +SKIP
...     print(finding)
>>> findings_frame(findings)  # doctest: +SKIP

See :mod:`annlens.analysis.diagnostics.rules` for the rules and
:class:`DiagnosticSettings` for every threshold, its default and its reason.
"""

from annlens.analysis.diagnostics.base import Rule
from annlens.analysis.diagnostics.findings import (
    FINDING_COLUMNS,
    SEVERITIES,
    Finding,
    findings_frame,
)
from annlens.analysis.diagnostics.gradients import (
    ExplodingGradients,
    VanishingGradients,
)
from annlens.analysis.diagnostics.rules import RULES, diagnose
from annlens.analysis.diagnostics.settings import DiagnosticSettings
from annlens.analysis.diagnostics.training import (
    DivergingLoss,
    FlatLoss,
    NonFinite,
    Plateau,
    UpdateRatio,
)
from annlens.analysis.diagnostics.units import DeadUnits, SaturatedUnits

__all__ = [
    "FINDING_COLUMNS",
    "RULES",
    "SEVERITIES",
    "DeadUnits",
    "DiagnosticSettings",
    "DivergingLoss",
    "ExplodingGradients",
    "Finding",
    "FlatLoss",
    "NonFinite",
    "Plateau",
    "Rule",
    "SaturatedUnits",
    "UpdateRatio",
    "VanishingGradients",
    "diagnose",
    "findings_frame",
]
