"""The one-cycle schedule: warm up to a peak rate, then anneal far below the start.

References
----------
Smith, L. N. & Topin, N. (2019). Super-convergence: very fast training of
neural networks using large learning rates. SPIE Artificial Intelligence and
Machine Learning for Multi-Domain Operations Applications.
"""

from __future__ import annotations

import math
from typing import Any

from annlens.errors import ConfigError, StateError
from annlens.optim.base import check_count, check_number
from annlens.optim.schedules import Schedule

ANNEALS = ("cos", "linear")


def _anneal(kind: str, start: float, end: float, pct: float) -> float:
    """From ``start`` (pct 0) to ``end`` (pct 1), along half a cosine or a line."""
    if kind == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    return (end - start) * pct + start


class OneCycle(Schedule):
    """One cycle of the learning rate over the whole run, stepped per batch.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer to schedule.
    total_steps : int
        The number of steps in the run (``epochs * batches_per_epoch`` with
        the default unit); stepping past it raises.
    max_lr : float, optional
        The peak learning rate, absolute; defaults to the optimizer's ``lr``.
    pct_start : float
        The fraction of the steps spent rising, in (0, 1) (default 0.3).
    anneal : {"cos", "linear"}
        The shape of each phase.
    div_factor : float
        The start rate is ``max_lr / div_factor`` (default 25).
    final_div_factor : float
        The final rate is ``max_lr / div_factor / final_div_factor``
        (default 1e4).
    three_phase : bool
        Rise, fall back to the start rate symmetrically, then anneal to the
        final rate; otherwise rise, then anneal to the final rate.
    cycle_momentum : bool
        Also cycle the momentum (``momentum``, or ``betas[0]`` for the Adam
        family) inversely between ``max_momentum`` and ``base_momentum``. Off
        by default in annlens, so that the momentum you set is the one used;
        when on, it replaces the optimizer's base momentum at every step
        (groups that set their own momentum keep it).
    base_momentum, max_momentum : float
        The momentum at the peak rate, and at the start and end.
    unit : {"batch", "epoch"}
        What one step stands for (default per batch).

    Notes
    -----
    Two phases (``three_phase=False``), with ``lr_0 = max_lr / div_factor`` and
    ``lr_min = lr_0 / final_div_factor``: from ``lr_0`` at step 0 to ``max_lr``
    at step ``pct_start * total_steps - 1``, then to ``lr_min`` at step
    ``total_steps - 1``. Three phases insert a fall back to ``lr_0`` at step
    ``2 * pct_start * total_steps - 2`` before the final anneal.
    """

    def __init__(
        self,
        optimizer: Any,
        total_steps: int,
        max_lr: float | None = None,
        pct_start: float = 0.3,
        anneal: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        cycle_momentum: bool = False,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        unit: str = "batch",
    ) -> None:
        super().__init__(optimizer, unit)
        name = "OneCycle"
        self.total_steps = check_count(name, "total_steps", total_steps)
        peak = self.base_lr if max_lr is None else max_lr
        self.max_lr = check_number(name, "max_lr", peak, 0.0, low_open=True)
        self.pct_start = check_number(
            name, "pct_start", pct_start, 0.0, 1.0, low_open=True, high_open=True
        )
        if self.pct_start * self.total_steps <= 1:
            raise ConfigError(
                f"OneCycle rises for pct_start * total_steps - 1 = "
                f"{self.pct_start * self.total_steps - 1:g} steps; it needs more "
                "than 0; help: raise pct_start or total_steps"
            )
        if anneal not in ANNEALS:
            raise ConfigError(
                f"OneCycle anneal must be one of {ANNEALS}, got {anneal!r}"
            )
        self.anneal = anneal
        self.div_factor = check_number(
            name, "div_factor", div_factor, 0.0, low_open=True
        )
        self.final_div_factor = check_number(
            name, "final_div_factor", final_div_factor, 0.0, low_open=True
        )
        for key, flag in (
            ("three_phase", three_phase),
            ("cycle_momentum", cycle_momentum),
        ):
            if not isinstance(flag, bool):
                raise ConfigError(f"OneCycle {key} must be True or False, got {flag!r}")
        self.three_phase = three_phase
        self.cycle_momentum = cycle_momentum
        self.base_momentum = check_number(
            name, "base_momentum", base_momentum, 0.0, 1.0
        )
        self.max_momentum = check_number(name, "max_momentum", max_momentum, 0.0, 1.0)
        self.momentum_key = self._momentum_key() if cycle_momentum else None
        self.require_positive_lr()
        self.phases = self._phases()
        self.start()
        self._apply_momentum(0)

    def _momentum_key(self) -> str:
        defaults = type(self.optimizer).defaults
        if "betas" in defaults:
            return "betas"
        if "momentum" in defaults:
            return "momentum"
        raise ConfigError(
            f"OneCycle cycle_momentum needs an optimizer with momentum or betas; "
            f"{type(self.optimizer).__name__} has neither"
        )

    def _phases(self) -> list[tuple[float, float, float, float, float]]:
        """``(end step, start lr, end lr, start momentum, end momentum)`` per phase."""
        lr_0 = self.max_lr / self.div_factor
        lr_min = lr_0 / self.final_div_factor
        rise_end = float(self.pct_start * self.total_steps) - 1
        last = float(self.total_steps - 1)
        low_m, high_m = self.base_momentum, self.max_momentum
        if self.three_phase:
            return [
                (rise_end, lr_0, self.max_lr, high_m, low_m),
                (2 * rise_end, self.max_lr, lr_0, low_m, high_m),
                (last, lr_0, lr_min, high_m, high_m),
            ]
        return [
            (rise_end, lr_0, self.max_lr, high_m, low_m),
            (last, self.max_lr, lr_min, low_m, high_m),
        ]

    def at(self, count: int) -> tuple[float, float]:
        """The absolute learning rate and the momentum after ``count`` steps."""
        if count > self.total_steps:
            raise StateError(
                f"OneCycle stepped {count} times, but total_steps is "
                f"{self.total_steps}; help: make total_steps the number of "
                "steps in the run"
            )
        start = 0.0
        for index, (end, lr_a, lr_b, m_a, m_b) in enumerate(self.phases):
            if count <= end or index == len(self.phases) - 1:
                pct = (count - start) / (end - start)
                return (
                    _anneal(self.anneal, lr_a, lr_b, pct),
                    _anneal(self.anneal, m_a, m_b, pct),
                )
            start = end
        raise AssertionError("the last phase always answers")

    def scale_at(self, count: int) -> float:
        return self.relative(self.at(count)[0])

    def advance(self, metric: float | None = None) -> None:
        scale = self.scale_at(self.count + 1)
        self.count += 1
        self.scale = scale
        self._apply_momentum(self.count)

    def _apply_momentum(self, count: int) -> None:
        if self.momentum_key is None:
            return
        momentum = self.at(count)[1]
        if self.momentum_key == "betas":
            beta2 = self.optimizer.base["betas"][1]
            self.optimizer.set("betas", (momentum, beta2))
        else:
            self.optimizer.set("momentum", momentum)

    def load_extra_state(self, saved: Any) -> None:
        if saved["count"] > self.total_steps:
            raise ConfigError(
                f"OneCycle state: count {saved['count']} is past total_steps "
                f"{self.total_steps}"
            )
        self._apply_momentum(int(saved["count"]))

    def config(self) -> dict[str, Any]:
        return {
            "total_steps": self.total_steps,
            "max_lr": self.max_lr,
            "pct_start": self.pct_start,
            "anneal": self.anneal,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "three_phase": self.three_phase,
            "cycle_momentum": self.cycle_momentum,
            "base_momentum": self.base_momentum,
            "max_momentum": self.max_momentum,
            **super().config(),
        }
