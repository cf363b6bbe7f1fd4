"""Exact Hessian-vector products of a model's loss on one batch.

:class:`HessianOperator` runs one ordinary forward and backward pass of a model
on a batch (hooks silenced, the model left as it was), keeps from it what the
R-passes of each layer need, and then multiplies the Hessian of the loss with
respect to every parameter by any direction ``v``, exactly, at the cost of
about two more passes per product and without ever forming the Hessian.
:func:`hessian_vector_product` is the one-off form. Directions and products
are dicts keyed like ``model.parameters()`` (``"dense_0.W"``); the operator
also flattens them into vectors in that order, for the spectrum tools.

References
----------
Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian.
Neural Computation 6(1), 147-160.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from annlens.analysis.second_order.loss_rop import check_loss, loss_rop
from annlens.analysis.second_order.rop import (
    ActivationROp,
    DenseROp,
    DropoutROp,
    LayerROp,
)
from annlens.analysis.second_order.rop_batchnorm import BatchNormROp
from annlens.analysis.second_order.state import quiet_pass
from annlens.errors import ConfigError, ShapeError
from annlens.layers import Activation, BatchNorm, Dense, Dropout, Layer
from annlens.layers.base import Array
from annlens.losses import Loss, get_loss
from annlens.model import Sequential

ROPS: dict[type[Layer], type[LayerROp]] = {
    Dense: DenseROp,
    Activation: ActivationROp,
    Dropout: DropoutROp,
    BatchNorm: BatchNormROp,
}
"""The R-pass class of each supported layer type, matched exactly."""


def layer_rop(layer: Layer, grad_output: Array) -> LayerROp:
    """The R-passes of ``layer``, chosen by its exact type.

    A subclass of a supported layer is refused too: it may compute something
    else, and its R-passes would then be silently wrong.

    Raises
    ------
    NotImplementedError
        For a layer type without R-passes.
    """
    kind = ROPS.get(type(layer))
    if kind is None:
        supported = ", ".join(cls.__name__ for cls in ROPS)
        raise NotImplementedError(
            f"exact Hessian-vector products have no R-operator for layer "
            f"{layer.name!r} of type {type(layer).__name__}; supported layer "
            f"types: {supported}"
        )
    return kind(layer, grad_output)


class HessianOperator:
    """The Hessian of a model's loss on one batch, as the linear map ``v -> H v``.

    Parameters
    ----------
    model : Sequential
        The model, in the mode it is in: training mode uses batch statistics
        and the dropout masks the model's generator draws next; evaluation
        mode the running statistics and no dropout. It is left as it was.
    x : array-like, (batch, in_features)
        The input batch.
    y : array-like
        The targets, as the loss takes them.
    loss : str or Loss
        MSE, SoftmaxCrossEntropy or BinaryCrossEntropy, by name or instance.

    Attributes
    ----------
    names : tuple of str
        The parameter names, in ``model.parameters()`` order.
    shapes : tuple of tuple of int
        Their shapes.
    size : int
        The number of parameters, the Hessian's side.
    parameters : dict of str to ndarray
        Copies of the parameters at which the Hessian is taken.
    dtype : numpy dtype
        The model's dtype, in which the products are computed.
    loss_value : float
        The loss on the batch.
    gradient : dict of str to ndarray
        dL/d parameter on the batch, by name.

    Notes
    -----
    Built once, the operator holds the point at which the Hessian is taken:
    copies of the parameters and what the pass computed. Training the model
    afterwards does not change it. Each product runs the R-forward pass (layer
    by layer, ``R{x} -> R{output}``), the loss's Hessian in the output, and the
    R-backward pass (``R{grad_output} -> R{grads}``); ``R{grads}`` is ``H v``.
    The maths of each step is in the Notes of the classes in ``rop.py``,
    ``rop_batchnorm.py`` and ``loss_rop.py``.

    The product is exact up to rounding, not an approximation: in float64 it
    agrees with PyTorch's double-backward product to within 1e-15
    (max-norm relative error). Where an
    activation has a kink (ReLU at 0), ``f''`` is taken as 0, as autograd does.

    Supported: Dense and Activation layers with every built-in elementwise
    activation (and user activations that give ``f''``), Dropout (its mask is
    fixed for the pass, so it is linear), and BatchNorm in both modes (its
    R-operator through the batch statistics is derived in ``rop_batchnorm.py``).
    Refused with NotImplementedError: softmax used as an activation, other
    layer types and other losses.

    References
    ----------
    Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian.
    Neural Computation 6(1), 147-160.

    Examples
    --------
    >>> op = HessianOperator(model, x, y, "mse")  # doctest: +SKIP
    >>> ones = {n: np.ones_like(p) for n, p in op.parameters.items()}  # doctest: +SKIP
    >>> hv = op.apply(ones)  # doctest: +SKIP
    """

    def __init__(self, model: Sequential, x: Any, y: Any, loss: str | Loss) -> None:
        if not isinstance(model, Sequential):
            raise ConfigError(
                f"HessianOperator needs a Sequential model, got {type(model).__name__}"
            )
        self.loss = get_loss(loss)
        check_loss(self.loss)
        self.dtype = model.dtype
        self.layer_names = tuple(layer.name for layer in model.layers)
        self.layer_keys = tuple(tuple(layer.params) for layer in model.layers)
        self.parameters = {
            name: value.copy() for name, value in model.parameters().items()
        }
        self.names = tuple(self.parameters)
        self.shapes = tuple(value.shape for value in self.parameters.values())
        self.size = int(sum(value.size for value in self.parameters.values()))

        with quiet_pass(model):
            self.output = model.forward(x)
            value, grad = self.loss.value_and_grad(self.output, y)
            self.loss_value = float(value)
            self.loss_rop = loss_rop(self.loss, self.output, y)

            grad_outputs: list[Array] = []
            g = np.asarray(grad, dtype=self.dtype)
            for layer in reversed(model.layers):
                grad_outputs.append(g)
                if layer is model.layers[0]:
                    layer.backward_parameters(g)
                else:
                    g = layer.backward(g)
            grad_outputs.reverse()

            self.gradient = dict(model.gradients())
            self.rops = [
                layer_rop(layer, g)
                for layer, g in zip(model.layers, grad_outputs, strict=True)
            ]

    # -- products ---------------------------------------------------------------

    def apply(self, v: Mapping[str, ArrayLike]) -> dict[str, Array]:
        """``H v`` for a direction ``v`` keyed like ``model.parameters()``.

        Parameters
        ----------
        v : mapping of str to array-like
            One entry per parameter, each of that parameter's shape.

        Returns
        -------
        dict of str to ndarray
            ``H v``, same keys (in parameter order), shapes and the model's dtype.

        Raises
        ------
        ConfigError
            When ``v`` misses a parameter or names one the model lacks.
        ShapeError
            When an entry's shape is not its parameter's.
        """
        directions = self._directions(v)

        r: Array | None = None
        memos = []
        for rop, direction in zip(self.rops, directions, strict=True):
            r, memo = rop.forward(r, direction)
            memos.append(memo)

        r_grad = self.loss_rop(r, self.output)
        products: dict[str, Array] = {}
        for index in reversed(range(len(self.rops))):
            r_grads, r_input = self.rops[index].backward(
                r_grad, directions[index], memos[index], need_input=index > 0
            )
            for key, value in r_grads.items():
                products[f"{self.layer_names[index]}.{key}"] = value
            if r_input is not None:
                r_grad = r_input
        return {name: products[name] for name in self.names}

    def matvec(self, vector: ArrayLike) -> NDArray[np.float64]:
        """``H v`` for a flat vector of :attr:`size` entries, in parameter order.

        A column of shape ``(size, 1)`` gives a column back, as SciPy's
        ``LinearOperator`` passes and expects.
        """
        column = np.shape(vector) == (self.size, 1)
        if column:
            vector = np.asarray(vector).reshape(self.size)
        product = self.flatten(self.apply(self.unflatten(vector)))
        return product.reshape(self.size, 1) if column else product

    __matmul__ = matvec

    @property
    def shape(self) -> tuple[int, int]:
        """``(size, size)``: with :attr:`dtype` and :meth:`matvec`, what
        ``scipy.sparse.linalg.aslinearoperator`` needs to take this operator."""
        return (self.size, self.size)

    def _directions(self, v: Mapping[str, ArrayLike]) -> list[dict[str, Array]]:
        """Check ``v`` and split it into each layer's share, in the model's dtype."""
        if not isinstance(v, Mapping):
            raise ConfigError(
                "a direction is a dict of parameter name to array, like "
                f"model.parameters(), got {type(v).__name__}; help: use "
                "matvec() for a flat vector"
            )
        missing = [name for name in self.names if name not in v]
        unexpected = sorted(set(v) - set(self.names))
        if missing or unexpected:
            raise ConfigError(
                f"the direction does not fit the model's parameters: missing "
                f"{missing}, unexpected {unexpected}"
            )
        arrays = {name: np.asarray(v[name], dtype=self.dtype) for name in self.names}
        for name, shape in zip(self.names, self.shapes, strict=True):
            if arrays[name].shape != shape:
                raise ShapeError(
                    f"direction entry {name!r} has shape {arrays[name].shape}; "
                    f"the parameter has shape {shape}"
                )
        return [
            {key: arrays[f"{layer}.{key}"] for key in keys}
            for layer, keys in zip(self.layer_names, self.layer_keys, strict=True)
        ]

    # -- flat vectors --------------------------------------------------------------

    def flatten(self, values: Mapping[str, ArrayLike]) -> NDArray[np.float64]:
        """One float64 vector of every entry of ``values``, in parameter order."""
        if not self.names:
            return np.zeros(0)
        return np.concatenate(
            [np.asarray(values[name], dtype=np.float64).ravel() for name in self.names]
        )

    def unflatten(self, vector: ArrayLike) -> dict[str, Array]:
        """The dict of parameter name to array that a flat vector holds."""
        raw = np.asarray(vector)
        if raw.dtype.kind not in "fiub":
            raise ShapeError(
                f"a flat direction holds real numbers; got dtype {raw.dtype}"
                + (
                    "; help: pass the real part, v.real"
                    if raw.dtype.kind == "c"
                    else ""
                )
            )
        flat = raw.astype(self.dtype, copy=False)
        if flat.shape != (self.size,):
            raise ShapeError(
                f"a flat direction has shape ({self.size},), one entry per "
                f"parameter, got {flat.shape}"
            )
        values, start = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            count = int(np.prod(shape))
            values[name] = flat[start : start + count].reshape(shape)
            start += count
        return values

    def __repr__(self) -> str:
        return (
            f"HessianOperator({self.size} parameters, loss={self.loss!r}, "
            f"loss_value={self.loss_value:.6g}, dtype={self.dtype.name!r})"
        )


def hessian_vector_product(
    model: Sequential, x: Any, y: Any, loss: str | Loss, v: Mapping[str, ArrayLike]
) -> dict[str, Array]:
    """The exact product ``H v`` of the loss's Hessian with a direction ``v``.

    Parameters
    ----------
    model : Sequential
        The model, left as it was (parameters, gradients, caches, buffers,
        noise generator, hooks).
    x : array-like, (batch, in_features)
        The input batch.
    y : array-like
        The targets.
    loss : str or Loss
        MSE, SoftmaxCrossEntropy or BinaryCrossEntropy.
    v : mapping of str to array-like
        The direction, keyed and shaped like ``model.parameters()``.

    Returns
    -------
    dict of str to ndarray
        ``H v``, keyed like ``model.parameters()``.

    Notes
    -----
    Builds a :class:`HessianOperator` (one forward and backward pass) and
    applies it once; for several products on one batch, build the operator
    once and call :meth:`HessianOperator.apply`. For a Dense layer
    ``z = x W + b``, ``a = f(z)``, along ``v = (V_W, V_b)``::

        R{z}          = R{x} W + x V_W + V_b,     R{a} = f'(z) R{z}
        R{delta}      = R{grad_output} f'(z) + grad_output f''(z) R{z}
        R{grads["W"]} = R{x}^T delta + x^T R{delta}
        R{grads["b"]} = sum over the batch of R{delta}
        R{grad_input} = R{delta} W^T + delta V_W^T

    and the backward pass starts from the loss's Hessian in the output applied
    to ``R{output}`` (see :class:`~annlens.analysis.second_order.loss_rop.LossROp`).

    References
    ----------
    Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian.
    Neural Computation 6(1), 147-160.
    """
    return HessianOperator(model, x, y, loss).apply(v)
