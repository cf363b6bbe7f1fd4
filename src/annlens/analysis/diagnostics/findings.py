"""Findings: what a diagnostic rule reports, with the evidence behind it.

A :class:`Finding` names the rule, its severity, the variant, the layers and
the step range it concerns, the measured value against the threshold, the
definition that was measured, a message, a suggestion and the source of the
rule. :func:`findings_frame` turns a list of findings into a table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: Severities, mildest first.
SEVERITIES = ("info", "warning", "critical")

FINDING_COLUMNS = (
    "rule",
    "severity",
    "variant",
    "layers",
    "step_start",
    "step_end",
    "measured",
    "threshold",
    "definition",
    "message",
    "suggestion",
    "source",
)


def _plain(value: Any) -> Any:
    """A JSON-friendly copy: non-finite floats as strings, tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return (
            "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        )
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item):
        return _plain(value.item())
    return value


@dataclass(frozen=True)
class Finding:
    """One diagnosis.

    Attributes
    ----------
    rule : str
        The rule's name, such as ``"vanishing_gradients"``.
    severity : {"info", "warning", "critical"}
        How much it matters.
    variant : str
        The run it concerns ("" for a single run).
    layers : tuple of str
        The layers concerned (``("model",)`` for whole-model findings).
    step_range : (int, int)
        The first and last recorded step where the condition held.
    measured : float
        The measured value, to compare with ``threshold``.
    threshold : float
        The threshold the rule applies (a setting; see
        :class:`~annlens.analysis.diagnostics.settings.DiagnosticSettings`).
    definition : str
        What exactly was measured (which quantity, which stages, which
        definition of dead, over which steps).
    message : str
        What was found, in one or two sentences.
    suggestion : str
        What usually helps.
    source : str
        The paper or practice the rule comes from.
    evidence : dict
        Further values that support the finding (per-layer values, counts).
    """

    rule: str
    severity: str
    variant: str
    layers: tuple[str, ...]
    step_range: tuple[int, int]
    measured: float
    threshold: float
    definition: str
    message: str
    suggestion: str
    source: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.severity in SEVERITIES, f"unknown severity {self.severity!r}"

    @property
    def layer(self) -> str:
        """The layers as one string, ``"dense_0, dense_1"``."""
        return ", ".join(self.layers)

    @property
    def steps(self) -> tuple[int, int]:
        """Another name for ``step_range``."""
        return self.step_range

    @property
    def value(self) -> float:
        """Another name for ``measured``."""
        return self.measured

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (non-finite numbers as strings).

        Besides the attributes it holds ``layer``, ``steps`` and ``value``,
        the names the report reads.
        """
        return {
            "rule": self.rule,
            "severity": self.severity,
            "variant": self.variant,
            "layers": list(self.layers),
            "step_range": [int(self.step_range[0]), int(self.step_range[1])],
            "measured": _plain(float(self.measured)),
            "threshold": _plain(float(self.threshold)),
            "definition": self.definition,
            "message": self.message,
            "suggestion": self.suggestion,
            "source": self.source,
            "evidence": _plain(self.evidence),
            "layer": self.layer,
            "steps": [int(self.step_range[0]), int(self.step_range[1])],
            "value": _plain(float(self.measured)),
        }

    def __str__(self) -> str:
        where = ", ".join(self.layers)
        variant = f" [{self.variant}]" if self.variant else ""
        return (
            f"{self.severity.upper()} {self.rule}{variant} at {where}, steps "
            f"{self.step_range[0]}-{self.step_range[1]}: {self.message} "
            f"Suggestion: {self.suggestion}"
        )

    def __repr__(self) -> str:
        return (
            f"Finding({self.rule!r}, {self.severity!r}, layers={list(self.layers)}, "
            f"steps={self.step_range}, measured={self.measured:.3g}, "
            f"threshold={self.threshold:.3g})"
        )


def findings_frame(findings: list[Finding]) -> Any:
    """The findings as a DataFrame with :data:`FINDING_COLUMNS` (layers joined)."""
    import pandas as pd

    rows = [
        {
            "rule": f.rule,
            "severity": f.severity,
            "variant": f.variant,
            "layers": ",".join(f.layers),
            "step_start": int(f.step_range[0]),
            "step_end": int(f.step_range[1]),
            "measured": float(f.measured),
            "threshold": float(f.threshold),
            "definition": f.definition,
            "message": f.message,
            "suggestion": f.suggestion,
            "source": f.source,
        }
        for f in findings
    ]
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
