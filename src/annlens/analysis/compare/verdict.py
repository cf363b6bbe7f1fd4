"""One verdict over every compared variant: pass or fail, and the worst difference.

A :class:`Comparison` is what ``annlens compare`` finds for one variant: its
parity on one batch and, when trained side by side, its trajectory.
:func:`verdict` folds a list of them into a :class:`Verdict`: whether every
hook-point quantity of every variant agrees with PyTorch within its
tolerance, which one is furthest off and where, and how far the trajectories
drifted. The verdict judges the parity; the drift is reported beside it
(see the Notes of :class:`~annlens.analysis.compare.TrajectoryResult`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from annlens.analysis.compare.parity import Difference, ParityResult
from annlens.analysis.compare.trajectory import TrajectoryResult, TrajectoryStep
from annlens.errors import ConfigError, DataError


@dataclass
class Comparison:
    """One variant against its PyTorch twin.

    Attributes
    ----------
    name : str
        The variant's name.
    parity : ParityResult
        Every hook-point quantity on one batch.
    trajectory : TrajectoryResult or None
        Training side by side; None when not trained.
    """

    name: str
    parity: ParityResult
    trajectory: TrajectoryResult | None = None

    def to_dict(self) -> dict[str, Any]:
        """The comparison as plain JSON values (:meth:`from_dict` reads it back)."""
        return {
            "name": self.name,
            "parity": self.parity.to_dict(),
            "trajectory": None
            if self.trajectory is None
            else self.trajectory.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Comparison:
        """The comparison :meth:`to_dict` wrote.

        Raises
        ------
        DataError
            When a key is missing or a value has the wrong type, naming it.
        """
        try:
            trajectory = data.get("trajectory")
            return cls(
                str(data["name"]),
                ParityResult.from_dict(data["parity"]),
                None if trajectory is None else TrajectoryResult.from_dict(trajectory),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            name = data.get("name", "?") if isinstance(data, dict) else "?"
            raise DataError(
                f"a stored comparison (variant {name!r}) is damaged: "
                f"{type(error).__name__}: {error}"
            ) from error

    def __repr__(self) -> str:
        return f"Comparison({self.name!r}, {self.parity!r}, {self.trajectory!r})"


@dataclass
class Verdict:
    """Whether every variant agrees with PyTorch, and the worst difference.

    Attributes
    ----------
    passed : bool
        Every hook-point quantity of every variant is within its tolerance.
    variants : int
        How many variants were compared.
    quantities : int
        How many quantities were compared, over every variant.
    failures : int
        How many of them are beyond their tolerance.
    worst : (str, Difference, ParityResult) or None
        The variant, the row furthest beyond its tolerance, and the result it
        belongs to (whose ``tolerance`` and ``atol`` it was judged by).
    drift : (str, TrajectoryStep, TrajectoryResult) or None
        The variant, step and result of the largest trajectory drift.
    stopped : list of (str, str)
        Variants whose side-by-side training stopped early, with the reason.
    """

    passed: bool
    variants: int
    quantities: int
    failures: int
    worst: tuple[str, Difference, ParityResult] | None = None
    drift: tuple[str, TrajectoryStep, TrajectoryResult] | None = None
    stopped: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        """The verdict as one line of text, for the end of the terminal output.

        ``PASS`` or ``FAIL``, how many quantities were compared and how many
        differ, the worst difference, where it is and the tolerance it was
        judged by, then the largest drift of the trajectories and the
        variants whose side-by-side training stopped at a NaN or Inf.
        """
        if self.quantities == 0:
            head = (
                f"FAIL: no quantity of {self.variants} variant(s) was compared "
                "with PyTorch; help: pass the Comparison of at least one variant"
            )
        elif self.passed:
            head = (
                f"PASS: all {self.quantities} quantities of {self.variants} "
                f"variant(s) agree with PyTorch"
            )
        else:
            head = (
                f"FAIL: {self.failures} of {self.quantities} quantities of "
                f"{self.variants} variant(s) differ from PyTorch beyond the tolerance"
            )
        parts = [head]
        if self.worst is not None:
            name, row, result = self.worst
            share, limits = result.excess(row), result.tolerance_text()
            if share <= 1:
                judged = f"at {share:.2g} of the tolerance ({limits})"
            elif share < math.inf:
                judged = f"{share:.3g} times the tolerance ({limits})"
            else:
                judged = f"beyond the tolerance ({limits})"
            parts.append(
                f"worst |Δ| {row.max_abs:.3g} (relative {row.max_rel:.3g}) at "
                f"{name} {row.point} {row.quantity}, {judged}"
            )
        if self.drift is not None:
            name, step, trajectory = self.drift
            parts.append(
                f"drift over {len(trajectory.steps)} step(s) up to |Δ| "
                f"{step.worst_abs:.3g} (relative {step.worst_rel:.3g}) at {name} "
                f"{step.worst}, step {step.step} (reported, not judged)"
            )
        if self.stopped:
            names = ", ".join(name for name, _ in self.stopped)
            parts.append(f"stopped by annlens's NaN guard: {names}")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"Verdict({self.line()!r})"


def verdict(comparisons: Sequence[Comparison]) -> Verdict:
    """Fold the comparisons of every variant into one :class:`Verdict`.

    A verdict on nothing (no comparisons, or none with a compared quantity)
    does not pass.
    """
    if isinstance(comparisons, Comparison) or not isinstance(comparisons, Sequence):
        comparisons = [comparisons]  # type: ignore[list-item]
    for comparison in comparisons:
        if not isinstance(comparison, Comparison):
            raise ConfigError(
                "verdict() takes a list of Comparison, got "
                f"{type(comparison).__name__}; help: "
                "verdict([Comparison(name, parity, trajectory)])"
            )
    quantities = sum(len(c.parity.rows) for c in comparisons)
    failures = sum(len(c.parity.failures()) for c in comparisons)
    worst = None
    worst_key: tuple[float, float] | None = None
    for comparison in comparisons:
        row = comparison.parity.worst()
        if row is None:
            continue
        key = (comparison.parity.excess(row), row.max_rel)
        if worst_key is None or key > worst_key:
            worst, worst_key = (comparison.name, row, comparison.parity), key

    drift = None
    drift_key: tuple[float, float] | None = None
    stopped = []
    for comparison in comparisons:
        trajectory = comparison.trajectory
        if trajectory is None:
            continue
        if trajectory.stopped is not None:
            stopped.append((comparison.name, trajectory.stopped))
        step = trajectory.worst_step()
        if step is None:
            continue
        key = (step.excess(trajectory.tolerance, trajectory.atol), step.worst_rel)
        if drift_key is None or key > drift_key:
            drift, drift_key = (comparison.name, step, trajectory), key

    return Verdict(
        passed=failures == 0 and quantities > 0,
        variants=len(comparisons),
        quantities=quantities,
        failures=failures,
        worst=worst,
        drift=drift,
        stopped=stopped,
    )
