"""How two training runs drift apart, step by step: the result of a side-by-side run.

:class:`TrajectoryStep` is the state of the two runs after one optimizer step
(both losses, and the difference of every parameter and buffer);
:class:`TrajectoryResult` holds the steps, says whether they stayed within a
tolerance, and shows them as a table. The run itself is
:func:`~annlens.analysis.compare.lockstep.compare_training`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from annlens.analysis.compare.measure import excess, resolve_tolerances


@dataclass(frozen=True)
class TrajectoryStep:
    """The state of the two runs after one optimizer step.

    Attributes
    ----------
    step : int
        The step number, from 1.
    loss_annlens, loss_torch : float
        The data loss each computed on this step's batch (before its update;
        penalties are not part of it).
    loss_abs, loss_rel : float
        Their absolute and relative difference.
    param_max_abs, param_max_rel : float
        The largest absolute and the largest relative difference over every
        parameter and buffer after the update, each taken separately (see
        :func:`~annlens.analysis.compare.measure.difference`).
    worst : str
        The parameter or buffer furthest beyond the result's tolerances
        (see :func:`~annlens.analysis.compare.measure.excess`).
    worst_abs, worst_rel : float
        Its absolute and relative difference.
    differences : dict of str to (float, float)
        ``(max_abs, max_rel)`` of every parameter and buffer, by name.
    """

    step: int
    loss_annlens: float
    loss_torch: float
    loss_abs: float
    loss_rel: float
    param_max_abs: float
    param_max_rel: float
    worst: str
    worst_abs: float = 0.0
    worst_rel: float = 0.0
    differences: dict[str, tuple[float, float]] = field(
        default_factory=dict, repr=False
    )

    def excess(self, tolerance: float, atol: float) -> float:
        """How far beyond its tolerances the step is: the larger of the loss's
        and the worst parameter's :func:`~annlens.analysis.compare.measure.excess`
        (every parameter's, when ``tolerance`` and ``atol`` are not the ones
        ``worst`` was chosen by)."""
        pairs = self.differences.values() or [(self.worst_abs, self.worst_rel)]
        return max(
            excess(self.loss_abs, self.loss_rel, tolerance, atol),
            *(excess(a, r, tolerance, atol) for a, r in pairs),
        )

    def to_dict(self) -> dict[str, Any]:
        """The step as plain JSON values."""
        data = {key: getattr(self, key) for key in STEP_NUMBERS}
        data["worst"] = self.worst
        data["differences"] = {k: list(v) for k, v in self.differences.items()}
        return data

    @classmethod
    def from_dict(cls, data: Any) -> TrajectoryStep:
        """The step :meth:`to_dict` wrote."""
        numbers = {key: float(data[key]) for key in STEP_NUMBERS if key != "step"}
        differences = {
            str(name): (float(pair[0]), float(pair[1]))
            for name, pair in dict(data.get("differences") or {}).items()
        }
        return cls(
            step=int(data["step"]),
            worst=str(data["worst"]),
            differences=differences,
            **numbers,
        )


STEP_NUMBERS = (
    "step",
    "loss_annlens",
    "loss_torch",
    "loss_abs",
    "loss_rel",
    "param_max_abs",
    "param_max_rel",
    "worst_abs",
    "worst_rel",
)


@dataclass
class TrajectoryResult:
    """How two training runs drift apart, step by step.

    Attributes
    ----------
    steps : list of TrajectoryStep
        One entry per optimizer step both runs took.
    optimizer : str
        The annlens optimizer and its hyperparameters.
    dtype : str
        The dtype both trained in.
    tolerance, atol : float
        The relative and absolute difference counted as agreement; left out
        (or NaN), the dtype's defaults, as for
        :class:`~annlens.analysis.compare.ParityResult`.
    stopped : str or None
        Why the run ended before the steps asked for: annlens's NaN guard
        found a NaN or Inf (the message names the step, layer and stage).
        None when every step was taken.
    recipe : str
        What else each step did besides the optimizer's update: penalties,
        clipping, constraints, schedule ("" when nothing).

    Notes
    -----
    In float32 two runs that agree step by step still drift: each step's
    rounding differences (a few 1e-7, relative) feed the next step, and a
    network that amplifies small changes (saturated units, a large learning
    rate, a loss that explodes) amplifies them too. The drift is reported,
    not judged, by the ``annlens compare`` verdict; :attr:`agrees` judges it
    when asked.
    """

    steps: list[TrajectoryStep]
    optimizer: str
    dtype: str
    tolerance: float = field(default=math.nan)
    atol: float = field(default=math.nan)
    stopped: str | None = None
    recipe: str = ""

    def __post_init__(self) -> None:
        self.tolerance, self.atol = resolve_tolerances(
            self.dtype, self.tolerance, self.atol
        )

    @property
    def max_param_rel(self) -> float:
        """The largest relative parameter difference over every step."""
        return max((s.param_max_rel for s in self.steps), default=0.0)

    @property
    def max_loss_rel(self) -> float:
        """The largest relative loss difference over every step."""
        return max((s.loss_rel for s in self.steps), default=0.0)

    def worst_step(self) -> TrajectoryStep | None:
        """The step furthest beyond the tolerances; the last of equals, so
        that a drift that only grows is shown where it ended."""
        best: TrajectoryStep | None = None
        for step in self.steps:
            if best is None or (
                step.excess(self.tolerance, self.atol),
                step.worst_rel,
            ) >= (best.excess(self.tolerance, self.atol), best.worst_rel):
                best = step
        return best

    @property
    def agrees(self) -> bool:
        """Whether every step stays within :attr:`tolerance` or :attr:`atol`
        (a property, as :attr:`ParityResult.agrees` is); a run stopped by a NaN
        or Inf does not agree. :meth:`agrees_within` takes other tolerances."""
        return self.agrees_within()

    def agrees_within(
        self, tolerance: float | None = None, atol: float | None = None
    ) -> bool:
        """Whether every step's loss and every parameter and buffer stay within
        ``tolerance`` relative or ``atol`` absolute (the result's by default).

        A run stopped by a NaN or Inf does not agree.
        """
        rel, absolute = resolve_tolerances(
            self.dtype,
            self.tolerance if tolerance is None else tolerance,
            self.atol if atol is None else atol,
        )
        return self.stopped is None and all(
            step.excess(rel, absolute) <= 1 for step in self.steps
        )

    def to_dataframe(self) -> Any:
        """One row per step, as a pandas DataFrame (without the per-parameter
        differences)."""
        import pandas as pd

        return pd.DataFrame(
            [
                {key: getattr(step, key) for key in (*STEP_NUMBERS, "worst")}
                for step in self.steps
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON values (:meth:`from_dict` reads it back)."""
        return {
            "optimizer": self.optimizer,
            "dtype": self.dtype,
            "tolerance": self.tolerance,
            "atol": self.atol,
            "stopped": self.stopped,
            "recipe": self.recipe,
            "steps": [step.to_dict() for step in self.steps],
        }

    @classmethod
    def from_dict(cls, data: Any) -> TrajectoryResult:
        """The result :meth:`to_dict` wrote."""
        stopped = data.get("stopped")
        return cls(
            [TrajectoryStep.from_dict(step) for step in data["steps"]],
            str(data["optimizer"]),
            str(data["dtype"]),
            float(data["tolerance"]),
            float(data["atol"]),
            None if stopped is None else str(stopped),
            str(data.get("recipe") or ""),
        )

    def table(self) -> Any:
        """A rich Table for the terminal."""
        from annlens.analysis.compare.table import trajectory_table

        return trajectory_table(self)

    def to_html(self) -> str:
        """An HTML fragment (a ``<table>``) for the report."""
        from annlens.analysis.compare.table import trajectory_html

        return trajectory_html(self)

    def __rich__(self) -> Any:
        return self.table()

    def __repr__(self) -> str:
        stopped = f", stopped after {len(self.steps)}" if self.stopped else ""
        return (
            f"TrajectoryResult({len(self.steps)} steps{stopped}, {self.optimizer}, "
            f"dtype={self.dtype}, max_param_rel={self.max_param_rel:.3g}, "
            f"max_loss_rel={self.max_loss_rel:.3g})"
        )
