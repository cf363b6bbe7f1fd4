"""Per hook point, how far annlens and its PyTorch twin differ on one batch.

:func:`compare_models` runs one batch through a copy of the model and through
its twin, records every hook point of the annlens pass (pre-activations,
outputs, ``x_hat``, grad_output, delta, grad_x_hat, grad_input, parameter
gradients, the loss and its gradient, the running statistics), reads the same
quantities from torch's autograd, and returns a :class:`ParityResult` with the
largest absolute and relative difference of each.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annlens.errors import ShapeError
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


def default_tolerance(dtype: Any) -> float:
    """The relative difference counted as agreement: 1e-10 in float64, 1e-4 in
    float32."""
    return 1e-10 if np.dtype(dtype) == np.float64 else 1e-4


def default_atol(dtype: Any) -> float:
    """The absolute difference always counted as agreement: a hundredth of
    the relative tolerance, 1e-12 in float64 and 1e-6 in float32."""
    return default_tolerance(dtype) / 100


def difference(ours: Any, theirs: Any, where: str = "") -> tuple[float, float]:
    """The largest absolute and relative difference of two arrays.

    Parameters
    ----------
    ours, theirs : array-like of the same shape
        The annlens and the torch value.
    where : str
        Named in the error when the shapes differ.

    Returns
    -------
    (float, float)
        ``max |ours - theirs|`` and that divided by the larger of
        ``max |ours|`` and ``max |theirs|`` (0 when both are all zeros).

    Notes
    -----
    The relative difference is taken against the scale of the whole array,
    not element by element, so entries that are 0 in both do not divide by 0
    and tiny entries next to large ones do not dominate.
    """
    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(theirs, dtype=np.float64)
    if a.shape != b.shape:
        raise ShapeError(
            f"cannot compare {where or 'values'}: annlens has shape {a.shape}, "
            f"torch has {b.shape}"
        )
    if a.size == 0:
        return 0.0, 0.0
    max_abs = float(np.max(np.abs(a - b)))
    scale = float(max(np.max(np.abs(a)), np.max(np.abs(b))))
    return max_abs, (max_abs / scale if scale > 0 else max_abs)


@dataclass(frozen=True)
class Difference:
    """One compared quantity at one hook point.

    Attributes
    ----------
    layer : str
        The layer name (``loss`` for the loss).
    point : str
        The hook point, ``dense_0.pre_activation``.
    quantity : str
        ``z``, ``output``, ``delta``, ``grads[W]``, ``running_var``, ...
    shape : tuple of int
        Its shape.
    max_abs, max_rel : float
        The largest absolute difference and the relative one (see
        :func:`difference`).
    """

    layer: str
    point: str
    quantity: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float

    def within(self, tolerance: float, atol: float) -> bool:
        """Whether the relative difference is at most ``tolerance``, or the
        absolute one at most ``atol``; False for NaN."""
        return self.max_rel <= tolerance or self.max_abs <= atol


@dataclass
class ParityResult:
    """Differences between annlens and PyTorch at every hook point of one batch.

    Attributes
    ----------
    rows : list of Difference
        In the order the hook points fired: forward, loss, backward, gradients.
    dtype : str
        The dtype both ran in.
    loss_annlens, loss_torch : float
        The two loss values.
    tolerance : float
        The relative difference counted as agreement (by dtype by default).
    atol : float
        The absolute difference counted as agreement whatever the relative one
        (by dtype by default).

    Notes
    -----
    A row agrees when its relative difference is within ``tolerance`` or its
    absolute difference within ``atol``. The absolute floor is for values
    that are zero in exact arithmetic and only rounding in both frameworks,
    such as the gradient of a BatchNorm shift on a batch of two, where a
    difference of 1e-14 between two such results is 100% of their size.
    """

    rows: list[Difference]
    dtype: str
    loss_annlens: float
    loss_torch: float
    tolerance: float = field(default=0.0)
    atol: float = field(default=0.0)

    def __post_init__(self) -> None:
        if not self.tolerance:
            self.tolerance = default_tolerance(self.dtype)
        if not self.atol:
            self.atol = default_atol(self.dtype)

    @property
    def max_abs(self) -> float:
        """The largest absolute difference over every row."""
        return max((row.max_abs for row in self.rows), default=0.0)

    @property
    def max_rel(self) -> float:
        """The largest relative difference over every row."""
        return max((row.max_rel for row in self.rows), default=0.0)

    @property
    def agrees(self) -> bool:
        """Whether every row is within :attr:`tolerance` or :attr:`atol`."""
        return not self.failures()

    def failures(self) -> list[Difference]:
        """The rows beyond both tolerances, or NaN."""
        return [r for r in self.rows if not r.within(self.tolerance, self.atol)]

    def worst(self) -> Difference | None:
        """The row with the largest relative difference."""
        return max(self.rows, key=lambda row: row.max_rel, default=None)

    def to_dataframe(self) -> Any:
        """One row per compared quantity, as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "layer": row.layer,
                    "point": row.point,
                    "quantity": row.quantity,
                    "shape": row.shape,
                    "max_abs": row.max_abs,
                    "max_rel": row.max_rel,
                }
                for row in self.rows
            ]
        )

    def table(self) -> Any:
        """A rich Table for the terminal."""
        from annlens.analysis.compare.table import parity_table

        return parity_table(self)

    def to_html(self) -> str:
        """An HTML fragment (a ``<table>``) for the report."""
        from annlens.analysis.compare.table import parity_html

        return parity_html(self)

    def __rich__(self) -> Any:
        return self.table()

    def __repr__(self) -> str:
        state = "agrees" if self.agrees else f"{len(self.failures())} differ"
        return (
            f"ParityResult({len(self.rows)} quantities, dtype={self.dtype}, "
            f"max_rel={self.max_rel:.3g}, tolerance={self.tolerance:g}; {state})"
        )


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
        in float32 by default).
    atol : float, optional
        The absolute difference counted as agreement whatever the relative
        one (1e-12 in float64, 1e-6 in float32 by default).

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
    NotImplementedError
        For a layer, activation or loss that has no PyTorch twin.
    """
    from annlens.analysis.compare.twin import build_twin, loss_twin
    from annlens.losses import get_loss

    ours = detached_copy(model)
    twin = build_twin(ours)
    loss = get_loss(loss)
    torch_loss = loss_twin(loss)
    x = np.asarray(x, dtype=ours.dtype)

    recorder = HookPointLog()
    with recorder.attach(ours):
        output = ours.forward(x)
        value, grad = loss.value_and_grad(output, y)
        ours.backward(grad)

    twin.set_masks(recorder.masks)
    torch_output, traced = twin.module.trace(twin.tensor(x))
    torch_value = torch_loss(torch_output, y)
    torch_value.backward()

    rows = _hook_point_rows(recorder, traced, twin)
    loss_rows = [
        _row("loss", "loss", "value", np.float64(value), torch_value.item()),
        _row("loss", "loss", "grad", grad, _numpy(torch_output, grad=True)),
    ]
    split = next(
        (i for i, row in enumerate(rows) if row.quantity == "grad_output"), len(rows)
    )
    rows[split:split] = loss_rows
    rows += [
        _row(
            pair.layer.name,
            pair.name,
            pair.key,
            pair.annlens_value(),
            pair.torch_value(),
        )
        for pair in twin.pairs
        if pair.buffer
    ]
    return ParityResult(
        rows,
        ours.dtype.name,
        float(value),
        float(torch_value.item()),
        tolerance or 0.0,
        atol or 0.0,
    )


def _hook_point_rows(
    recorder: HookPointLog, traced: list[dict[str, Any]], twin: Any
) -> list[Difference]:
    """Rows for every recorded annlens value, paired with torch's."""
    position = {name: index for index, name in enumerate(twin.module.names)}
    pairs = {pair.name: pair for pair in twin.pairs}
    rows = []
    for layer, point, quantity, value in recorder.values:
        if quantity.startswith("grads["):
            theirs = pairs[f"{layer}.{quantity[6:-1]}"].torch_grad()
        else:
            source, is_grad = TORCH_SIDE[quantity]
            theirs = _numpy(traced[position[layer]][source], grad=is_grad)
        rows.append(_row(layer, point, quantity, value, theirs))
    return rows


def _numpy(tensor: Any, grad: bool) -> Array:
    """A tensor's value, or its gradient, as a NumPy copy."""
    value = tensor.grad if grad else tensor
    assert value is not None, "backward reaches every traced tensor"
    return np.array(value.detach().numpy(), copy=True)


def _row(layer: str, point: str, quantity: str, ours: Any, theirs: Any) -> Difference:
    max_abs, max_rel = difference(ours, theirs, f"{point} {quantity}")
    return Difference(layer, point, quantity, np.shape(ours), max_abs, max_rel)
