"""The exceptions annlens raises for user errors, all in one place.

Every class derives from :class:`AnnlensError`, so ``except AnnlensError``
catches anything annlens refuses on purpose. Each message names what was
expected, what arrived and where (layer, hook point, config key), and adds a
``help:`` line when the fix is not obvious. Internal invariants use ``assert``.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Mapping
from typing import Any


class AnnlensError(Exception):
    """Base class of every error annlens raises on purpose."""


class ShapeError(AnnlensError, ValueError):
    """An array has the wrong shape for where it is used."""


class InputError(AnnlensError, ValueError):
    """An input batch is empty, non-numeric or holds NaN or Inf."""


class LabelError(AnnlensError, ValueError):
    """Targets are out of range, of the wrong kind or the wrong shape."""


class ConfigError(AnnlensError, ValueError):
    """A setting, hyperparameter or name is not allowed."""


class UnknownNameError(ConfigError, KeyError):
    """A name (activation, initialiser, optimizer, ...) is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StateError(AnnlensError, RuntimeError):
    """A call came in the wrong order, such as backward before forward."""


class HookError(AnnlensError, RuntimeError):
    """A hook raised, or returned a replacement that does not fit."""


class NonFiniteError(AnnlensError, FloatingPointError):
    """NaN or Inf appeared in a loss, an activation or a gradient.

    ``step``, ``layer`` and ``stage`` say where; ``count`` is how many NaN and
    Inf the offending array held (None where it was not counted).
    """

    def __init__(
        self,
        message: str,
        *,
        step: int | None = None,
        layer: str | None = None,
        stage: str | None = None,
        count: int | None = None,
    ) -> None:
        super().__init__(message)
        self.step = step
        self.layer = layer
        self.stage = stage
        self.count = count


class CheckpointError(AnnlensError, ValueError):
    """A checkpoint file is missing, damaged, altered or not from annlens."""


class RunLockedError(AnnlensError, RuntimeError):
    """A run directory is in use: another process runs or resumes it."""


class DataError(AnnlensError, ValueError):
    """A data set or data file cannot be used as asked."""


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest known name, or ``""``."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_count(what: str, value: Any, low: int = 1, hint: str = "") -> int:
    """Return ``value`` as an int, or raise unless it is an integer >= ``low``.

    ``True`` and ``False`` are refused, though Python counts them as integers.

    Raises
    ------
    ConfigError
        ``"{what} must be an integer >= {low}, got {value!r}"``, then ``hint``.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < low
    ):
        raise ConfigError(f"{what} must be an integer >= {low}, got {value!r}{hint}")
    return int(value)


def check_settings(
    kind: str, name: str, factory: Callable[..., Any], settings: Mapping[str, Any]
) -> None:
    """Refuse keyword settings that ``factory`` does not take, listing the allowed.

    Raises
    ------
    ConfigError
        Naming the setting, the closest allowed one and every allowed one.
    """
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return
    allowed = [
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
    ]
    for key in settings:
        if key not in allowed:
            listing = ", ".join(allowed) if allowed else "none"
            raise ConfigError(
                f"{kind} {name!r} has no setting {key!r}"
                f"{did_you_mean(key, allowed)}; allowed: {listing}"
            )


def unknown_name(kind: str, name: str, known: list[str] | tuple[str, ...]) -> str:
    """The message for an unknown registered name, listing the known ones."""
    listing = ", ".join(sorted(known))
    return f"unknown {kind} {name!r}{did_you_mean(name, known)}; known: {listing}"
