"""The built-in activation functions, each with f, f' and f''.

Each class is three short methods: the value, its first derivative and its
second derivative, written from ``a = f(z)`` where that is cheaper and stable.
"""

from __future__ import annotations

import numpy as np

from annlens.activations.base import Activation, Array
from annlens.activations.registry import register_activation


class Identity(Activation):
    """``f(z) = z``; f' = 1, f'' = 0."""

    name = "identity"

    def forward(self, z: Array) -> Array:
        return z

    def derivative(self, z: Array, a: Array) -> Array:
        return np.ones_like(z)

    def second_derivative(self, z: Array, a: Array) -> Array:
        return np.zeros_like(z)

    def backward(self, z: Array, a: Array, grad_a: Array) -> Array:
        return grad_a


class ReLU(Activation):
    """``f(z) = max(0, z)``; f' = [z > 0] (0 at z = 0, as in PyTorch), f'' = 0."""

    name = "relu"

    def forward(self, z: Array) -> Array:
        return np.maximum(z, 0)

    def derivative(self, z: Array, a: Array) -> Array:
        return (z > 0).astype(z.dtype)

    def second_derivative(self, z: Array, a: Array) -> Array:
        return np.zeros_like(z)

    def backward(self, z: Array, a: Array, grad_a: Array) -> Array:
        return np.where(z > 0, grad_a, 0).astype(grad_a.dtype, copy=False)


class Sigmoid(Activation):
    """``f(z) = 1 / (1 + exp(-z))``; f' = a (1 - a), f'' = f' (1 - 2a).

    Notes
    -----
    Computed as ``exp(-log1p(exp(-|z|)))`` folded by sign, so that neither
    large positive nor large negative ``z`` overflows.
    """

    name = "sigmoid"

    def forward(self, z: Array) -> Array:
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)

    def derivative(self, z: Array, a: Array) -> Array:
        return a * (1 - a)

    def second_derivative(self, z: Array, a: Array) -> Array:
        return a * (1 - a) * (1 - 2 * a)


class Tanh(Activation):
    """``f(z) = tanh(z)``; f' = 1 - a², f'' = -2 a (1 - a²)."""

    name = "tanh"

    def forward(self, z: Array) -> Array:
        return np.tanh(z)

    def derivative(self, z: Array, a: Array) -> Array:
        return 1 - a * a

    def second_derivative(self, z: Array, a: Array) -> Array:
        return -2 * a * (1 - a * a)


for _cls in (Identity, ReLU, Sigmoid, Tanh):
    register_activation(_cls.name, _cls)
