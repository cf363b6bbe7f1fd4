"""Softmax: the one built-in activation that is not elementwise.

Each row of ``z`` becomes a probability vector, so ``a_i`` depends on every
``z_j`` of its row and ``f'`` is a Jacobian per row rather than a number per
element. This file holds the stable ``softmax`` and ``log_softmax`` functions
and the :class:`Softmax` activation, whose backward and forward-mode products
are written with that Jacobian. Its second derivative (a third-order tensor per
row) is not provided.
"""

from __future__ import annotations

import numpy as np

from annlens.activations.base import Activation, Array
from annlens.activations.registry import register_activation


def log_softmax(z: Array) -> Array:
    """``log softmax(z)`` along the last axis, by log-sum-exp.

    Parameters
    ----------
    z : ndarray, (batch, classes)
        Scores (logits).

    Returns
    -------
    ndarray, (batch, classes)
        ``z_i - max(z) - log(sum_j exp(z_j - max(z)))``: finite for any finite
        ``z``, including entries of size 1e4.
    """
    z = np.asarray(z)
    shifted = z - z.max(axis=-1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return shifted


def softmax(z: Array) -> Array:
    """``exp(z_i) / sum_j exp(z_j)`` along the last axis, without overflow.

    Parameters
    ----------
    z : ndarray, (batch, classes)
        Scores (logits).

    Returns
    -------
    ndarray, (batch, classes)
        Rows of non-negative numbers summing to 1.
    """
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


class Softmax(Activation):
    """``a = softmax(z)`` row by row.

    Notes
    -----
    The Jacobian of one row is ``J = diag(a) - a aᵀ``. It is symmetric, so the
    backward product (``Jᵀ grad_a``) and the forward-mode product (``J v``)
    share one formula, with the sum over the row::

        delta = a * (grad_a - sum(a * grad_a))
        J v   = a * (v - sum(a * v))

    Since ``f'`` is not elementwise, :meth:`derivative` is refused; Dense and
    the Activation layer only call :meth:`backward`.
    """

    name = "softmax"
    elementwise = False

    def forward(self, z: Array) -> Array:
        return softmax(z)

    def derivative(self, z: Array, a: Array) -> Array:
        raise NotImplementedError(
            "softmax is not elementwise, so it has no elementwise derivative; "
            "its Jacobian per row is diag(a) - a aᵀ; help: use backward(z, a, "
            "grad_a) or jvp(z, a, v) for its products with a vector"
        )

    def second_derivative(self, z: Array, a: Array) -> Array:
        raise NotImplementedError(
            "softmax has no elementwise second derivative (its second derivative "
            "is a third-order tensor per row) and annlens does not provide it; "
            "help: for curvature, pair the logits with softmax_cross_entropy, "
            "whose Hessian needs only the softmax itself"
        )

    def backward(self, z: Array, a: Array, grad_a: Array) -> Array:
        return a * (grad_a - np.sum(a * grad_a, axis=-1, keepdims=True))

    def jvp(self, z: Array, a: Array, v: Array) -> Array:
        return a * (v - np.sum(a * v, axis=-1, keepdims=True))


register_activation(Softmax.name, Softmax)
