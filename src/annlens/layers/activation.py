"""Activation as a layer of its own: ``a = f(z)`` with no parameters.

Its input is the pre-activation ``z`` and its output ``a``; it fires
``pre_activation``, ``post_activation`` and ``pre_activation_grad`` like the
activation inside a Dense layer, so hooks see the same quantities either way.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from annlens.activations import Activation as ActivationFunction
from annlens.activations import get_activation
from annlens.layers.base import Array, Layer
from annlens.layers.dense import Dense


class Activation(Layer):
    """A standalone nonlinearity.

    Parameters
    ----------
    activation : str or annlens.activations.Activation
        The function ``f``, by name or as an object.
    name : str, optional
        The layer name; the model assigns ``activation_<index>`` when omitted.

    Notes
    -----
    Forward ``a = f(z)``; backward ``grad_input = delta = grad_output * f'(z)``.
    """

    kind: ClassVar[str] = "activation"
    stages: ClassVar[tuple[str, ...]] = Dense.stages

    def __init__(
        self,
        activation: str | dict[str, Any] | ActivationFunction,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        self.activation = get_activation(activation)

    def compute(self, x: Array) -> Array:
        z = x
        if self.hooked:
            z = self.hook_table.fire("pre_activation", z)

        a = self.activation.forward(z)
        if not self.activation.vouched and (
            type(a) is not np.ndarray or a.shape != z.shape or a.dtype != z.dtype
        ):
            self.refuse_activation_result(a, z, "f(z)")
        # f'(z) comes from f's own output, not from a post_activation hook's.
        own = a
        if self.hooked:
            a = self.hook_table.fire("post_activation", a)

        self.keep(z, own)
        return a

    def compute_backward(self, grad_output: Array) -> Array:
        z, a = self.cache  # type: ignore[misc]
        delta = self.activation.backward(z, a, grad_output)
        if not self.activation.vouched and (
            type(delta) is not np.ndarray
            or delta.shape != z.shape
            or delta.dtype != z.dtype
        ):
            self.refuse_activation_result(delta, z, "delta = grad_output * f'(z)")
        if self.hooked:
            delta = self.hook_table.fire("pre_activation_grad", delta)
        return delta

    def describe(self) -> dict[str, str]:
        return {"activation": self.activation.name, "init": ""}

    def config(self) -> dict[str, Any]:
        return {"activation": self.activation.config(), "name": self.name}
