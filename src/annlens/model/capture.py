"""``model.capture``: one pass, a copy of every internal quantity, nothing left behind.

:func:`capture` registers a recording hook at each chosen hook point, runs one
forward pass (and, given a target and a loss, the loss and one backward pass),
removes its hooks and returns a :class:`Capture`: a read-only mapping from hook
point name to a *copy* of the value passed on there. What each key holds:

=============================  ===============================================
key                            value (shapes for a Dense layer, batch ``n``)
=============================  ===============================================
``dense_0.forward_pre``        the layer input ``x``, (n, in_features)
``dense_0.pre_activation``     ``z = x W + b``, (n, out_features)
``dense_0.post_activation``    ``a = f(z)``, (n, out_features)
``dense_0.forward``            the layer output, (n, out_features)
``dense_0.backward_pre``       ``grad_output`` = dL/d output, (n, out_features)
``dense_0.pre_activation_grad`` ``delta`` = dL/dz, (n, out_features)
``dense_0.backward``           ``grad_input`` = dL/d input, (n, in_features)
``dense_0.gradient``           dict of parameter name to its final gradient,
                               ``{"W": (in, out), "b": (out,)}``
``loss.loss``                  ``{"value": float, "grad": dL/d model output}``
=============================  ===============================================

Each value is what the layer passed on at that point, after every hook that was
registered before the capture (a hook that replaces ``z`` shows in
``pre_activation``). The ``update`` stage is not captured: it fires inside the
optimizer, which a capture does not run.

The model is left as it was: parameters are never written, and gradients,
buffers (running statistics), what layers kept for backward, the noise
generator and the grad mode are restored when the call ends, also on error.
Hooks already registered do fire during the capture, as in any pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from annlens.errors import ConfigError, UnknownNameError, did_you_mean
from annlens.hooks import STAGES, HookScope, Stage, StopForward, resolve_points
from annlens.hooks.select import LayerFilter, hook_points


class Capture(Mapping[str, Any]):
    """The values one pass produced, by hook point name, in firing order.

    Attributes
    ----------
    output : ndarray or None
        A copy of the model output, (batch, outputs); None when stopped early.
    loss_value : float or None
        The loss, when a target and a loss were given and the pass finished.
    stopped_at : str or None
        The hook point where a :class:`~annlens.hooks.StopForward` ended the
        forward pass; None when it ran to the end.

    Examples
    --------
    >>> cache = model.capture(x, y, loss=MSE())  # doctest: +SKIP
    >>> cache["dense_0.pre_activation"].shape  # doctest: +SKIP
    (32, 16)
    >>> cache.stage("forward")  # {layer name: output}  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self.output: np.ndarray | None = None
        self.loss_value: float | None = None
        self.stopped_at: str | None = None

    def __getitem__(self, point: str) -> Any:
        if point not in self._values:
            hint = did_you_mean(point, list(self._values))
            raise UnknownNameError(
                f"nothing captured at {point!r}{hint}; captured: "
                f"{', '.join(self._values) or 'nothing'}; help: backward stages "
                "need y= and loss=, and a stopped forward has no later points"
            )
        return self._values[point]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def stage(self, name: str) -> dict[str, Any]:
        """``{layer name: value}`` for one stage, in firing order.

        Empty for a stage that did not fire (``mask`` in evaluation mode);
        a name that is no stage at all is refused with a suggestion.
        """
        if name not in STAGES:
            raise UnknownNameError(
                f"Capture.stage: unknown stage {name!r}"
                f"{did_you_mean(name, list(STAGES))}; stages: {', '.join(STAGES)}"
            )
        suffix = f".{name}"
        return {
            point[: -len(suffix)]: value
            for point, value in self._values.items()
            if point.endswith(suffix)
        }

    def layer(self, name: str) -> dict[str, Any]:
        """``{stage: value}`` for one layer, in firing order."""
        prefix = f"{name}."
        found = {
            point[len(prefix) :]: value
            for point, value in self._values.items()
            if point.startswith(prefix)
        }
        if not found:
            names = list(dict.fromkeys(p.rsplit(".", 1)[0] for p in self._values))
            raise UnknownNameError(
                f"nothing captured for layer {name!r}{did_you_mean(name, names)}; "
                f"captured layers: {', '.join(names) or 'none'}"
            )
        return found

    @property
    def nbytes(self) -> int:
        """Bytes held by the captured arrays."""
        total = 0
        for value in self._values.values():
            parts = value.values() if isinstance(value, dict) else [value]
            total += sum(p.nbytes for p in parts if isinstance(p, np.ndarray))
        return total

    def __repr__(self) -> str:
        end = f", stopped at {self.stopped_at}" if self.stopped_at else ""
        return f"Capture({len(self)} points, {self.nbytes:,} bytes{end})"


class _Recorder:
    """The hook that copies one hook point's value into a :class:`Capture`."""

    def __init__(self, result: Capture, point: str, stage: Stage) -> None:
        self.result, self.point, self.stage = result, point, stage

    def __call__(self, owner: Any, *arguments: Any) -> None:
        values = self.result._values
        if self.stage.name == "gradient":
            name, grad = arguments
            values.setdefault(self.point, {})[name] = np.array(grad, copy=True)
        elif self.stage.name == "loss":
            value, grad = arguments
            values[self.point] = {
                "value": float(value),
                "grad": np.array(grad, copy=True),
            }
        else:
            values[self.point] = np.array(arguments[self.stage.replaces], copy=True)

    def __repr__(self) -> str:
        return f"capture({self.point})"


class _Snapshot:
    """What a pass may change besides parameters, kept so it can be put back."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.caches = [layer.cache for layer in model.layers]
        self.output_shape = model.output_shape
        self.stores = [
            (layer, attribute, store, [(k, v, v.copy()) for k, v in store.items()])
            for layer in model.layers
            for attribute in ("grads", "buffers")
            for store in [getattr(layer, attribute)]
        ]
        self.rng = model.state.rng.bit_generator.state
        self.grad_enabled = model.state.grad_enabled
        self.loss = model.loss_point.loss

    def restore(self) -> None:
        for layer, cache in zip(self.model.layers, self.caches, strict=True):
            layer.cache = cache
        self.model.output_shape = self.output_shape
        for layer, attribute, store, entries in self.stores:
            store.clear()
            for key, array, saved in entries:
                if array.flags.writeable:
                    np.copyto(array, saved)
                store[key] = array
            setattr(layer, attribute, store)
        self.model.state.rng.bit_generator.state = self.rng
        self.model.state.grad_enabled = self.grad_enabled
        self.model.loss_point.loss = self.loss

    def __repr__(self) -> str:
        return f"_Snapshot({len(self.caches)} layers)"


def _choose(
    model: Any,
    points: str | Sequence[str] | None,
    layers: LayerFilter,
    backward: bool,
) -> list[str]:
    """The hook point names to record, in model order."""
    owners = model.hook_owners()
    if points is None:
        specs = ["*.*"]
    else:
        specs = [points] if isinstance(points, str) else list(points)
    chosen = {
        (owner.name, stage)
        for spec in specs
        for owner, stage in resolve_points(owners, spec, layers)
    }

    if points is not None and not specs:
        raise ConfigError(
            "capture points is an empty list; help: name stages or hook points, "
            "or leave points=None for every point the pass reaches"
        )
    chosen = {(name, stage) for name, stage in chosen if stage != "update"}
    reachable = {(n, s) for n, s in chosen if backward or not STAGES[s].backward}
    if points is not None and not reachable:
        reason = (
            "fire only in a backward pass, which needs y= and loss="
            if chosen
            else "name only the update stage; the update stage fires in the "
            "optimizer and is never captured"
        )
        raise ConfigError(f"capture points {points!r} {reason}")
    return [
        f"{owner.name}.{stage}"
        for owner in owners
        for stage in hook_points(owner)
        if (owner.name, stage) in reachable
    ]


def capture(
    model: Any,
    x: Any,
    y: Any = None,
    loss: Any = None,
    *,
    points: str | Sequence[str] | None = None,
    layers: LayerFilter = None,
) -> Capture:
    """Run one pass of ``model`` on ``x`` and return copies of its internals.

    Parameters
    ----------
    model : Sequential
        The model; it is left as it was (see the module docstring).
    x : array-like, (batch, in_features)
        The input batch.
    y : array-like, optional
        The target; with ``loss``, the loss and a backward pass run too.
    loss : annlens.losses.Loss, optional
        The loss; needs ``y``.
    points : str or sequence of str, optional
        Hook points to record, as stages (``"forward"``), exact names
        (``"dense_0.pre_activation"``) or globs (``"dense_*.*"``). Default:
        every point the pass reaches.
    layers : str, type, callable or list, optional
        Narrow the points to these layers, as in ``model.register_hook``.

    Returns
    -------
    Capture
        Copies of the values, by hook point name; ``stopped_at`` is set when a
        hook raised :class:`~annlens.hooks.StopForward`.

    Raises
    ------
    ConfigError
        When only one of ``y`` and ``loss`` is given, or the chosen points need
        a backward pass that was not asked for.
    """
    if (y is None) != (loss is None):
        raise ConfigError(
            "capture needs both y= and loss= for a backward pass, or neither "
            f"for a forward pass; got y={'set' if y is not None else None}, "
            f"loss={loss!r}"
        )
    backward = y is not None
    chosen = _choose(model, points, layers, backward)

    result = Capture()
    saved = _Snapshot(model)
    scope = HookScope(model.register_hook)
    try:
        for point in chosen:
            stage = STAGES[point.rsplit(".", 1)[1]]
            scope.register(point, _Recorder(result, point, stage))

        model.state.grad_enabled = backward
        try:
            output = model.forward(x)
        except StopForward as stop:
            result.stopped_at = stop.point
            return result
        result.output = np.array(output, copy=True)

        if backward:
            value, grad = model.loss(loss, output, y)
            result.loss_value = float(value)
            model.backward(grad)
    finally:
        scope.remove()
        saved.restore()
    return result
