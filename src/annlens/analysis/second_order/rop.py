"""Pearlmutter's R-operator through the layers: the R-forward and R-backward passes.

For a direction ``v`` in parameter space, the R-operator of any quantity ``q``
computed by a pass is its directional derivative::

    R{q} = d/dr q(theta + r v)  at r = 0

Applied to every line of the forward pass and then of the backward pass, it
carries ``R{grads}``, which is the Hessian-vector product ``H v`` exactly (to
rounding), for the cost of about two more passes. This file holds the
contract :class:`LayerROp` and one class per layer type for Dense, Activation
and Dropout; BatchNorm's lives in ``rop_batchnorm.py``, and ``hvp.py`` picks
the class by the layer's exact type. Each object is built from a layer right
after an ordinary forward and backward pass: it reads the layer's parameters,
what the layer kept in ``cache`` and the ``grad_output`` that reached it, and
keeps what its R-passes need, so the layer itself is never touched again.

A zero ``R{x}`` (the model input does not depend on the parameters) is passed
as None, which skips the products it would cost.

References
----------
Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian.
Neural Computation 6(1), 147-160.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from annlens.activations import Activation as ActivationFunction
from annlens.layers import Activation, Dense, Dropout, Layer
from annlens.layers.base import Array

Direction = Mapping[str, Array]
"""A layer's share of the direction ``v``, by parameter key (``"W"``, ``"b"``)."""


class LayerROp:
    """The R-passes of one layer at the batch of the pass it was built from.

    Parameters
    ----------
    layer : Layer
        The layer, right after a forward and backward pass (its ``cache`` set).
    grad_output : ndarray, (batch, out_features)
        dL/d output, the gradient that reached the layer in that backward pass.

    Notes
    -----
    :meth:`forward` maps ``R{x}`` to ``R{output}`` and returns a memo of what
    :meth:`backward` needs; :meth:`backward` maps ``R{grad_output}`` to the
    layer's ``R{grads}`` and ``R{grad_input}``.
    """

    def __init__(self, layer: Layer, grad_output: Array) -> None:
        self.name = layer.name

    def forward(self, r_x: Array | None, v: Direction) -> tuple[Array | None, Any]:
        """Return ``R{output}`` (None when zero) and a memo for :meth:`backward`."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(
        self, r_grad_output: Array, v: Direction, memo: Any, need_input: bool
    ) -> tuple[dict[str, Array], Array | None]:
        """Return ``R{grads}`` by key and ``R{grad_input}`` (None if not needed)."""
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def activation_slopes(
    activation: ActivationFunction, z: Array, a: Array, grad_a: Array, where: str
) -> tuple[Array, Array, Array]:
    """``f'(z)``, the delta ``grad_a f'(z)`` and ``grad_a f''(z)``.

    Raises
    ------
    NotImplementedError
        For softmax (not elementwise) and for an activation without ``f''``.
    """
    if not activation.elementwise:
        raise NotImplementedError(
            f"exact Hessian-vector products need an elementwise activation with "
            f"a second derivative, but layer {where!r} uses {activation.name!r}, "
            "whose second derivative (a third-order tensor per row) annlens does "
            "not provide; help: drop the softmax and train on logits with "
            "softmax_cross_entropy, whose curvature is supported"
        )
    try:
        second = activation.second_derivative(z, a)
    except NotImplementedError as error:
        raise NotImplementedError(f"layer {where!r}: {error}") from error
    delta = activation.backward(z, a, grad_a)
    return activation.derivative(z, a), delta, grad_a * second


class DenseROp(LayerROp):
    """R-passes of :class:`~annlens.layers.Dense`, ``a = f(x W + b)``.

    Notes
    -----
    Forward, along ``v = (V_W, V_b)``::

        R{z} = R{x} W + x V_W + V_b
        R{a} = f'(z) R{z}

    Backward, with ``g = grad_output`` and ``delta = g f'(z)``::

        R{delta}      = R{g} f'(z) + g f''(z) R{z}
        R{grads["W"]} = R{x}^T delta + x^T R{delta}
        R{grads["b"]} = sum over the batch of R{delta}
        R{grad_input} = R{delta} W^T + delta V_W^T
    """

    def __init__(self, layer: Layer, grad_output: Array) -> None:
        super().__init__(layer, grad_output)
        assert isinstance(layer, Dense), "DenseROp is built from a Dense layer"
        x, z, a = layer.cache  # type: ignore[misc]
        self.x = x
        self.W = layer.params["W"].copy()
        self.bias = "b" in layer.params
        self.slope, self.delta, self.curvature = activation_slopes(
            layer.activation, z, a, grad_output, layer.name
        )

    def forward(self, r_x: Array | None, v: Direction) -> tuple[Array, Any]:
        r_z = self.x @ v["W"]
        if r_x is not None:
            r_z += r_x @ self.W
        if self.bias:
            r_z += v["b"]
        return self.slope * r_z, (r_x, r_z)

    def backward(
        self, r_grad_output: Array, v: Direction, memo: Any, need_input: bool
    ) -> tuple[dict[str, Array], Array | None]:
        r_x, r_z = memo
        r_delta = r_grad_output * self.slope + self.curvature * r_z

        r_grads = {"W": self.x.T @ r_delta}
        if r_x is not None:
            r_grads["W"] += r_x.T @ self.delta
        if self.bias:
            r_grads["b"] = r_delta.sum(axis=0)

        if not need_input:
            return r_grads, None
        return r_grads, r_delta @ self.W.T + self.delta @ v["W"].T


class ActivationROp(LayerROp):
    """R-passes of the :class:`~annlens.layers.Activation` layer, ``a = f(z)``.

    Notes
    -----
    Its input is ``z`` itself, so ``R{z} = R{x}`` and, with ``g = grad_output``::

        R{a}          = f'(z) R{z}
        R{grad_input} = R{delta} = R{g} f'(z) + g f''(z) R{z}
    """

    def __init__(self, layer: Layer, grad_output: Array) -> None:
        super().__init__(layer, grad_output)
        assert isinstance(layer, Activation), "ActivationROp needs an Activation"
        z, a = layer.cache  # type: ignore[misc]
        self.slope, _, self.curvature = activation_slopes(
            layer.activation, z, a, grad_output, layer.name
        )

    def forward(self, r_x: Array | None, v: Direction) -> tuple[Array | None, Any]:
        return (None if r_x is None else self.slope * r_x), r_x

    def backward(
        self, r_grad_output: Array, v: Direction, memo: Any, need_input: bool
    ) -> tuple[dict[str, Array], Array | None]:
        if not need_input:
            return {}, None
        r_delta = r_grad_output * self.slope
        if memo is not None:
            r_delta += self.curvature * memo
        return {}, r_delta


class DropoutROp(LayerROp):
    """R-passes of :class:`~annlens.layers.Dropout`, with the mask of the pass.

    Notes
    -----
    With its mask fixed, dropout is linear, ``output = x * mask``, so::

        R{output}     = R{x} * mask
        R{grad_input} = R{grad_output} * mask

    In evaluation mode (no mask) both are the identity.
    """

    def __init__(self, layer: Layer, grad_output: Array) -> None:
        super().__init__(layer, grad_output)
        assert isinstance(layer, Dropout), "DropoutROp needs a Dropout layer"
        (self.mask,) = layer.cache  # type: ignore[misc]

    def forward(self, r_x: Array | None, v: Direction) -> tuple[Array | None, Any]:
        if r_x is None or self.mask is None:
            return r_x, None
        return r_x * self.mask, None

    def backward(
        self, r_grad_output: Array, v: Direction, memo: Any, need_input: bool
    ) -> tuple[dict[str, Array], Array | None]:
        if not need_input:
            return {}, None
        if self.mask is None:
            return {}, r_grad_output
        return {}, r_grad_output * self.mask
