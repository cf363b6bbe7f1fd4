"""Which hook points a registration reaches.

A registration names its points in one of three ways:

- a stage, ``"forward"``: that stage at every layer that has it;
- an exact hook point, ``"dense_1.pre_activation"``;
- a glob pattern over hook points, ``"dense_*.backward"``, ``"*.pre_activation*"``,
  or over stages alone, ``"*_activation"`` (a pattern without a dot).

An optional layer filter narrows it further: a layer name or glob, a layer
type, a predicate ``fn(layer) -> bool``, or a list of these (any may match).
Per-parameter stages (``gradient``, ``update``) exist only at layers that have
parameters.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from typing import Any

from annlens.errors import HookError, did_you_mean
from annlens.hooks.stages import STAGES

LayerFilter = str | type | Callable[[Any], bool] | Sequence[Any] | None

_GLOB = set("*?[")


def _accepts(layer: Any, layers: LayerFilter) -> bool:
    """Whether ``layer`` passes the filter ``layers``."""
    if layers is None:
        return True
    if isinstance(layers, str):
        return fnmatch.fnmatchcase(layer.name, layers)
    if isinstance(layers, type):
        return isinstance(layer, layers)
    if isinstance(layers, (list, tuple)):
        return any(_accepts(layer, one) for one in layers)
    if callable(layers):
        return bool(layers(layer))
    raise HookError(
        "layers= takes a name or glob, a layer type, a predicate or a list of "
        f"these, got {layers!r}"
    )


def hook_points(owner: Any) -> list[str]:
    """The stages ``owner`` really has: per-parameter ones need parameters."""
    has_params = bool(getattr(owner, "params", None))
    return [
        stage
        for stage in owner.stages
        if has_params or not (stage in STAGES and STAGES[stage].per_parameter)
    ]


def _pattern(point: str) -> str:
    """The glob over full hook point names that ``point`` stands for."""
    if not isinstance(point, str) or not point:
        raise HookError(f"a hook point is a non-empty string, got {point!r}")
    if "." in point:
        return point
    if point in STAGES:
        return f"*.{point}"
    if _GLOB & set(point) and any(fnmatch.fnmatchcase(s, point) for s in STAGES):
        return f"*.{point}"
    raise HookError(
        f"unknown hook stage {point!r}{did_you_mean(point, list(STAGES))}; "
        f"known: {', '.join(STAGES)}; help: name a stage, a hook point such as "
        "'dense_0.forward', or a glob such as 'dense_*.backward'"
    )


def resolve_points(
    owners: Sequence[Any], point: str, layers: LayerFilter = None
) -> list[tuple[Any, str]]:
    """Return the ``(owner, stage)`` pairs that ``point`` and ``layers`` select.

    Owners come in the order given (layer order, then the loss point) and
    stages in each owner's own order. The layer filter is only asked about
    owners that have a matching hook point.

    Raises
    ------
    HookError
        When nothing matches, listing the hook points that exist.
    """
    pattern = _pattern(point)
    _check_names(owners, layers)
    chosen = []
    for owner in owners:
        stages = [
            stage
            for stage in hook_points(owner)
            if fnmatch.fnmatchcase(f"{owner.name}.{stage}", pattern)
            or f"{owner.name}.{stage}" == point  # a name holding "[" or "*"
        ]
        if stages and _accepts(owner, layers):
            chosen += [(owner, stage) for stage in stages]

    if not chosen:
        _explain_miss(owners, point, pattern, layers)
        known = [
            f"{owner.name}.{stage}" for owner in owners for stage in hook_points(owner)
        ]
        raise HookError(
            f"no hook point matches {point!r}"
            + (f" with layers={layers!r}" if layers is not None else "")
            + f"{did_you_mean(point, known)}; hook points: {', '.join(known)}"
        )
    return chosen


def _check_names(owners: Sequence[Any], layers: LayerFilter) -> None:
    """Refuse a plain name in a ``layers=`` list that is no layer's name.

    A list selects the layers any of its entries accepts, so a misspelt name
    beside a right one would otherwise be dropped without a word. Globs may
    match nothing; a single name that matches nothing is refused later, with
    the hook points that exist.
    """
    entry = unknown_name(layers, [owner.name for owner in owners])
    if entry is not None:
        # the loss point is an owner of hook points, not a layer
        names = [owner.name for owner in owners if owner.index is not None]
        raise HookError(
            f"layers= names {entry!r}, which is no layer of the model"
            f"{did_you_mean(entry, names)}; layers: {', '.join(names)}"
        )


def unknown_name(layers: LayerFilter, names: Sequence[str]) -> str | None:
    """The first plain name (no glob) in a ``layers=`` list that is none of
    ``names``; None when there is none or ``layers`` is not a list."""
    if not isinstance(layers, (list, tuple)):
        return None
    for entry in layers:
        if isinstance(entry, str) and not _GLOB & set(entry) and entry not in names:
            return entry
    return None


def _explain_miss(
    owners: Sequence[Any], point: str, pattern: str, layers: LayerFilter
) -> None:
    """Raise a precise HookError for the two misses a did-you-mean misreads.

    The point exists but the layer filter excludes every layer that has it;
    or the point names a per-parameter stage at a layer without parameters.
    """
    having = [
        owner.name
        for owner in owners
        if any(
            fnmatch.fnmatchcase(f"{owner.name}.{stage}", pattern)
            for stage in hook_points(owner)
        )
    ]
    if having and layers is not None:
        # the loss point is an owner of hook points, not a layer
        names = ", ".join(owner.name for owner in owners if owner.index is not None)
        raise HookError(
            f"hook point {point!r} is at {', '.join(having)}, but layers={layers!r} "
            f"selects none of them; layers: {names}"
        )
    stage = point.rpartition(".")[2]
    if stage in STAGES and STAGES[stage].per_parameter:
        bare = [
            owner.name
            for owner in owners
            if stage in owner.stages
            and fnmatch.fnmatchcase(f"{owner.name}.{stage}", pattern)
            and stage not in hook_points(owner)
        ]
        if bare:
            with_params = [o.name for o in owners if stage in hook_points(o)]
            raise HookError(
                f"no hook point matches {point!r}: the {stage!r} stage exists only "
                f"at layers with parameters, and {', '.join(bare)} has none; "
                f"layers with parameters: {', '.join(with_params) or 'none'}"
            )
