"""The model-level hook API of :class:`~annlens.model.Sequential`.

Registering a hook at hook points chosen by stage, name or glob; scopes whose
hooks go when a ``with`` block ends; listing and clearing; and ``capture``,
one pass whose every value comes back as a copy. The per-owner bookkeeping
(firing order, pausing, read-only views) lives in :mod:`annlens.hooks.table`;
this file only chooses the owners and stages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from annlens.errors import HookError, did_you_mean
from annlens.hooks import HookHandle, HookScope, resolve_points
from annlens.hooks.select import LayerFilter
from annlens.hooks.stages import STAGES
from annlens.hooks.table import check_callable, wants_context
from annlens.model.capture import Capture, capture


class HookAPI:
    """Hook methods of a model with ``layers`` and a ``loss_point``."""

    layers: list[Any]
    loss_point: Any

    def hook_owners(self) -> list[Any]:
        """Everything that has hook points: the layers, then the loss point."""
        return [*self.layers, self.loss_point]

    def register_hook(
        self,
        point: str,
        fn: Callable[..., Any],
        *,
        layers: LayerFilter = None,
        prepend: bool = False,
    ) -> HookHandle:
        """Register ``fn`` at every hook point that ``point`` and ``layers`` select.

        Parameters
        ----------
        point : str
            A stage (``"forward"``: every layer), a hook point
            (``"dense_1.pre_activation"``) or a glob (``"dense_*.backward"``).
        fn : callable
            The hook, called as the stage's signature says
            (see :mod:`annlens.hooks.stages`); it receives a
            :class:`~annlens.hooks.HookContext` when it takes ``ctx``.
        layers : str, type, callable or list of these, optional
            Narrow to layers by name or glob, by type, or by a predicate.
        prepend : bool
            Fire before the hooks already registered there.

        Returns
        -------
        HookHandle
            ``handle.remove()`` unregisters it; also a context manager.
        """
        if not callable(fn):
            raise HookError(f"a hook must be callable, got {fn!r}")
        if not isinstance(prepend, bool):
            raise HookError(f"prepend must be True or False, got {prepend!r}")
        chosen = resolve_points(self.hook_owners(), point, layers)
        context = wants_context(fn)
        # Check every point first, so that a refused hook leaves none behind.
        for owner, stage in chosen:
            check_callable(fn, STAGES[stage], f"{owner.name}.{stage}", context)
        entries = [
            (
                owner.hook_table,
                owner.hook_table.add(stage, fn, prepend=prepend, context=context),
            )
            for owner, stage in chosen
        ]
        return HookHandle(entries)

    def hooks(self, *specs: tuple[Any, ...] | dict[str, Any]) -> HookScope:
        """A scope whose hooks are removed when its ``with`` block ends.

        Parameters
        ----------
        *specs : tuple or dict
            ``(point, fn)``, ``(point, fn, {"layers": ..., "prepend": ...})``
            or ``{point: fn, ...}``, registered in the order given. More can be
            added in the block with ``scope.register(...)`` and
            ``scope.add(handle)``.

        Examples
        --------
        >>> keep = lambda layer, input, output: seen.append(output)
        >>> with model.hooks(("forward", keep)) as scope:  # doctest: +SKIP
        ...     scope.register("dense_0.backward", other)
        ...     model.forward(x)
        """
        scope = HookScope(self.register_hook)
        try:
            for spec in specs:
                entries = spec.items() if isinstance(spec, dict) else [spec]
                for entry in entries:
                    if not isinstance(entry, tuple) or len(entry) not in (2, 3):
                        raise HookError(
                            "model.hooks() takes (point, fn), (point, fn, options) "
                            f"or {{point: fn}}, got {entry!r}"
                        )
                    point, fn, *options = entry
                    settings = options[0] if options else {}
                    _check_hook_options(settings, entry)
                    scope.register(point, fn, **settings)
        except BaseException:
            scope.remove()
            raise
        return scope

    def list_hooks(self) -> list[tuple[str, str]]:
        """``(hook point, hook name)`` for every registered hook.

        Layers in model order, then the loss point; within a layer, stages in
        the order a pass reaches them and hooks in firing order.
        """
        return [
            (hook.point, hook.label)
            for owner in self.hook_owners()
            for hook in owner.hook_table.hooks()
        ]

    def clear_hooks(self) -> None:
        """Remove every hook from every layer and the loss point."""
        for owner in self.hook_owners():
            owner.hook_table.clear()

    def capture(
        self,
        x: Any,
        y: Any = None,
        loss: Any = None,
        points: str | Sequence[str] | None = None,
        layers: LayerFilter = None,
    ) -> Capture:
        """Run one forward (and backward) pass and return copies of what it saw.

        See :func:`annlens.model.capture.capture`, which this calls: the
        result maps hook point names to copies (``"dense_0.forward"`` to the
        output, ``"dense_0.gradient"`` to ``{"W": ..., "b": ...}``), and the
        model's parameters, gradients, caches and generator are left as they
        were.
        """
        return capture(self, x, y, loss, points=points, layers=layers)


def _check_hook_options(options: Any, entry: tuple[Any, ...]) -> None:
    """Refuse the options of a ``(point, fn, options)`` entry that are not known."""
    allowed = ("layers", "prepend")
    if not isinstance(options, dict):
        raise HookError(
            f"model.hooks() takes options as a dict of {' and '.join(allowed)}, "
            f"got {options!r} in {entry!r}"
        )
    for key in options:
        if key not in allowed:
            raise HookError(
                f"model.hooks() has no option {key!r}"
                f"{did_you_mean(str(key), list(allowed))} in {entry!r}; "
                f"options: {', '.join(allowed)}"
            )
