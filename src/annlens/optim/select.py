"""Choosing parameters by glob over qualified names (``"dense_0.*"``, ``"*.W"``).

Penalties, clipping and constraints all act on a chosen set of parameters;
this is where the choice is made, and where a pattern that matches nothing
is refused instead of silently doing nothing.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from annlens.errors import ConfigError
from annlens.layers.base import Layer

Slot = tuple[str, Layer, str]


def as_patterns(pattern: str | Sequence[str], owner: str) -> tuple[str, ...]:
    """One glob or several, as a non-empty tuple of strings."""
    patterns = (pattern,) if isinstance(pattern, str) else tuple(pattern)
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise ConfigError(
            f"{owner} pattern must be a glob or a list of globs over parameter "
            f"names such as '*.W', got {pattern!r}"
        )
    return patterns


def select_parameters(model: Any, patterns: tuple[str, ...], owner: str) -> list[Slot]:
    """``(qualified name, layer, key)`` for each parameter a pattern matches.

    Raises
    ------
    ConfigError
        When no parameter matches, naming the patterns and the parameters.
    """
    slots = [
        (f"{layer.name}.{key}", layer, key)
        for layer in model.layers
        for key in layer.params
    ]
    chosen = [
        slot for slot in slots if any(fnmatch.fnmatchcase(slot[0], p) for p in patterns)
    ]
    if not chosen:
        names = ", ".join(q for q, _, _ in slots)
        raise ConfigError(
            f"{owner} pattern {list(patterns)} matches no parameter; "
            f"parameters: {names}"
        )
    return chosen
