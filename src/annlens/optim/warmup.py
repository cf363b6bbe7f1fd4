"""Linear warm-up, in front of any other schedule or alone.

References
----------
Goyal, P. et al. (2017). Accurate, large minibatch SGD: training ImageNet in
1 hour. arXiv:1706.02677.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from annlens.errors import ConfigError
from annlens.optim.base import check_count, check_number
from annlens.optim.schedules import Schedule


class LinearWarmup(Schedule):
    """Raise the rate linearly for a few steps, then hand over to another schedule.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer to schedule.
    warmup_steps : int
        Steps of warm-up.
    start_factor : float
        The factor at step 0, in (0, 1] (default 0.1).
    after : Schedule, optional
        The schedule that takes over after the warm-up, made on the same
        optimizer and not yet stepped; its step 0 comes at step
        ``warmup_steps``. Without one, the rate stays at the base rate.
    unit : {"epoch", "batch"}, optional
        What one step stands for; taken from ``after`` when there is one.

    Notes
    -----
    For ``t < warmup_steps``: ``lr_t = base_lr * (s + (1 - s) * t / warmup_steps)``
    with ``s = start_factor``; from then on, ``after`` at step
    ``t - warmup_steps``.
    """

    def __init__(
        self,
        optimizer: Any,
        warmup_steps: int,
        start_factor: float = 0.1,
        after: Schedule | None = None,
        unit: str | None = None,
    ) -> None:
        if after is not None:
            if not isinstance(after, Schedule):
                raise ConfigError(
                    f"LinearWarmup after must be a Schedule, got {after!r}"
                )
            if after.optimizer is not optimizer:
                raise ConfigError("LinearWarmup after must schedule the same optimizer")
            if after.count != 0:
                raise ConfigError(
                    f"LinearWarmup after must not have been stepped yet; "
                    f"it is at step {after.count}"
                )
            if unit is not None and unit != after.unit:
                raise ConfigError(
                    f"LinearWarmup unit {unit!r} differs from the unit "
                    f"{after.unit!r} of the schedule after it"
                )
            unit = after.unit
        super().__init__(optimizer, unit or "epoch")
        self.warmup_steps = check_count("LinearWarmup", "warmup_steps", warmup_steps)
        self.start_factor = check_number(
            "LinearWarmup", "start_factor", start_factor, 0.0, 1.0, low_open=True
        )
        self.after = after
        self.needs_metric = after is not None and after.needs_metric
        self.start()

    def scale_at(self, count: int) -> float:
        """The warm-up factor; from ``warmup_steps`` on, what ``after`` says."""
        if count < self.warmup_steps:
            s = self.start_factor
            return s + (1 - s) * count / self.warmup_steps
        return self.after.scale if self.after is not None else 1.0

    def advance(self, metric: float | None = None) -> None:
        if self.after is not None and self.count >= self.warmup_steps:
            self.after.advance(metric)
        self.count += 1
        self.scale = self.scale_at(self.count)

    def config(self) -> dict[str, Any]:
        return {
            "warmup_steps": self.warmup_steps,
            "start_factor": self.start_factor,
            "after": None if self.after is None else type(self.after).__name__,
            **super().config(),
        }

    def extra_state(self) -> dict[str, Any]:
        return {"after": None if self.after is None else self.after.state_dict()}

    def load_extra_state(self, saved: Mapping[str, Any]) -> None:
        if self.after is not None:
            self.after.load_state_dict(saved["after"])

    def __repr__(self) -> str:
        return (
            f"LinearWarmup(warmup_steps={self.warmup_steps}, "
            f"start_factor={self.start_factor!r}, after={self.after!r}, "
            f"unit={self.unit!r})"
        )
