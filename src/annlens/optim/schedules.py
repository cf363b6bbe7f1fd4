"""Learning-rate schedules: a factor on the optimizer's learning rate over time.

A schedule is attached to an optimizer when it is made, and from then on owns
``optimizer.lr_scale``, the factor on every group's base learning rate. Making
it sets the factor for step 0; each ``schedule.step()`` advances one unit and
sets the next factor. The unit is explicit in ``schedule.unit``:

- ``"epoch"``: call ``step()`` once at the end of every epoch (the default);
- ``"batch"``: call ``step()`` after every optimizer step (the default of
  :class:`OneCycle`; any schedule can be given ``unit="batch"``, and then its
  lengths, such as ``T_max``, count batches).

Schedules whose ``needs_metric`` is true (:class:`ReduceOnPlateau`, or a
warm-up in front of it) take the monitored value: ``step(val_loss)``.

Absolute learning rates (``eta_min``, ``max_lr``, ``min_lr``) refer to the
optimizer's base ``lr`` at the time the schedule is made (``base_lr``); the
schedule turns them into a factor, ``lr_t / base_lr``. Groups with their own
``lr`` get the same factor, so for them an absolute floor scales with their
rate: a group at a tenth of the base rate anneals to a tenth of ``eta_min``.
With one group, every schedule gives the learning rates of PyTorch's
scheduler of the same kind.

:class:`LinearWarmup`, :class:`ReduceOnPlateau` and :class:`OneCycle` live in
:mod:`annlens.optim.warmup`, :mod:`annlens.optim.plateau` and
:mod:`annlens.optim.one_cycle`.

References
----------
Loshchilov, I. & Hutter, F. (2017). SGDR: stochastic gradient descent with
warm restarts. ICLR.
"""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from annlens.errors import ConfigError
from annlens.optim.base import Optimizer, check_count, check_number

UNITS = ("epoch", "batch")


class Schedule:
    """Base class: owns ``optimizer.lr_scale`` and advances it with :meth:`step`.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer whose ``lr_scale`` this schedule sets.
    unit : {"epoch", "batch"}
        What one :meth:`step` stands for.

    Attributes
    ----------
    base_lr : float
        The optimizer's base learning rate when the schedule was made.
    count : int
        Steps taken so far (0 after construction).
    scale : float
        The factor in force, ``lr / base_lr``.

    Subclasses implement :meth:`scale_at` (a pure function of the count), or
    override :meth:`advance` when the factor depends on more than the count,
    and call :meth:`start` at the end of ``__init__``.
    """

    needs_metric: bool = False

    def __init__(self, optimizer: Any, unit: str = "epoch") -> None:
        if unit not in UNITS:
            raise ConfigError(
                f"{type(self).__name__} unit must be one of {UNITS}, got {unit!r}"
            )
        if not isinstance(optimizer, Optimizer):
            raise ConfigError(
                f"{type(self).__name__} needs an Optimizer, got "
                f"{type(optimizer).__name__}; help: build it as "
                f"{type(self).__name__}(optimizer, ...)"
            )
        self.optimizer = optimizer
        self.unit = unit
        self.base_lr = float(optimizer.base["lr"])
        self.count = 0
        self.scale = 1.0

    def start(self) -> None:
        """Set the factor for step 0 on the optimizer."""
        self.scale = self.scale_at(0)
        self.optimizer.lr_scale = self.scale

    def scale_at(self, count: int) -> float:
        """The factor after ``count`` steps."""
        raise NotImplementedError(f"{type(self).__name__} does not define scale_at")

    def advance(self, metric: float | None = None) -> None:
        """Move one step on, without touching the optimizer."""
        self.count += 1
        self.scale = self.scale_at(self.count)

    def step(self, metric: float | None = None) -> float:
        """Advance one unit, set ``optimizer.lr_scale``, return the new base lr.

        ``metric`` is the monitored value for schedules that need one; the
        others ignore it, so a training loop may always pass it.
        """
        self.advance(metric)
        self.optimizer.lr_scale = self.scale
        return self.lr

    @property
    def lr(self) -> float:
        """The base learning rate in force, ``base_lr * scale``."""
        return self.base_lr * self.scale

    def relative(self, lr: float) -> float:
        """The factor that turns ``base_lr`` into the absolute rate ``lr``."""
        return lr / self.base_lr

    def require_positive_lr(self) -> None:
        """Refuse a zero base rate, which no factor can turn into an absolute one."""
        if self.base_lr <= 0:
            raise ConfigError(
                f"{type(self).__name__} sets absolute learning rates, which needs "
                f"the optimizer's lr > 0; got lr={self.base_lr!r}"
            )

    # -- description and checkpoints ---------------------------------------

    def config(self) -> dict[str, Any]:
        """The settings that define this schedule (JSON-friendly)."""
        return {"unit": self.unit}

    def extra_state(self) -> dict[str, Any]:
        """State beyond the count and the factor; none by default."""
        return {}

    def load_extra_state(self, saved: Mapping[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue where this schedule is (JSON-friendly)."""
        return {
            "type": type(self).__name__,
            "config": self.config(),
            "base_lr": self.base_lr,
            "count": self.count,
            "scale": self.scale,
            **self.extra_state(),
        }

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state_dict`; set the optimizer's factor again."""
        if not isinstance(saved, Mapping):
            raise ConfigError(
                f"schedule state must be a mapping from "
                f"{type(self).__name__}.state_dict(), got {type(saved).__name__}"
            )
        if saved.get("type") != type(self).__name__:
            raise ConfigError(
                f"schedule state is for {saved.get('type')!r}, "
                f"not {type(self).__name__!r}"
            )
        if _plain(saved.get("config")) != _plain(self.config()):
            raise ConfigError(
                f"{type(self).__name__} state was saved with settings "
                f"{saved.get('config')}, but this schedule has {self.config()}"
            )
        name = type(self).__name__
        missing = sorted({"base_lr", "count", "scale"} - set(saved))
        if missing:
            raise ConfigError(f"{name} state lacks {missing}")
        count = saved["count"]
        if (
            isinstance(count, bool)
            or not isinstance(count, (int, np.integer))
            or count < 0
        ):
            raise ConfigError(
                f"{name} state: count must be an integer >= 0, got {count!r}"
            )
        for key in ("base_lr", "scale"):
            value = saved[key]
            if not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ConfigError(
                    f"{name} state: {key} must be a finite number, got {value!r}"
                )
        self.load_extra_state(saved)
        self.base_lr = float(saved["base_lr"])
        self.count = int(count)
        self.scale = float(saved["scale"])
        self.optimizer.lr_scale = self.scale

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({settings})"


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively, so settings compare after a JSON round trip."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Constant(Schedule):
    """A constant factor on the learning rate (1: the optimizer's own rate).

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer to schedule.
    factor : float
        The factor, > 0 (default 1).
    unit : {"epoch", "batch"}
        What one step stands for.
    """

    def __init__(self, optimizer: Any, factor: float = 1.0, unit: str = "epoch"):
        super().__init__(optimizer, unit)
        self.factor = check_number("Constant", "factor", factor, 0.0, low_open=True)
        self.start()

    def scale_at(self, count: int) -> float:
        return self.factor

    def config(self) -> dict[str, Any]:
        return {"factor": self.factor, **super().config()}


class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` steps.

    Notes
    -----
    ``lr_t = base_lr * gamma ** floor(t / step_size)``.
    """

    def __init__(
        self,
        optimizer: Any,
        step_size: int,
        gamma: float = 0.1,
        unit: str = "epoch",
    ) -> None:
        super().__init__(optimizer, unit)
        self.step_size = check_count("StepDecay", "step_size", step_size)
        self.gamma = check_number("StepDecay", "gamma", gamma, 0.0, low_open=True)
        self.start()

    def scale_at(self, count: int) -> float:
        return float(self.gamma ** (count // self.step_size))

    def config(self) -> dict[str, Any]:
        return {"step_size": self.step_size, "gamma": self.gamma, **super().config()}


class MultiStepDecay(Schedule):
    """Multiply the rate by ``gamma`` at each milestone step.

    Notes
    -----
    ``lr_t = base_lr * gamma ** (number of milestones <= t)``; milestones are
    strictly increasing positive integers.
    """

    def __init__(
        self,
        optimizer: Any,
        milestones: Sequence[int],
        gamma: float = 0.1,
        unit: str = "epoch",
    ) -> None:
        super().__init__(optimizer, unit)
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
            raise ConfigError(
                f"MultiStepDecay milestones must be a list of integers, "
                f"got {milestones!r}"
            )
        steps = [check_count("MultiStepDecay", "milestones", m) for m in milestones]
        if any(b <= a for a, b in zip(steps[:-1], steps[1:], strict=True)):
            raise ConfigError(
                f"MultiStepDecay milestones must be strictly increasing, got {steps}"
            )
        self.milestones = steps
        self.gamma = check_number("MultiStepDecay", "gamma", gamma, 0.0, low_open=True)
        self.start()

    def scale_at(self, count: int) -> float:
        return float(self.gamma ** bisect.bisect_right(self.milestones, count))

    def config(self) -> dict[str, Any]:
        return {
            "milestones": list(self.milestones),
            "gamma": self.gamma,
            **super().config(),
        }


class ExponentialDecay(Schedule):
    """Multiply the rate by ``gamma`` every step: ``lr_t = base_lr * gamma**t``."""

    def __init__(self, optimizer: Any, gamma: float, unit: str = "epoch") -> None:
        super().__init__(optimizer, unit)
        self.gamma = check_number(
            "ExponentialDecay", "gamma", gamma, 0.0, low_open=True
        )
        self.start()

    def scale_at(self, count: int) -> float:
        return float(self.gamma**count)

    def config(self) -> dict[str, Any]:
        return {"gamma": self.gamma, **super().config()}


def _cosine(base_lr: float, eta_min: float, position: float, length: float) -> float:
    """Half a cosine from ``base_lr`` (position 0) to ``eta_min`` (``length``)."""
    return (
        eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * position / length)) / 2
    )


class CosineAnnealing(Schedule):
    """Anneal the rate along half a cosine from ``base_lr`` to ``eta_min``.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer to schedule.
    T_max : int
        Steps from the base rate to ``eta_min``.
    eta_min : float
        The lowest learning rate, absolute (not a factor).
    unit : {"epoch", "batch"}
        What one step stands for.

    Notes
    -----
    ``lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``.
    Past ``T_max`` the cosine goes on, rising back towards ``base_lr``; use
    :class:`CosineWarmRestarts` for a jump back instead.
    """

    def __init__(
        self,
        optimizer: Any,
        T_max: int,
        eta_min: float = 0.0,
        unit: str = "epoch",
    ) -> None:
        super().__init__(optimizer, unit)
        self.T_max = check_count("CosineAnnealing", "T_max", T_max)
        self.eta_min = check_number("CosineAnnealing", "eta_min", eta_min, 0.0)
        self.require_positive_lr()
        self.start()

    def scale_at(self, count: int) -> float:
        return self.relative(_cosine(self.base_lr, self.eta_min, count, self.T_max))

    def config(self) -> dict[str, Any]:
        return {"T_max": self.T_max, "eta_min": self.eta_min, **super().config()}


class CosineWarmRestarts(Schedule):
    """Cosine annealing that restarts at the base rate, each cycle longer.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer to schedule.
    T_0 : int
        Length of the first cycle, in steps.
    T_mult : int
        Each cycle is ``T_mult`` times as long as the one before (>= 1).
    eta_min : float
        The lowest learning rate, absolute.
    unit : {"epoch", "batch"}
        What one step stands for.

    Notes
    -----
    With ``T_cur`` the steps since the last restart and ``T_i`` the length of
    the current cycle (Loshchilov & Hutter 2017)::

        lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2
    """

    def __init__(
        self,
        optimizer: Any,
        T_0: int,
        T_mult: int = 1,
        eta_min: float = 0.0,
        unit: str = "epoch",
    ) -> None:
        super().__init__(optimizer, unit)
        self.T_0 = check_count("CosineWarmRestarts", "T_0", T_0)
        self.T_mult = check_count("CosineWarmRestarts", "T_mult", T_mult)
        self.eta_min = check_number("CosineWarmRestarts", "eta_min", eta_min, 0.0)
        self.require_positive_lr()
        self.start()

    def cycle(self, count: int) -> tuple[int, int]:
        """``(T_cur, T_i)``: the position in the cycle and the cycle's length."""
        if self.T_mult == 1:
            return count % self.T_0, self.T_0
        position, length = count, self.T_0
        while position >= length:
            position -= length
            length *= self.T_mult
        return position, length

    def scale_at(self, count: int) -> float:
        position, length = self.cycle(count)
        return self.relative(_cosine(self.base_lr, self.eta_min, position, length))

    def config(self) -> dict[str, Any]:
        return {
            "T_0": self.T_0,
            "T_mult": self.T_mult,
            "eta_min": self.eta_min,
            **super().config(),
        }
