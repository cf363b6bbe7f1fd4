"""Looking optimizers and schedules up by name, as an experiment file names them.

``get_optimizer("adam", model, lr=1e-3)`` and
``get_schedule("cosine", optimizer, T_max=20)`` build the named object with
the given settings; an unknown name is refused listing the known ones, and an
unknown setting listing the allowed ones. Any schedule can be given a linear
warm-up in front with ``warmup_steps`` (and ``warmup_start_factor``).
"""

from __future__ import annotations

import inspect
from typing import Any

from annlens.errors import ConfigError, UnknownNameError, did_you_mean, unknown_name
from annlens.optim.adam import Adam, Adamax, AdamW, NAdam
from annlens.optim.adaptive import Adadelta, Adagrad, RMSProp
from annlens.optim.base import Optimizer
from annlens.optim.one_cycle import OneCycle
from annlens.optim.plateau import ReduceOnPlateau
from annlens.optim.schedules import (
    Constant,
    CosineAnnealing,
    CosineWarmRestarts,
    ExponentialDecay,
    MultiStepDecay,
    Schedule,
    StepDecay,
)
from annlens.optim.sgd import SGD
from annlens.optim.warmup import LinearWarmup

_OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adagrad": Adagrad,
    "rmsprop": RMSProp,
    "adadelta": Adadelta,
    "adam": Adam,
    "adamw": AdamW,
    "nadam": NAdam,
    "adamax": Adamax,
}

_SCHEDULES: dict[str, type[Schedule]] = {
    "constant": Constant,
    "step": StepDecay,
    "multistep": MultiStepDecay,
    "exponential": ExponentialDecay,
    "cosine": CosineAnnealing,
    "cosine_restarts": CosineWarmRestarts,
    "warmup": LinearWarmup,
    "one_cycle": OneCycle,
    "plateau": ReduceOnPlateau,
}


def register_optimizer(name: str, cls: type[Optimizer]) -> type[Optimizer]:
    """Make ``cls`` available as ``name`` to :func:`get_optimizer`."""
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise ConfigError(
            f"register_optimizer({name!r}) expects an Optimizer subclass, got {cls!r}"
        )
    _OPTIMIZERS[name] = cls
    return cls


def register_schedule(name: str, cls: type[Schedule]) -> type[Schedule]:
    """Make ``cls`` available as ``name`` to :func:`get_schedule`."""
    if not (isinstance(cls, type) and issubclass(cls, Schedule)):
        raise ConfigError(
            f"register_schedule({name!r}) expects a Schedule subclass, got {cls!r}"
        )
    _SCHEDULES[name] = cls
    return cls


def optimizer_names() -> list[str]:
    """The registered optimizer names, sorted."""
    return sorted(_OPTIMIZERS)


def schedule_names() -> list[str]:
    """The registered schedule names, sorted."""
    return sorted(_SCHEDULES)


def optimizer_class(name: str) -> type[Optimizer] | None:
    """The optimizer class registered as ``name`` (any case), or None."""
    return _OPTIMIZERS.get(name.lower())


def schedule_class(name: str) -> type[Schedule] | None:
    """The schedule class registered as ``name`` (any case), or None."""
    return _SCHEDULES.get(name.lower())


def get_optimizer(name: str | Optimizer, model: Any, **settings: Any) -> Optimizer:
    """Build the optimizer called ``name`` for ``model``.

    Parameters
    ----------
    name : str or Optimizer
        A registered name (``"sgd"``, ``"adam"``, ...); an Optimizer instance
        is returned unchanged.
    model : Sequential
        The model to optimise.
    **settings
        Hyperparameters, and ``groups`` for per-parameter ones.

    Raises
    ------
    UnknownNameError
        For an unknown name, listing the known ones.
    ConfigError
        For an unknown or out-of-range hyperparameter.
    """
    if isinstance(name, Optimizer):
        return name
    if not isinstance(name, str) or name.lower() not in _OPTIMIZERS:
        raise UnknownNameError(unknown_name("optimizer", str(name), optimizer_names()))
    return _OPTIMIZERS[name.lower()](model, **settings)


def get_schedule(
    name: str | Schedule,
    optimizer: Optimizer,
    warmup_steps: int = 0,
    warmup_start_factor: float = 0.1,
    **settings: Any,
) -> Schedule:
    """Build the schedule called ``name`` on ``optimizer``.

    Parameters
    ----------
    name : str or Schedule
        A registered name (``"cosine"``, ``"plateau"``, ...); a Schedule
        instance is returned unchanged.
    optimizer : Optimizer
        The optimizer whose ``lr_scale`` the schedule sets.
    warmup_steps : int
        When > 0, a :class:`LinearWarmup` of this many steps runs first and
        hands over to the named schedule.
    warmup_start_factor : float
        The warm-up's factor at step 0.
    **settings
        The schedule's own settings (``T_max``, ``gamma``, ``unit``, ...).

    Raises
    ------
    UnknownNameError
        For an unknown name, listing the known ones.
    ConfigError
        For an unknown setting, listing the allowed ones, or a bad value.
    """
    if isinstance(name, Schedule):
        return name
    if not isinstance(name, str) or name.lower() not in _SCHEDULES:
        raise UnknownNameError(unknown_name("schedule", str(name), schedule_names()))
    cls = _SCHEDULES[name.lower()]
    if cls is LinearWarmup:
        settings = {
            "warmup_steps": warmup_steps,
            "start_factor": warmup_start_factor,
            **settings,
        }
    _check_settings(name, cls, settings)
    schedule = cls(optimizer, **settings)
    if warmup_steps and not isinstance(schedule, LinearWarmup):
        return LinearWarmup(
            optimizer, warmup_steps, warmup_start_factor, after=schedule
        )
    return schedule


def _check_settings(name: str, cls: type[Schedule], settings: dict[str, Any]) -> None:
    """Refuse unknown settings and missing required ones, naming them."""
    parameters = dict(inspect.signature(cls.__init__).parameters)
    for skipped in ("self", "optimizer"):
        parameters.pop(skipped, None)
    allowed = list(parameters)
    for key in settings:
        if key not in parameters:
            raise ConfigError(
                f"schedule {name!r} has no setting {key!r}"
                f"{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}"
            )
    missing = [
        key
        for key, parameter in parameters.items()
        if parameter.default is inspect.Parameter.empty and key not in settings
    ]
    if missing:
        raise ConfigError(
            f"schedule {name!r} needs the setting(s) {', '.join(missing)}; "
            f"allowed: {', '.join(allowed)}"
        )
