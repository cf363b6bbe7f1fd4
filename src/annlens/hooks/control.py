"""Signals a hook raises to steer a run, as opposed to errors that report a fault.

:class:`StopForward` ends a forward pass early. It is not an error: the hook
dispatch lets it through unwrapped (every other exception from a hook becomes a
:class:`~annlens.errors.HookError`), ``model.capture`` catches it and returns
what it captured up to that point, and code that calls ``model.forward``
directly can catch it the same way.
"""

from __future__ import annotations

from typing import Any


class StopForward(Exception):
    """Raised in a forward-stage hook to end the forward pass after this hook point.

    The other hooks at the same hook point still run (so an observer registered
    after the stopping hook still sees the value), then the forward pass ends.
    The dispatch fills in where it stopped and the value passed on there.

    Attributes
    ----------
    point : str or None
        The hook point where the forward stopped, ``dense_1.forward``.
    value : ndarray or None
        The value passed on at that point (read-only): the layer output for
        ``forward``, ``a`` for ``post_activation``, and so on.

    Notes
    -----
    Raising it at a backward stage is refused: a backward pass stopped half
    way would leave some layers with this step's gradients and others with the
    last one's. Layers after the stop keep nothing from this pass, so a
    backward after a stopped forward is refused too.
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason or "forward stopped by a hook")
        self.point: str | None = None
        self.value: Any = None

    def __repr__(self) -> str:
        return f"StopForward(point={self.point!r})"
