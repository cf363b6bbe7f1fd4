"""Which hook points a registration reaches.

A registration names a point as a stage (``"forward"``: every layer that has
it), an exact hook point (``"dense_1.pre_activation"``) or a glob pattern over
hook points (``"dense_*.backward"``, ``"*.pre_activation*"``). An optional
layer filter narrows it further: a layer name or glob, a layer type, or a
predicate ``fn(layer) -> bool``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from typing import Any

from annlens.errors import HookError, did_you_mean
from annlens.hooks.stages import STAGES

LayerFilter = str | type | Callable[[Any], bool] | None


def _accepts(layer: Any, layers: LayerFilter) -> bool:
    if layers is None:
        return True
    if isinstance(layers, str):
        return fnmatch.fnmatchcase(layer.name, layers)
    if isinstance(layers, type):
        return isinstance(layer, layers)
    if callable(layers):
        return bool(layers(layer))
    raise HookError(
        f"layers= takes a name or glob, a layer type or a predicate, got {layers!r}"
    )


def resolve_points(
    owners: Sequence[Any], point: str, layers: LayerFilter = None
) -> list[tuple[Any, str]]:
    """Return the ``(owner, stage)`` pairs that ``point`` and ``layers`` select.

    Raises
    ------
    HookError
        When nothing matches, listing the hook points that exist.
    """
    if not isinstance(point, str):
        raise HookError(f"a hook point is a string, got {point!r}")
    pattern = point if "." in point else f"*.{point}"
    if "." not in point and point not in STAGES:
        raise HookError(
            f"unknown hook stage {point!r}{did_you_mean(point, list(STAGES))}; "
            f"known: {', '.join(STAGES)}"
        )

    chosen = [
        (owner, stage)
        for owner in owners
        if _accepts(owner, layers)
        for stage in owner.stages
        if fnmatch.fnmatchcase(f"{owner.name}.{stage}", pattern)
    ]
    if not chosen:
        known = [f"{owner.name}.{stage}" for owner in owners for stage in owner.stages]
        raise HookError(
            f"no hook point matches {point!r}"
            + (f" with layers={layers!r}" if layers is not None else "")
            + f"{did_you_mean(point, known)}; hook points: {', '.join(known)}"
        )
    return chosen
