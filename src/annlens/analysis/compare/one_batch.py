"""One batch through annlens and its PyTorch twin, every hook point compared.

:func:`compare_models` runs one batch through a copy of the model and through
its twin, records every hook point of the annlens pass (pre-activations,
outputs, ``x_hat``, grad_output, delta, grad_x_hat, grad_input, parameter
gradients, the loss and its gradient, the running statistics), reads the same
quantities from torch's autograd, and returns a
:class:`~annlens.analysis.compare.ParityResult` with the largest absolute and
relative difference of each. In float32 it also runs a float64 copy of the
twin, so that each quantity says how far each framework is from the values
float64 gives.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from annlens.analysis.compare.measure import difference, resolve_tolerances
from annlens.analysis.compare.parity import Difference, ParityResult
from annlens.layers.base import Array

# What each recorded stage keeps: (argument index after the layer, quantity).
RECORDED: dict[str, tuple[int, str]] = {
    "pre_activation": (0, "z"),
    "normalized": (0, "x_hat"),
    "mask": (0, "mask"),
    "forward": (1, "output"),
    "backward_pre": (0, "grad_output"),
    "pre_activation_grad": (0, "delta"),
    "normalized_grad": (0, "grad_x_hat"),
    "backward": (0, "grad_input"),
}

# Where torch keeps the same quantity: (traced tensor, its value or its .grad).
TORCH_SIDE: dict[str, tuple[str, bool]] = {
    "z": ("z", False),
    "x_hat": ("x_hat", False),
    "output": ("output", False),
    "grad_output": ("output", True),
    "delta": ("z", True),
    "grad_x_hat": ("x_hat", True),
    "grad_input": ("input", True),
}

# One compared quantity: (layer, hook point, quantity).
Key = tuple[str, str, str]


class HookPointLog:
    """A hook that copies what each hook point shows, in firing order."""

    def __init__(self) -> None:
        self.values: list[tuple[str, str, str, Array]] = []
        self.masks: dict[str, Array] = {}

    def __call__(self, layer: Any, *arguments: Any, ctx: Any) -> None:
        if ctx.stage == "gradient":
            name, grad = arguments
            self.values.append((layer.name, ctx.point, f"grads[{name}]", grad.copy()))
            return
        index, quantity = RECORDED[ctx.stage]
        value = np.array(arguments[index], copy=True)
        if ctx.stage == "mask":
            self.masks[layer.name] = value
        else:
            self.values.append((layer.name, ctx.point, quantity, value))

    def attach(self, model: Any) -> Any:
        """Register on every recorded stage the model has; returns the scope."""
        present = {stage for layer in model.layers for stage in layer.stages}
        stages = [s for s in [*RECORDED, "gradient"] if s in present]
        return model.hooks(*[(stage, self) for stage in stages])

    def __repr__(self) -> str:
        return f"HookPointLog({len(self.values)} values, {len(self.masks)} masks)"


def detached_copy(model: Any) -> Any:
    """A deep copy of ``model`` with no hooks, so the original is not touched.

    The registered hooks are shared with the copy rather than copied (a hook
    may hold what cannot be copied, such as an open file), then removed from
    the copy alone.
    """
    memo = {
        id(hook): hook
        for owner in model.hook_owners()
        for hook in owner.hook_table.hooks()
    }
    ours = copy.deepcopy(model, memo)
    ours.clear_hooks()
    return ours


def compare_models(
    model: Any,
    x: Any,
    y: Any,
    loss: Any,
    tolerance: float | None = None,
    atol: float | None = None,
    rounding: float | None = None,
) -> ParityResult:
    """Run one batch through annlens and its PyTorch twin and compare everything.

    Parameters
    ----------
    model : Sequential
        The model, compared in its current mode (training or evaluation). It
        is not changed: both passes run on a copy.
    x : array-like, (batch, in_features)
        The batch.
    y : array-like
        The targets, as ``loss`` takes them.
    loss : Loss or str
        A built-in annlens loss, or its registered name.
    tolerance : float, optional
        The relative difference counted as agreement (1e-10 in float64, 1e-4
        in float32 by default); 0 allows none.
    atol : float, optional
        The absolute difference counted as agreement whatever the relative
        one (1e-12 in float64, 1e-6 in float32 by default); 0 allows none.
    rounding : float, optional
        In float32, how many times as far as PyTorch from the float64 values
        annlens may be and still agree (4 by default); 0 allows nothing (see
        the Notes of :class:`~annlens.analysis.compare.ParityResult`).

    Returns
    -------
    ParityResult
        One row per hook point and quantity: ``z``, ``x_hat``, ``output``, the
        loss and its gradient, ``grad_output``, ``delta``, ``grad_x_hat``,
        ``grad_input``, each parameter gradient, and the running statistics
        after the pass.

    Raises
    ------
    ImportError
        When torch is not installed.
    ConfigError
        When a tolerance is not a finite number >= 0.
    NotImplementedError
        For a layer, activation or loss that has no PyTorch twin.
    """
    from annlens.analysis.compare.measure import resolve_rounding
    from annlens.analysis.compare.twin import build_twin, loss_twin
    from annlens.losses import get_loss

    tolerance, atol = resolve_tolerances(model.dtype, tolerance, atol)
    rounding = resolve_rounding(rounding)
    ours = detached_copy(model)
    twin = build_twin(ours)
    wide = twin.widened() if ours.dtype == np.float32 else None
    loss = get_loss(loss)
    torch_loss = loss_twin(loss)
    x = np.asarray(x, dtype=ours.dtype)

    recorder = HookPointLog()
    with recorder.attach(ours):
        output = ours.forward(x)
        value, grad = loss.value_and_grad(output, y)
        ours.backward(grad)
    fired = [((layer, point, q), array) for layer, point, q, array in recorder.values]
    losses = [
        (("loss", "loss", "value"), np.float64(value)),
        (("loss", "loss", "grad"), grad),
    ]
    buffers = [
        ((pair.layer.name, pair.name, pair.key), pair.annlens_value())
        for pair in twin.pairs
        if pair.buffer
    ]

    torch_value, theirs = _torch_pass(twin, recorder, x, y, torch_loss)
    exact = None
    if wide is not None:
        exact = _torch_pass(wide, recorder, x.astype(np.float64), y, torch_loss)[1]

    rows = [
        _row(key, ours_value, theirs[key], None if exact is None else exact[key])
        for key, ours_value in _in_order(fired, losses, buffers)
    ]
    return ParityResult(
        rows,
        ours.dtype.name,
        float(value),
        torch_value,
        tolerance,
        atol,
        rounding,
    )


def _in_order(
    fired: list[tuple[Key, Any]],
    loss: list[tuple[Key, Any]],
    buffers: list[tuple[Key, Any]],
) -> list[tuple[Key, Any]]:
    """The hook-point values in firing order with the loss's before the first
    gradient arriving at a layer's output, then the running statistics."""
    split = next(
        (i for i, (key, _) in enumerate(fired) if key[2] == "grad_output"), len(fired)
    )
    return fired[:split] + loss + fired[split:] + buffers


def _torch_pass(
    twin: Any, recorder: HookPointLog, x: Array, y: Any, torch_loss: Any
) -> tuple[float, dict[Key, Any]]:
    """The loss and every quantity annlens recorded, as ``twin`` computes them."""
    twin.set_masks(recorder.masks)
    output, traced = twin.module.trace(twin.tensor(x))
    value = torch_loss(output, y)
    value.backward()

    position = {name: index for index, name in enumerate(twin.module.names)}
    pairs = {pair.name: pair for pair in twin.pairs}
    values: dict[Key, Any] = {}
    for layer, point, quantity, _ in recorder.values:
        if quantity.startswith("grads["):
            values[(layer, point, quantity)] = pairs[
                f"{layer}.{quantity[6:-1]}"
            ].torch_grad()
        else:
            source, is_grad = TORCH_SIDE[quantity]
            values[(layer, point, quantity)] = _numpy(
                traced[position[layer]][source], grad=is_grad
            )
    values[("loss", "loss", "value")] = np.float64(value.item())
    values[("loss", "loss", "grad")] = _numpy(output, grad=True)
    for pair in twin.pairs:
        if pair.buffer:
            values[(pair.layer.name, pair.name, pair.key)] = pair.torch_value()
    return float(value.item()), values


def _numpy(tensor: Any, grad: bool) -> Array:
    """A tensor's value, or its gradient, as a NumPy copy."""
    value = tensor.grad if grad else tensor
    assert value is not None, "backward reaches every traced tensor"
    return np.array(value.detach().numpy(), copy=True)


def _row(key: Key, ours: Any, theirs: Any, exact: Any) -> Difference:
    """One compared quantity; with ``exact``, each side's distance from it."""
    layer, point, quantity = key
    where = f"{point} {quantity}"
    max_abs, max_rel = difference(ours, theirs, where)
    errors: tuple[float | None, float | None, float | None] = (None, None, None)
    if exact is not None:
        errors = (
            difference(ours, exact, where)[0],
            difference(theirs, exact, where)[0],
            float(np.max(np.abs(exact))) if np.size(exact) else 0.0,
        )
    return Difference(layer, point, quantity, np.shape(ours), max_abs, max_rel, *errors)
