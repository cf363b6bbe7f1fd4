"""Handles that remove what a registration added, and scopes that group them.

Every registration returns a :class:`HookHandle`. ``remove()`` is idempotent,
and a handle is a context manager that removes its hooks when the block ends,
also on error. A :class:`HookScope` (what ``model.hooks(...)`` returns) removes
exactly the hooks registered through it or handed to it with
:meth:`HookScope.add`, leaving every other hook in place. Scopes nest: each
removes only its own.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, TypeVar

from annlens.errors import HookError, StateError
from annlens.hooks.table import Hook, HookTable


class Removable(Protocol):
    """Anything with an idempotent ``remove()``: a handle, a recipe, a scope."""

    def remove(self) -> None: ...


R = TypeVar("R", bound=Removable)
S = TypeVar("S", bound="RemoveOnExit")


class RemoveOnExit:
    """Mixin: a context manager that calls ``self.remove()`` when the block ends.

    ``with`` gives back the object itself; leaving the block, also on error,
    removes it. Handles, scopes and recipes share this.
    """

    def remove(self) -> None:
        """Undo what the object added; each subclass defines it, idempotent."""
        raise NotImplementedError(f"{type(self).__name__} does not define remove")

    def __enter__(self: S) -> S:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove()


class HookHandle(RemoveOnExit):
    """The hooks one registration added, possibly on several layers.

    Attributes
    ----------
    points : list of str
        The hook points the registration reached, such as ``dense_0.forward``.
    """

    def __init__(self, entries: list[tuple[HookTable, Hook]]) -> None:
        self._entries = entries
        self.points = [hook.point for _, hook in entries]

    @property
    def active(self) -> bool:
        """Whether any hook of this handle is still registered."""
        return bool(self._entries)

    @property
    def paused(self) -> bool:
        """Whether the hooks of this handle are registered but not called."""
        return bool(self._entries) and all(hook.paused for _, hook in self._entries)

    def pause(self) -> None:
        """Stop calling these hooks, keeping their place in the firing order.

        A layer whose every hook is paused runs as if it had none, with no
        dispatch cost. Pausing a removed handle does nothing.
        """
        for table, hook in self._entries:
            table.pause(hook)

    def resume(self) -> None:
        """Call these hooks again, from the next time their stage fires."""
        for table, hook in self._entries:
            table.resume(hook)

    def remove(self) -> None:
        """Unregister every hook of this handle; calling it again does nothing."""
        for table, hook in self._entries:
            table.remove(hook)
        self._entries = []

    def __repr__(self) -> str:
        state = "paused" if self.paused else "active" if self.active else "removed"
        return f"HookHandle({', '.join(self.points)}; {state})"


class HookScope(RemoveOnExit):
    """A group of registrations removed together when the scope ends.

    Parameters
    ----------
    register : callable
        The registration function of the model, ``register(point, fn, **kw)``.
    """

    def __init__(self, register: Callable[..., HookHandle]) -> None:
        self._register = register
        self.handles: list[Removable] = []
        self.ended = False

    def register(
        self, point: str, fn: Callable[..., Any], **options: Any
    ) -> HookHandle:
        """Register ``fn`` at ``point`` for the life of this scope.

        ``options`` are those of ``model.register_hook``: ``layers``, ``prepend``.
        """
        self._check_open()
        handle = self._register(point, fn, **options)
        self.handles.append(handle)
        return handle

    def add(self, handle: R) -> R:
        """Make this scope remove ``handle`` (or a recipe) when it ends; return it."""
        if not callable(getattr(handle, "remove", None)):
            raise HookError(
                f"a scope adds things with a remove() method, got {handle!r}"
            )
        self._check_open()
        self.handles.append(handle)
        return handle

    def remove(self) -> None:
        """Remove every hook of this scope, newest first; again, it does nothing."""
        while self.handles:
            self.handles.pop().remove()
        self.ended = True

    def _check_open(self) -> None:
        if self.ended:
            raise StateError(
                "this hook scope has ended (its with block is over, or remove() "
                "ran), so it would never remove what is added now; help: register "
                "inside the block, or open a new scope with model.hooks(...)"
            )

    def __repr__(self) -> str:
        return f"HookScope({len(self.handles)} active registrations)"
