"""The config a run directory keeps: the experiment with every default filled in.

The schema fills its own defaults (``training.nan_guard = true``...). The
sections that name an object (optimizer, schedule, loss) hold only the
settings the file gave; :func:`recorded_config` adds the ones the named
object takes by default (SGD's ``momentum = 0.0``, a step schedule's
``unit = "epoch"``, a loss's ``reduction = "mean"``), so that ``config.toml``
is a complete record and builds the same objects when read back.

Left out: a schedule named ``"constant"`` (without settings none is built,
and with settings one would be), the loss ``"auto"`` (resolved from the data
when the run is built), the warm-up settings, which belong to the schedule
factory rather than to a schedule, and initialisers, whose defaults the
layers record in their checkpoints.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from annlens.experiment.schema import Experiment

PLAIN = (bool, int, float, str)


def recorded_config(experiment: Experiment) -> dict[str, Any]:
    """The experiment as a plain dict, each named object's defaults added.

    A variant's table is filled only when it names another object than the
    base's: one naming the same object merges into the base's table (see
    :func:`annlens.experiment.config.resolve_variants`), whose values it
    must keep.
    """
    config = experiment.model_dump(mode="json", exclude_none=True)
    for section, defaults in DEFAULTS.items():
        base = config[section]
        config[section] = _filled(base, defaults)
        for variant in config.get("variants", []):
            table = variant.get(section)
            if table and "name" in table and table["name"] != base["name"]:
                variant[section] = _filled(table, defaults)
    return config


def _filled(
    table: dict[str, Any], defaults: Callable[[str], dict[str, Any]]
) -> dict[str, Any]:
    """``table`` with the defaults of the object it names, its own values kept."""
    found = {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in defaults(str(table["name"])).items()
        if isinstance(value, PLAIN)
        or (isinstance(value, tuple) and all(isinstance(v, PLAIN) for v in value))
    }
    return {"name": table["name"], **found, **table}


def _optimizer_defaults(name: str) -> dict[str, Any]:
    from annlens.optim.registry import optimizer_class

    cls = optimizer_class(name)  # an unknown name is refused at build
    return dict(cls.defaults) if cls is not None else {}


def _schedule_defaults(name: str) -> dict[str, Any]:
    from annlens.optim.registry import schedule_class
    from annlens.optim.warmup import LinearWarmup

    cls = schedule_class(name)
    if name == "constant" or cls is None or cls is LinearWarmup:
        return {}
    return _signature_defaults(cls, skip=("optimizer", "after"))


def _loss_defaults(name: str) -> dict[str, Any]:
    from annlens.losses.registry import loss_class

    cls = loss_class(name)
    return _signature_defaults(cls, skip=()) if cls is not None else {}


def _signature_defaults(cls: type, skip: tuple[str, ...]) -> dict[str, Any]:
    """The keyword defaults of ``cls(...)``, but for the parameters in ``skip``."""
    parameters = inspect.signature(cls).parameters.values()
    return {
        p.name: p.default
        for p in parameters
        if p.name not in skip
        and p.default is not inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


DEFAULTS: dict[str, Callable[[str], dict[str, Any]]] = {
    "optimizer": _optimizer_defaults,
    "schedule": _schedule_defaults,
    "loss": _loss_defaults,
}
