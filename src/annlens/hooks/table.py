"""The hooks of one owner (a layer, or a model's loss point) and their dispatch.

A :class:`HookTable` keeps, per stage, a tuple of hooks in firing order.
Adding or removing replaces the tuple instead of editing it, so a dispatch in
progress keeps iterating the tuple it started with: a hook added or removed
while hooks run takes effect from the next dispatch.

A hook can be *paused*: it keeps its place in the firing order but is not
called, and a table whose hooks are all paused leaves ``owner.hooked`` false,
so that a paused hook costs the hot path nothing. Samplers (the recorder
writes rows one step in ten, say) pause their hooks between the steps they
read.

``fire`` hands each hook read-only views, lets a returned array replace the
value passed on (later hooks see the replacement), refuses a replacement of
the wrong shape or dtype, and wraps anything a hook raises in a
:class:`~annlens.errors.HookError` naming the hook and the hook point. The one
exception let through is :class:`~annlens.hooks.control.StopForward`, a
signal rather than a fault.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annlens.errors import HookError
from annlens.hooks.context import HookContext
from annlens.hooks.control import StopForward
from annlens.hooks.stages import STAGES, Stage

HookFn = Callable[..., Any]
_ids = itertools.count()


def wants_context(fn: HookFn) -> bool:
    """Whether ``fn`` takes a ``ctx`` keyword (or ``**kwargs``)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "ctx" or p.kind is p.VAR_KEYWORD for p in parameters)


def check_callable(fn: HookFn, stage: Stage, point: str, context: bool) -> None:
    """Refuse ``fn`` when it cannot be called as the hooks of ``stage`` are.

    Checked once at registration, so that a hook of the wrong signature fails
    where it is registered rather than in the middle of a pass. A callable
    whose signature Python cannot read (some builtins) is let through.
    """
    if not callable(fn):
        raise HookError(f"a hook must be callable, got {fn!r}")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    arguments = ("layer", *stage.arguments)
    try:
        if context:
            signature.bind(*arguments, ctx=None)
        else:
            signature.bind(*arguments)
    except TypeError as error:
        raise HookError(
            f"hook {hook_label(fn)}{signature} cannot be called at {point} as "
            f"{stage.signature}: {error}; help: give it the parameters "
            f"({', '.join(arguments)}), or (*args) to take any"
        ) from None


def hook_label(fn: HookFn) -> str:
    """A readable name for a hook function, for messages and listings."""
    return getattr(fn, "__qualname__", None) or repr(fn)


@dataclass(eq=False)
class Hook:
    """One registered hook: the function, its stage and its hook point."""

    fn: HookFn
    stage: Stage
    point: str
    wants_context: bool
    id: int = field(default_factory=lambda: next(_ids))
    paused: bool = False

    @property
    def label(self) -> str:
        return hook_label(self.fn)

    def __repr__(self) -> str:
        state = "; paused" if self.paused else ""
        return f"Hook({self.label} at {self.point!r}{state})"


def _read_only(value: Any) -> Any:
    """A read-only view of an array; anything else unchanged."""
    if isinstance(value, np.ndarray) and value.flags.writeable:
        value = value.view()
        value.flags.writeable = False
    return value


class HookOwner:
    """An object with hook points, whose hooks stay behind when it is copied.

    ``copy.deepcopy`` and ``pickle`` give an object with an empty hook table:
    hooks belong to the object they were registered on, and a hook (a
    lambda, a recorder holding a file) often cannot be pickled at all.
    Subclasses set ``hook_table`` and ``hooked`` in ``__init__``.
    """

    hook_table: HookTable
    hooked: bool

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["hook_table"] = None
        state["hooked"] = False
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.hook_table = HookTable(self)


class HookTable:
    """The hooks of one owner, per stage, in firing order.

    The owner is a layer (or a model's loss point) with attributes ``name``,
    ``index``, ``state`` and ``hooked``; the table keeps ``owner.hooked`` true
    exactly while it holds at least one hook that is not paused, which is the
    one cheap check a layer makes before dispatching.
    """

    def __init__(self, owner: Any) -> None:
        self.owner = owner
        self._hooks: dict[str, tuple[Hook, ...]] = {}
        self._live: dict[str, tuple[Hook, ...]] = {}
        owner.hooked = False

    def _sync(self, stage: str) -> None:
        """Rebuild the tuple of hooks that fire at ``stage``, and ``owner.hooked``."""
        live = tuple(hook for hook in self._hooks.get(stage, ()) if not hook.paused)
        if live:
            self._live[stage] = live
        else:
            self._live.pop(stage, None)
        self.owner.hooked = bool(self._live)

    def add(
        self,
        stage: str,
        fn: HookFn,
        *,
        prepend: bool = False,
        context: bool | None = None,
    ) -> Hook:
        """Register ``fn`` at ``stage``; first in line when ``prepend``.

        ``context`` says whether ``fn`` takes ``ctx``; None works it out (a
        caller adding one function at many points works it out once).
        """
        if not callable(fn):
            raise HookError(f"a hook must be callable, got {fn!r}")
        if context is None:
            context = wants_context(fn)
        point = f"{self.owner.name}.{stage}"
        check_callable(fn, STAGES[stage], point, context)
        hook = Hook(fn, STAGES[stage], point, context)
        current = self._hooks.get(stage, ())
        self._hooks[stage] = (hook, *current) if prepend else (*current, hook)
        self._sync(stage)
        return hook

    def remove(self, hook: Hook) -> bool:
        """Unregister ``hook``; False when it was not (or no longer) here."""
        current = self._hooks.get(hook.stage.name, ())
        if hook not in current:
            return False
        remaining = tuple(h for h in current if h is not hook)
        if remaining:
            self._hooks[hook.stage.name] = remaining
        else:
            del self._hooks[hook.stage.name]
        self._sync(hook.stage.name)
        return True

    def pause(self, hook: Hook) -> None:
        """Stop calling ``hook`` until :meth:`resume`; it keeps its place."""
        if not hook.paused:
            hook.paused = True
            self._sync(hook.stage.name)

    def resume(self, hook: Hook) -> None:
        """Call ``hook`` again from the next dispatch at its stage."""
        if hook.paused:
            hook.paused = False
            self._sync(hook.stage.name)

    def firing(self, stage: str) -> bool:
        """Whether a hook that is not paused is registered at ``stage``."""
        return stage in self._live

    def hooks(self, stage: str | None = None) -> list[Hook]:
        """The hooks at ``stage`` (all stages when None), in firing order.

        Paused hooks are listed too (``hook.paused`` says which).

        With ``stage=None`` the stages come in the order the owner lists them,
        which is the order a forward and backward pass reaches them.
        """
        if stage is not None:
            return list(self._hooks.get(stage, ()))
        order = list(getattr(self.owner, "stages", ()))
        order += [name for name in self._hooks if name not in order]
        return [hook for name in order for hook in self._hooks.get(name, ())]

    def clear(self) -> None:
        """Remove every hook of this owner."""
        self._hooks.clear()
        self._live.clear()
        self.owner.hooked = False

    def fire(self, stage: str, *arguments: Any) -> Any:
        """Run the hooks at ``stage`` and return the (possibly replaced) value.

        Parameters
        ----------
        stage : str
            The stage name; ``arguments`` follow its documented signature.
        *arguments
            The values after the layer, as in ``fn(layer, *arguments)``.

        Returns
        -------
        The argument the stage names in ``replaces``, after every hook.

        Raises
        ------
        HookError
            When a hook raises, or returns a replacement that does not fit.
        StopForward
            After the last hook at this point, when one of them asked to stop
            the forward pass.
        """
        hooks = self._live.get(stage)
        spec = STAGES[stage]
        if not hooks:
            return arguments[spec.replaces]

        # The tuple is fixed for this dispatch: hooks added or removed by a
        # running hook take effect from the next one.
        values = list(arguments)
        shown = [_read_only(v) for v in values]
        original = values[spec.replaces]
        context = None
        stop = None
        for hook in hooks:
            if hook.wants_context and context is None:
                context = self.context(spec)
            try:
                if hook.wants_context:
                    result = hook.fn(self.owner, *shown, ctx=context)
                else:
                    result = hook.fn(self.owner, *shown)
            except StopForward as signal:
                stop = _stopped(signal, hook, spec)
                continue
            except HookError:
                raise
            except Exception as error:
                hint = (
                    "; help: a hook that runs the model (forward, predict, "
                    "capture) fires itself again in that pass; pause its handle "
                    "around the inner call (handle.pause(), then handle.resume())"
                    if isinstance(error, RecursionError)
                    else ""
                )
                raise HookError(
                    f"hook {hook.label} at {hook.point} raised "
                    f"{type(error).__name__}: {error}{hint}"
                ) from error
            if result is not None:
                values[spec.replaces] = _check_replacement(result, original, hook)
                shown[spec.replaces] = _read_only(values[spec.replaces])

        if stop is not None:
            stop.value = shown[spec.replaces]
            raise stop
        return values[spec.replaces]

    def context(self, stage: Stage) -> HookContext:
        """The context a hook at ``stage`` of this owner receives."""
        state = self.owner.state
        return HookContext(
            point=f"{self.owner.name}.{stage.name}",
            stage=stage.name,
            layer=self.owner.name,
            layer_index=self.owner.index,
            step=state.step,
            epoch=state.epoch,
            training=state.training,
            grad_enabled=state.grad_enabled,
        )

    def __len__(self) -> int:
        return sum(len(hooks) for hooks in self._hooks.values())

    def __repr__(self) -> str:
        return f"HookTable({self.owner.name!r}, {len(self)} hooks)"


def _stopped(signal: StopForward, hook: Hook, stage: Stage) -> StopForward:
    """Fill in where ``signal`` was raised; refuse it outside the forward pass."""
    if stage.backward:
        raise HookError(
            f"hook {hook.label} at {hook.point} raised StopForward, which only "
            "stops a forward pass; help: raise it at a forward stage"
        ) from signal
    signal.point = signal.point or hook.point
    return signal


def _check_replacement(result: Any, original: Any, hook: Hook) -> Any:
    """Return ``result`` if it can stand in for ``original``, else raise."""
    if not isinstance(original, np.ndarray):
        raise HookError(
            f"hook {hook.label} at {hook.point} returned {type(result).__name__}, "
            "but this value cannot be replaced; help: return None to observe"
        )
    if isinstance(result, np.ndarray) and type(result) is not np.ndarray:
        # A subclass (np.matrix, a masked array) keeps its own arithmetic, so
        # the layer would compute something else with it, or fail far away.
        raise HookError(
            f"hook {hook.label} at {hook.point} returned {type(result).__name__}, "
            f"a subclass of ndarray; expected a plain ndarray of shape "
            f"{original.shape} and dtype {original.dtype}; help: return "
            "numpy.asarray(value)"
        )
    if not isinstance(result, np.ndarray):
        raise HookError(
            f"hook {hook.label} at {hook.point} returned {type(result).__name__}; "
            f"expected None or an ndarray of shape {original.shape} "
            f"and dtype {original.dtype}"
        )
    if result.shape != original.shape:
        raise HookError(
            f"hook {hook.label} at {hook.point} returned shape {result.shape}; "
            f"expected {original.shape}"
        )
    if result.dtype != original.dtype:
        raise HookError(
            f"hook {hook.label} at {hook.point} returned dtype {result.dtype}; "
            f"expected {original.dtype}; help: return value.astype({original.dtype})"
        )
    return result
