"""Diagnostic findings as rows of the report's diagnosis table.

A finding arrives as an object with attributes or as a dict with keys
``rule, severity, variant, layer, steps, value, threshold, definition,
message, suggestion``; any may be missing except ``rule``. The spellings of
:class:`annlens.analysis.diagnostics.Finding` (and of its ``to_dict()``) are
read too, and preferred: ``layers`` (a list), ``step_range`` (first and last
step), ``measured`` for ``value``, and ``source``. :func:`finding_rows` turns them
into dicts of display strings, most severe first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from annlens.errors import DataError

FIELDS = (
    "rule",
    "severity",
    "variant",
    "layer",
    "steps",
    "value",
    "threshold",
    "definition",
    "message",
    "suggestion",
    "source",
)
#: The keys each field is read from, in order of preference: the diagnostics'
#: ``layers`` list and ``step_range`` pair say more than ``layer`` and ``steps``.
SPELLINGS = {
    "layer": ("layers", "layer"),
    "steps": ("step_range", "steps"),
    "value": ("value", "measured"),
}
SEVERITY_RANK = {"critical": 0, "error": 1, "warning": 2, "warn": 2, "info": 3}
SEVERITY_CLASS = {"critical": "critical", "error": "error", "warn": "warning"}
SEVERITY_CLASS.update(warning="warning", info="info")


def lookup(finding: Any, name: str) -> tuple[str, Any]:
    """``(key, value)`` of a finding's field, from a mapping key or an
    attribute, trying the :data:`SPELLINGS`; ``(name, None)`` if absent."""
    for key in SPELLINGS.get(name, (name,)):
        if isinstance(finding, Mapping):
            value = finding.get(key)
        else:
            value = getattr(finding, key, None)
        if value is not None:
            return key, value
    return name, None


def field(finding: Any, name: str) -> Any:
    """A finding's field (see :func:`lookup`); None if absent."""
    return lookup(finding, name)[1]


def format_number(value: Any) -> str:
    """A measured value or threshold for reading: three significant digits."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, int):
        return f"{value:d}"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.3g}"


def format_steps(steps: Any, is_range: bool = False) -> str:
    """Steps for reading: ``120``, ``120, 240``, ``120–960 (8 records)``; a
    ``(first, last)`` range as ``120–960``."""
    if steps is None:
        return "—"
    if is_range and not isinstance(steps, str) and len(steps) == 2:
        first, last = (int(s) for s in steps)
        return f"{first}" if first == last else f"{first}–{last}"
    if isinstance(steps, (int, float)):
        return f"{int(steps)}"
    if isinstance(steps, str):
        return steps
    if isinstance(steps, range):
        steps = list(steps)
    values = [int(s) for s in steps] if isinstance(steps, Iterable) else []
    if not values:
        return "—"
    if len(values) <= 3:
        return ", ".join(str(v) for v in values)
    return f"{min(values)}–{max(values)} ({len(values)} records)"


def layer_names(layer: Any) -> list[str]:
    """The layers a finding concerns, as a list."""
    if layer is None or layer == "":
        return []
    if isinstance(layer, str):
        return [layer]
    return [str(name) for name in layer]


def layer_text(layer: Any) -> str:
    """Up to three layer names joined by commas; more as ``first … last (n
    layers)``; a dash when none."""
    names = layer_names(layer)
    if not names:
        return "—"
    if len(names) <= 3:
        return ", ".join(names)
    return f"{names[0]} … {names[-1]} ({len(names)} layers)"


def severity_of(finding: Any) -> str:
    """The lower-case severity (``warning`` when none is given)."""
    severity = field(finding, "severity")
    severity = getattr(severity, "value", severity)  # an Enum member
    return str(severity or "warning").lower()


def finding_rows(findings: Sequence[Any]) -> list[dict[str, str]]:
    """Display rows, most severe first, then by variant, layer and rule.

    Returns
    -------
    list of dict of str to str
        Keys: the fields of :data:`FIELDS`, formatted, ``layers`` (every layer
        named, for a tooltip) and ``severity_class`` (one of ``critical, error,
        warning, info``, for the style sheet).
    """
    rows = []
    for i, finding in enumerate(findings):
        if field(finding, "rule") is None:
            raise DataError(
                f"finding {i} has no 'rule'; a finding needs at least a rule name, "
                f"got {finding!r}"
            )
        severity = severity_of(finding)
        row = {name: field(finding, name) for name in FIELDS}
        steps_key = lookup(finding, "steps")[0]
        rows.append(
            {
                "rule": str(row["rule"]),
                "severity": severity,
                "severity_class": SEVERITY_CLASS.get(severity, "warning"),
                "variant": str(row["variant"] or ""),
                "layer": layer_text(row["layer"]),
                "layers": ", ".join(layer_names(row["layer"])),
                "steps": format_steps(row["steps"], steps_key == "step_range"),
                "value": format_number(row["value"]),
                "threshold": format_number(row["threshold"]),
                "definition": str(row["definition"] or ""),
                "message": str(row["message"] or ""),
                "suggestion": str(row["suggestion"] or ""),
                "source": str(row["source"] or ""),
                "_rank": str(SEVERITY_RANK.get(severity, 2)),
            }
        )
    rows.sort(key=lambda r: (r["_rank"], r["variant"], r["layer"], r["rule"]))
    for row in rows:
        del row["_rank"]
    return rows


COUNTABLE = ("error", "warning")


def summary_line(rows: Sequence[Mapping[str, str]]) -> str:
    """``"3 findings: 1 error, 2 warnings"``, in severity order."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["severity"]] = counts.get(row["severity"], 0) + 1
    ordered = sorted(counts, key=lambda s: SEVERITY_RANK.get(s, 2))
    parts = [
        f"{counts[s]} {s}{'s' if counts[s] != 1 and s in COUNTABLE else ''}"
        for s in ordered
    ]
    total = len(rows)
    return f"{total} finding{'s' if total != 1 else ''}: " + ", ".join(parts)
