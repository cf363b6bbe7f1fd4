"""Gradient checking: every backward-pass gradient against central differences.

:func:`gradcheck` runs one forward and backward pass of a model (or of a single
layer), then estimates the derivative of the loss with respect to every
parameter entry and every input entry by central finite differences, and
returns a :class:`GradcheckReport` with, per tensor, the max-norm relative
error and where the two disagree most. It reports; it does not raise for a
wrong gradient.

The error of a tensor is ``max|a - n| / max(max|a|, max|n|, floor)``, with
``floor`` the resolution of central differences of a loss of this size
(:func:`~annlens.activations.check.noise_floor`, about ``2e-3 |L|`` at the
default settings): rounding noise alone never fails a check, and a tensor
whose gradient has all but vanished is compared in absolute terms, as finely
as central differences allow; its line in the report says so.

The check runs in float64. A float32 model or layer is not refused: a float64
copy of it is checked instead, which proves the maths of its backward pass but
not float32 rounding; the report says so. The model itself is left exactly as
it was: parameters, gradients, buffers, what layers kept for backward, the
noise generator, the grad mode and the hooks.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from annlens.activations.check import max_relative_error, noise_floor
from annlens.errors import ConfigError, InputError, check_count
from annlens.hooks import HookTable
from annlens.layers.base import Array, Layer
from annlens.losses import Loss, get_loss
from annlens.model import Sequential

Index = tuple[int, ...]


@dataclass(frozen=True)
class TensorCheck:
    """One gradient compared with its finite-difference estimate.

    Attributes
    ----------
    name : str
        ``"dense_0.W"``, or ``"input"`` for dL/dx.
    shape : tuple of int
        The tensor's shape.
    error : float
        The max-norm relative error over the entries checked, see
        :func:`~annlens.activations.check.max_relative_error`.
    worst_index : tuple of int
        The entry with the largest absolute difference.
    analytic, numeric : float
        The backward pass's value and the estimate at ``worst_index``.
    checked : int
        How many entries were compared.
    passed : bool
        ``error <= tolerance``.
    scale : float
        ``max(max|a|, max|n|)`` over the entries checked.
    floor : float
        The smallest scale divided by (the finite-difference resolution).
    """

    name: str
    shape: Index
    error: float
    worst_index: Index
    analytic: float
    numeric: float
    checked: int
    passed: bool
    scale: float = 0.0
    floor: float = 0.0

    @property
    def below_resolution(self) -> bool:
        """Whether the whole gradient is smaller than finite differences resolve."""
        return self.scale < self.floor

    def __str__(self) -> str:
        status = "ok" if self.passed else "MISMATCH"
        line = (
            f"{self.name:<16} {status:<8} error {self.error:.2e} at "
            f"{self.worst_index}: analytic {self.analytic:.10g}, "
            f"numeric {self.numeric:.10g} ({self.checked} of "
            f"{int(np.prod(self.shape))} entries)"
        )
        if self.below_resolution:
            line += (
                f"; the whole gradient is below {self.floor:.1e}, the floor set "
                "by finite-difference rounding, so it is compared in absolute terms"
            )
        return line


@dataclass(frozen=True)
class GradcheckReport:
    """What :func:`gradcheck` found, one :class:`TensorCheck` per tensor.

    Attributes
    ----------
    tensors : tuple of TensorCheck
        Each parameter in model order, then the input.
    loss : float
        The loss at the unperturbed point.
    tolerance, eps : float
        The settings used.
    note : str
        Anything the reader must know, such as that a float64 copy was checked.
    """

    tensors: tuple[TensorCheck, ...]
    loss: float
    tolerance: float
    eps: float
    note: str = ""

    @property
    def passed(self) -> bool:
        """Whether every tensor agrees within tolerance."""
        return all(check.passed for check in self.tensors)

    @property
    def worst(self) -> TensorCheck:
        """The tensor with the largest error."""
        return max(self.tensors, key=lambda check: check.error)

    def __getitem__(self, name: str) -> TensorCheck:
        for check in self.tensors:
            if check.name == name:
                return check
        names = ", ".join(check.name for check in self.tensors)
        raise KeyError(f"no tensor {name!r} in this report; tensors: {names}")

    def __str__(self) -> str:
        status = "passed" if self.passed else "FAILED"
        lines = [
            f"gradcheck {status}: tolerance {self.tolerance:g} on the max-norm "
            f"relative error, eps {self.eps:g}, float64, loss {self.loss:.10g}"
        ]
        lines += [f"  {check}" for check in self.tensors]
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"GradcheckReport(passed={self.passed}, tensors={len(self.tensors)}, "
            f"worst={self.worst.name!r} at {self.worst.error:.2e})"
        )


class _Subject:
    """A model or a layer seen the same way: layers, state, forward, backward."""

    def __init__(self, target: Sequential | Layer) -> None:
        self.target = target
        self.layers = target.layers if isinstance(target, Sequential) else [target]
        self.state = target.state
        self.forward: Callable[[Array], Array] = target.forward
        self.backward: Callable[[Array], Array] = target.backward

    def owners(self) -> list[Any]:
        """Everything whose hooks must stay silent during the check."""
        if isinstance(self.target, Sequential):
            return list(self.target.hook_owners())
        return [self.target]

    def tensors(self) -> list[tuple[str, Layer, str]]:
        """``(qualified name, layer, key)`` for every parameter."""
        return [
            (f"{layer.name}.{key}", layer, key)
            for layer in self.layers
            for key in layer.params
        ]


def _float64_copy(target: Sequential | Layer) -> Sequential | Layer:
    """A deep copy in float64, without hooks (they are not copied)."""
    owners = _Subject(target).owners()
    memo: dict[int, Any] = {id(owner.hook_table): None for owner in owners}
    clone = copy.deepcopy(target, memo)
    for owner in _Subject(clone).owners():
        owner.hook_table = HookTable(owner)
    for layer in _Subject(clone).layers:
        for store in ("params", "grads", "buffers"):
            values = getattr(layer, store)
            setattr(layer, store, {k: v.astype(np.float64) for k, v in values.items()})
        layer.dtype = np.dtype(np.float64)
        layer.cache = None
    if isinstance(clone, Sequential):
        clone.dtype = np.dtype(np.float64)
    return clone


class _Snapshot:
    """Everything a check may touch, kept so that it can be put back exactly."""

    def __init__(self, subject: _Subject) -> None:
        self.subject = subject
        self.hooked = [(owner, owner.hooked) for owner in subject.owners()]
        self.caches = [layer.cache for layer in subject.layers]
        self.output_shape = getattr(subject.target, "output_shape", ())
        self.stores = [
            (layer, name, store, [(k, v, v.copy()) for k, v in store.items()])
            for layer in subject.layers
            for name in ("params", "grads", "buffers")
            for store in [getattr(layer, name)]
        ]
        self.rng = subject.state.rng.bit_generator.state
        self.grad_enabled = subject.state.grad_enabled

    def restore(self) -> None:
        for owner, hooked in self.hooked:
            owner.hooked = hooked
        for layer, cache in zip(self.subject.layers, self.caches, strict=True):
            layer.cache = cache
        if isinstance(self.subject.target, Sequential):
            self.subject.target.output_shape = self.output_shape
        for layer, name, store, entries in self.stores:
            store.clear()
            for key, array, saved in entries:
                np.copyto(array, saved)
                store[key] = array
            setattr(layer, name, store)
        self.subject.state.rng.bit_generator.state = self.rng
        self.subject.state.grad_enabled = self.grad_enabled


def gradcheck(
    model_or_layer: Sequential | Layer,
    x: Any,
    y: Any,
    loss: Loss | str,
    eps: float = 1e-6,
    tolerance: float = 1e-6,
    max_entries: int | None = None,
    seed: int = 0,
) -> GradcheckReport:
    """Compare every gradient of one backward pass with central differences.

    Parameters
    ----------
    model_or_layer : Sequential or Layer
        What to check. It is left exactly as it was.
    x : array-like, (batch, in_features)
        The input batch.
    y : array-like
        The target, as ``loss`` takes it.
    loss : Loss or str
        The loss, or its registered name.
    eps : float
        The finite-difference step.
    tolerance : float
        The largest max-norm relative error that passes.
    max_entries : int, optional
        Check at most this many entries of each tensor, chosen at random;
        default all (two forward passes per entry).
    seed : int
        Seeds the choice of entries when ``max_entries`` is set.

    Returns
    -------
    GradcheckReport
        Per tensor (each parameter, then ``"input"``): the error, the worst
        entry and both values there; ``passed``.

    Notes
    -----
    For each entry ``theta`` of a parameter (or of ``x``)::

        numeric = (L(theta + eps) - L(theta - eps)) / ((theta + eps) - (theta - eps))

    with the denominator computed in floating point, so the step that was
    actually taken is the one divided by. Hooks do not fire during the check:
    it checks the layers' own maths, and collectors must not see thousands of
    perturbed passes. The noise generator is reset before every pass, so that
    dropout draws the same mask each time; the model's mode (training or
    evaluation) is kept. A float32 model is checked through a float64 copy
    (see the module docstring).
    """
    if not isinstance(model_or_layer, (Sequential, Layer)):
        raise ConfigError(
            f"gradcheck takes a Sequential or a Layer, got {model_or_layer!r}"
        )
    _check_settings(eps, tolerance, max_entries)
    loss = get_loss(loss)
    try:
        x64 = np.array(x, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"gradcheck input must be numeric: {error}") from error
    if not np.all(np.isfinite(x64)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(x64))[0])
        raise InputError(
            f"gradcheck input holds NaN or Inf (first at index {where}: "
            f"{x64[where]}); no gradient can be checked there; help: check the "
            "model on finite inputs"
        )

    note = ""
    target = model_or_layer
    if target.dtype != np.float64:
        note = (
            f"checked a float64 copy of this {target.dtype.name} "
            f"{type(target).__name__}; the original was not run"
        )
        target = _float64_copy(target)
    subject = _Subject(target)
    saved = _Snapshot(subject)
    try:
        for owner, _ in saved.hooked:
            owner.hooked = False
        tensors, value = _check(
            subject, x64, y, loss, eps, tolerance, max_entries, seed
        )
    finally:
        saved.restore()
    return GradcheckReport(tuple(tensors), value, tolerance, eps, note)


def _check_settings(eps: Any, tolerance: Any, max_entries: Any) -> None:
    """Refuse a step, tolerance or sample size that cannot give a verdict."""
    for name, value in (("eps", eps), ("tolerance", tolerance)):
        number = isinstance(value, (int, float, np.integer, np.floating))
        if isinstance(value, bool) or not number or not 0 < value < np.inf:
            raise ConfigError(
                f"gradcheck {name} must be a finite number > 0, got {value!r}"
                + ("; help: the default 1e-6 suits float64" if name == "eps" else "")
            )
    if max_entries is not None:
        check_count(
            "gradcheck max_entries", max_entries, hint="; or None, to check every entry"
        )


def _check(
    subject: _Subject,
    x: Array,
    y: Any,
    loss: Loss,
    eps: float,
    tolerance: float,
    max_entries: int | None,
    seed: int,
) -> tuple[list[TensorCheck], float]:
    """The pass, then the estimates, tensor by tensor."""
    state, rng_state = subject.state, subject.state.rng.bit_generator.state

    # the backward pass being checked
    state.grad_enabled = True
    output = subject.forward(x)
    value, grad_output = loss.value_and_grad(output, y)
    grad_input = subject.backward(grad_output)
    analytic = {name: layer.grads[key].copy() for name, layer, key in subject.tensors()}
    analytic["input"] = np.asarray(grad_input, dtype=np.float64)

    def loss_at() -> float:
        state.rng.bit_generator.state = rng_state
        return float(loss.value(subject.forward(x), y))

    state.grad_enabled = False
    floor = noise_floor(abs(float(value)), eps, tolerance)
    chooser = np.random.default_rng(seed)
    arrays = [(name, layer.params[key]) for name, layer, key in subject.tensors()]
    checks = []
    for name, array in [*arrays, ("input", x)]:
        indices = _entries(array.shape, max_entries, chooser)
        numeric = _differences(array, indices, eps, loss_at)
        checks.append(
            _compare(name, analytic[name], numeric, indices, tolerance, floor)
        )
    return checks, float(value)


def _entries(
    shape: Index, max_entries: int | None, chooser: np.random.Generator
) -> list[Index]:
    """Every index of ``shape``, or ``max_entries`` of them at random."""
    size = int(np.prod(shape))
    if max_entries is None or size <= max_entries:
        return list(np.ndindex(*shape))
    flat = np.sort(chooser.choice(size, size=max_entries, replace=False))
    return [tuple(int(i) for i in np.unravel_index(f, shape)) for f in flat]


def _differences(
    array: Array, indices: Iterable[Index], eps: float, loss_at: Callable[[], float]
) -> Array:
    """Central differences of the loss at each index of ``array``, in place."""
    numeric = np.zeros(array.shape)
    for index in indices:
        original = array[index]
        up, down = original + eps, original - eps
        array[index] = up
        loss_up = loss_at()
        array[index] = down
        loss_down = loss_at()
        array[index] = original
        numeric[index] = (loss_up - loss_down) / (up - down)
    return numeric


def _compare(
    name: str,
    analytic: Array,
    numeric: Array,
    indices: list[Index],
    tolerance: float,
    floor: float,
) -> TensorCheck:
    """One :class:`TensorCheck` from the entries at ``indices``."""
    rows = tuple(np.array(axis, dtype=np.intp) for axis in zip(*indices, strict=True))
    if not indices:
        rows = tuple(np.zeros(0, dtype=np.intp) for _ in analytic.shape)
    picked, estimated = analytic[rows], numeric[rows]
    error, worst = max_relative_error(picked, estimated, floor)
    scale = max(float(np.max(np.abs(v), initial=0.0)) for v in (picked, estimated))
    index = indices[worst] if indices else ()
    return TensorCheck(
        name=name,
        shape=tuple(analytic.shape),
        error=error,
        worst_index=tuple(int(i) for i in index),
        analytic=float(analytic[index]) if indices else float("nan"),
        numeric=float(numeric[index]) if indices else float("nan"),
        checked=len(indices),
        passed=bool(error <= tolerance),
        scale=scale,
        floor=floor,
    )
