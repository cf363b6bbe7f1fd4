"""The Rule contract: a named check with a source, reading a StatsView.

A rule reads the statistics of one variant and returns findings. Its
thresholds live in :class:`~annlens.analysis.diagnostics.settings.DiagnosticSettings`;
its ``source`` names the paper or practice it comes from.
"""

from __future__ import annotations

from typing import ClassVar

from annlens.analysis.diagnostics.findings import Finding
from annlens.analysis.diagnostics.settings import DiagnosticSettings
from annlens.analysis.diagnostics.view import StatsView


class Rule:
    """Base class of every diagnostic rule.

    Subclasses set ``name``, ``source`` and ``suggestion`` and implement
    :meth:`check`.
    """

    name: ClassVar[str] = "rule"
    source: ClassVar[str] = ""
    suggestion: ClassVar[str] = ""

    def check(self, view: StatsView, settings: DiagnosticSettings) -> list[Finding]:
        """The findings for one variant (empty when all is well)."""
        raise NotImplementedError(f"{type(self).__name__} does not define check")

    def finding(self, view: StatsView, **fields: object) -> Finding:
        """A finding of this rule for ``view``'s variant."""
        values = {
            "rule": self.name,
            "variant": view.variant,
            "source": self.source,
            "suggestion": self.suggestion,
            **fields,
        }
        return Finding(**values)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
