"""The report's "Against PyTorch" section, from what ``annlens compare`` stored.

:func:`comparison_section` turns a list of
:class:`~annlens.analysis.compare.Comparison` into what the report template
shows: the one-line verdict over every variant, then per variant its parity
table (every hook point on one batch, open when something differs) and its
trajectory table (training side by side). The tables are the HTML fragments
of :mod:`annlens.analysis.compare.table`, which escape every cell; the
template inserts them as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from annlens.errors import ConfigError


def comparison_section(comparisons: Sequence[Any]) -> dict[str, Any]:
    """The template context of the section: the verdict and one entry per variant.

    Raises
    ------
    ConfigError
        When an entry is not a Comparison, naming its type.
    """
    from annlens.analysis.compare import Comparison, verdict

    for entry in comparisons:
        if not isinstance(entry, Comparison):
            raise ConfigError(
                "the report's comparisons must be annlens.compare Comparison "
                f"objects (as annlens compare stores them); got {type(entry).__name__}"
            )
    judged = verdict(comparisons)
    variants = []
    for comparison in comparisons:
        parity, trajectory = comparison.parity, comparison.trajectory
        failures = len(parity.failures())
        variants.append(
            {
                "name": comparison.name,
                "agrees": failures == 0,
                "state": "agrees" if failures == 0 else f"{failures} differ",
                "quantities": len(parity.rows),
                "parity": parity.to_html(),
                "steps": 0 if trajectory is None else len(trajectory.steps),
                "stopped": None if trajectory is None else trajectory.stopped,
                "trajectory": None if trajectory is None else trajectory.to_html(),
            }
        )
    return {"passed": judged.passed, "line": judged.line(), "variants": variants}
