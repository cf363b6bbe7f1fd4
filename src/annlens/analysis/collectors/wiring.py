"""Hook wiring of the Recorder: which collectors listen at which hook, and the hooks.

:func:`listeners_by_hook` groups a layer's listening collectors by hook stage,
:func:`make_hook` builds the function registered there, which hands each
firing to :meth:`Recorder._dispatch <annlens.analysis.collectors.recorder.Recorder>`.
:func:`matches` applies the recorder's ``layers=`` filter.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from annlens.analysis.collectors.base import (
    HOOK_STAGE,
    PARAMETER_FAMILIES,
    Collector,
    available_stages,
    stage_family,
)
from annlens.analysis.collectors.reductions import Array
from annlens.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from annlens.analysis.collectors.recorder import Recorder


def listeners_by_hook(
    layer: Any, collectors: list[Collector], selected: Callable[[Any], bool]
) -> dict[str, dict[str, list[Collector]]]:
    """The collectors listening at ``layer``: hook stage -> table stage -> list.

    ``selected(layer)`` says whether the layer passes the recorder's filter;
    model-wide collectors listen at every layer regardless.
    """
    listeners: dict[str, list[Collector]] = {}
    for collector in collectors:
        if not (collector.model_wide or selected(layer)):
            continue
        for stage in collector.stages(layer):
            _check_stage(collector, layer, stage)
            listeners.setdefault(stage, []).append(collector)
    by_hook: dict[str, dict[str, list[Collector]]] = {}
    for stage, listening in listeners.items():
        hook = HOOK_STAGE[stage_family(stage)]
        by_hook.setdefault(hook, {})[stage] = listening
    return by_hook


def _check_stage(collector: Collector, layer: Any, stage: Any) -> None:
    """Refuse a table stage that ``layer`` cannot feed, naming the collector."""
    family, _, param = str(stage).partition(":")
    hook = HOOK_STAGE.get(family)
    fits = (
        isinstance(stage, str)
        and hook is not None
        and hook != "loss"
        and hook in getattr(layer, "stages", ())
        and (family in PARAMETER_FAMILIES) == bool(param)
        and (not param or param in (getattr(layer, "params", {}) or {}))
    )
    if not fits:
        known = available_stages(layer)
        raise ConfigError(
            f"collector {collector.name!r} asks for stage {stage!r} at layer "
            f"{layer.name!r}{did_you_mean(str(stage), known)}, which it cannot "
            f"feed; {layer.name} feeds: {', '.join(known) or 'nothing'}"
        )


def make_hook(
    recorder: Recorder, hook_stage: str, table: dict[str, list[Collector]]
) -> Callable[..., None]:
    """The hook function for one layer and hook stage."""
    dispatch = recorder._dispatch
    if hook_stage in ("gradient", "update"):
        family = "gradient" if hook_stage == "gradient" else "update"
        per_name = {
            stage.split(":", 1)[1]: stage
            for stage in table
            if stage_family(stage) == family
        }
        param_stages = {
            stage.split(":", 1)[1]: stage
            for stage in table
            if stage_family(stage) == "param"
        }

        def per_parameter(layer: Any, name: str, value: Array) -> None:
            if name in param_stages:
                stage = param_stages[name]
                param = layer.params[name]
                dispatch(layer, stage, param, table[stage], name, True)
            if name in per_name:
                stage = per_name[name]
                dispatch(layer, stage, value, table[stage], name)

        per_parameter.__qualname__ = f"Recorder.{hook_stage}"
        return per_parameter

    ((stage, collectors),) = table.items()
    if hook_stage in ("forward", "backward"):

        def two_arguments(layer: Any, first: Array, second: Array) -> None:
            dispatch(layer, stage, second if stage == "output" else first, collectors)

        two_arguments.__qualname__ = f"Recorder.{hook_stage}"
        return two_arguments
    if hook_stage == "loss":

        def loss(point: Any, value: float, grad: Array) -> None:
            dispatch(point, stage, np.asarray(value, dtype=np.float64), collectors)

        loss.__qualname__ = "Recorder.loss"
        return loss

    def one_argument(layer: Any, value: Array) -> None:
        dispatch(layer, stage, value, collectors)

    one_argument.__qualname__ = f"Recorder.{hook_stage}"
    return one_argument


def any_listening(collectors: list[Collector], step: int, recorder: Recorder) -> bool:
    """Whether one of ``collectors`` observes ``step`` off the recorded grid."""
    for collector in collectors:
        if collector.listens_at(step, recorder):
            return True
    return False


def matches(layer: Any, selection: Any) -> bool:
    """Whether ``layer`` passes a layer filter: name glob, type, predicate, list."""
    if selection is None:
        return True
    if isinstance(selection, str):
        return fnmatch.fnmatchcase(layer.name, selection)
    if isinstance(selection, type):
        return isinstance(layer, selection)
    if isinstance(selection, (list, tuple)):
        return any(matches(layer, one) for one in selection)
    if callable(selection):
        return bool(selection(layer))
    raise ConfigError(
        "Recorder layers= takes a name or glob, a layer type, a predicate or a "
        f"list of these, got {selection!r}"
    )
