"""Reduce the learning rate when a monitored metric stops improving."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from annlens.errors import ConfigError
from annlens.optim.base import check_count, check_number
from annlens.optim.schedules import Schedule

logger = logging.getLogger("annlens")


class ReduceOnPlateau(Schedule):
    """Divide the rate by ``1 / factor`` after ``patience`` steps without progress.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer to schedule.
    mode : {"min", "max"}
        Whether the metric improves by going down (a loss) or up (accuracy).
    factor : float
        The rate is multiplied by ``factor`` on a plateau, in (0, 1).
    patience : int
        How many steps without improvement are tolerated; the rate falls on
        the next one.
    threshold : float
        What counts as an improvement (see Notes).
    threshold_mode : {"rel", "abs"}
        Whether ``threshold`` is relative to the best value or absolute.
    cooldown : int
        Steps after a reduction during which bad steps are not counted.
    min_lr : float
        The lowest learning rate, absolute.
    eps : float
        A reduction smaller than ``eps`` is skipped.
    unit : {"epoch", "batch"}
        What one step stands for (usually one evaluation, per epoch).

    Notes
    -----
    ``step(metric)`` counts an improvement when, for mode ``min``,
    ``metric < best * (1 - threshold)`` (rel) or ``metric < best - threshold``
    (abs); for mode ``max``, ``metric > best * (1 + threshold)`` or
    ``metric > best + threshold``. A NaN metric is never an improvement. When
    more than ``patience`` steps in a row bring none, the rate becomes
    ``max(lr * factor, min_lr)``, the count of bad steps restarts, and the
    next ``cooldown`` steps are not counted.
    """

    needs_metric = True

    def __init__(
        self,
        optimizer: Any,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
        unit: str = "epoch",
    ) -> None:
        super().__init__(optimizer, unit)
        name = "ReduceOnPlateau"
        if mode not in ("min", "max"):
            raise ConfigError(f"{name} mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ConfigError(
                f"{name} threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}"
            )
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = check_number(
            name, "factor", factor, 0.0, 1.0, low_open=True, high_open=True
        )
        self.patience = check_count(name, "patience", patience, low=0)
        self.threshold = check_number(name, "threshold", threshold, 0.0)
        self.cooldown = check_count(name, "cooldown", cooldown, low=0)
        self.min_lr = check_number(name, "min_lr", min_lr, 0.0)
        self.eps = check_number(name, "eps", eps, 0.0)
        if self.min_lr > 0:
            self.require_positive_lr()

        self.best = math.inf if mode == "min" else -math.inf
        self.bad_steps = 0
        self.cooldown_left = 0
        self.current_lr = self.base_lr
        self.start()

    def scale_at(self, count: int) -> float:
        """The factor of the rate reached so far (the count alone does not fix it)."""
        return self.relative(self.current_lr) if self.base_lr > 0 else 1.0

    def improves(self, value: float) -> bool:
        """Whether ``value`` counts as better than the best so far."""
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return value < self.best * (1.0 - self.threshold)
            return value < self.best - self.threshold
        if self.threshold_mode == "rel":
            return value > self.best * (1.0 + self.threshold)
        return value > self.best + self.threshold

    def advance(self, metric: float | None = None) -> None:
        if metric is None:
            raise ConfigError(
                "ReduceOnPlateau.step needs the monitored value; "
                "help: call step(val_loss) once per evaluation"
            )
        try:
            if isinstance(metric, (bool, str, bytes)) or np.ndim(metric) != 0:
                raise TypeError
            value = float(metric)
        except (TypeError, ValueError):
            raise ConfigError(
                "ReduceOnPlateau.step needs the monitored value as one number, "
                f"got {metric!r}"
            ) from None
        self.count += 1

        if self.improves(value):
            self.best, self.bad_steps = value, 0
        else:
            self.bad_steps += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_steps = 0

        if self.bad_steps > self.patience:
            reduced = max(self.current_lr * self.factor, self.min_lr)
            if self.current_lr - reduced > self.eps:
                logger.info(
                    "ReduceOnPlateau: learning rate %.6g -> %.6g at step %d",
                    self.current_lr,
                    reduced,
                    self.count,
                )
                self.current_lr = reduced
            self.cooldown_left, self.bad_steps = self.cooldown, 0
        self.scale = self.scale_at(self.count)

    def extra_state(self) -> dict[str, Any]:
        return {
            "best": self.best if math.isfinite(self.best) else None,
            "bad_steps": self.bad_steps,
            "cooldown_left": self.cooldown_left,
            "current_lr": self.current_lr,
        }

    def load_extra_state(self, saved: Mapping[str, Any]) -> None:
        name = "ReduceOnPlateau state"
        keys = ("best", "bad_steps", "cooldown_left", "current_lr")
        missing = [key for key in keys if key not in saved]
        if missing:
            raise ConfigError(f"{name} lacks {missing}")
        if saved["best"] is not None:
            check_number(name, "best", saved["best"])
        bad_steps = check_count(name, "bad_steps", saved["bad_steps"], low=0)
        cooldown_left = check_count(name, "cooldown_left", saved["cooldown_left"], 0)
        current_lr = check_number(name, "current_lr", saved["current_lr"], 0.0)
        worst = math.inf if self.mode == "min" else -math.inf
        self.best = worst if saved["best"] is None else float(saved["best"])
        self.bad_steps, self.cooldown_left = bad_steps, cooldown_left
        self.current_lr = current_lr

    def config(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "factor": self.factor,
            "patience": self.patience,
            "threshold": self.threshold,
            "threshold_mode": self.threshold_mode,
            "cooldown": self.cooldown,
            "min_lr": self.min_lr,
            "eps": self.eps,
            **super().config(),
        }
