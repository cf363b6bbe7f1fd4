"""Choosing parameters by glob over qualified names (``"dense_0.*"``, ``"*.W"``).

Penalties, clipping and constraints all act on a chosen set of parameters;
this is where the choice is made, and where a pattern that matches nothing
is refused instead of silently doing nothing. :class:`PatternSelected` is the
base that penalties and constraints share: it holds the patterns, chooses the
parameters and shows the pattern in ``config()`` and the repr.
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


class PatternSelected:
    """Base of what acts on the parameters chosen by glob patterns.

    Parameters
    ----------
    pattern : str or list of str
        Globs over qualified parameter names (default ``"*.W"``: every weight
        matrix and no bias).
    """

    def __init__(self, pattern: str | Sequence[str] = "*.W") -> None:
        self.patterns = as_patterns(pattern, type(self).__name__)

    def chosen(self, model: Any) -> list[Slot]:
        """``(qualified name, layer, key)`` of each parameter the patterns match."""
        return select_parameters(model, self.patterns, type(self).__name__)

    def config(self) -> dict[str, Any]:
        """The settings, for display and run records."""
        pattern = self.patterns[0] if len(self.patterns) == 1 else list(self.patterns)
        return {"pattern": pattern}

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({settings})"
