"""The R-forward and R-backward passes of BatchNorm, in training and evaluation mode.

In evaluation mode BatchNorm is affine in its input, with the running
statistics as constants. In training mode the batch mean and variance depend
on every row, and so does ``inv_std``; its R-operator is one more line of the
chain rule, written out in :class:`BatchNormROp`'s Notes. What the layer's
hooks replaced (``x_hat`` at ``normalized``) plays no part: the passes are run
with hooks silenced, so ``x_hat`` is the layer's own.

References
----------
Ioffe, S. & Szegedy, C. (2015). Batch normalization: accelerating deep network
training by reducing internal covariate shift. ICML.

Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian.
Neural Computation 6(1), 147-160.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from annlens.analysis.second_order.rop import Direction, LayerROp
from annlens.layers import BatchNorm, Layer
from annlens.layers.base import Array


class BatchNormROp(LayerROp):
    """R-passes of :class:`~annlens.layers.BatchNorm`, ``gamma * x_hat + beta``.

    Notes
    -----
    Per feature, with ``s = inv_std``, ``N`` the batch size, ``mean`` over the
    batch and ``v = (V_gamma, V_beta)``. Evaluation mode (``s`` constant)::

        R{x_hat} = s R{x}

    Training mode: ``R{mu} = mean(R{x})``, and since ``sum (x - mu) = 0``,
    ``R{var} = 2 mean((x - mu) R{x})``; with ``x - mu = x_hat / s``::

        R{s} / s = -s mean(x_hat R{x})
        R{x_hat} = s (R{x} - mean(R{x}) - x_hat mean(x_hat R{x}))

    Then, in both modes::

        R{output} = V_gamma x_hat + gamma R{x_hat} + V_beta

    Backward, with ``g = grad_output`` and ``d = g gamma`` (dL/d x_hat)::

        R{grads["gamma"]} = sum over the batch of R{g} x_hat + g R{x_hat}
        R{grads["beta"]}  = sum over the batch of R{g}
        R{d}              = R{g} gamma + g V_gamma

    Evaluation mode: ``R{grad_input} = R{d} s``. Training mode, differentiating
    ``grad_input = s / N (N d - sum d - x_hat P)`` with ``P = sum d x_hat``::

        R{P}          = sum R{d} x_hat + d R{x_hat}
        R{grad_input} = (R{s} / s) grad_input
                        + s / N (N R{d} - sum R{d} - R{x_hat} P - x_hat R{P})

    Without ``affine`` there is no gamma or beta: ``output = x_hat`` and ``d = g``.
    """

    def __init__(self, layer: Layer, grad_output: Array) -> None:
        super().__init__(layer, grad_output)
        assert isinstance(layer, BatchNorm), "BatchNormROp needs a BatchNorm layer"
        x_hat, _, inv_std, training = layer.cache  # type: ignore[misc]
        self.x_hat, self.inv_std, self.training = x_hat, inv_std, bool(training)
        self.affine = layer.affine
        width = x_hat.shape[1]
        self.gamma = (
            layer.params["gamma"].copy() if self.affine else np.ones(width, x_hat.dtype)
        )
        self.g = grad_output
        self.d = grad_output * self.gamma

        n = x_hat.shape[0]
        self.projection = (self.d * x_hat).sum(axis=0)
        self.grad_input = (inv_std / n) * (
            n * self.d - self.d.sum(axis=0) - x_hat * self.projection
        )

    def forward(self, r_x: Array | None, v: Direction) -> tuple[Array | None, Any]:
        r_x_hat, r_s_over_s = self._r_normalized(r_x)
        if not self.affine:
            return r_x_hat, (r_x_hat, r_s_over_s)

        r_output = v["gamma"] * self.x_hat + v["beta"]
        if r_x_hat is not None:
            r_output = r_output + self.gamma * r_x_hat
        return r_output, (r_x_hat, r_s_over_s)

    def _r_normalized(self, r_x: Array | None) -> tuple[Array | None, Array | None]:
        """``R{x_hat}`` and, in training mode, ``R{s} / s`` (None when zero)."""
        if r_x is None:
            return None, None
        s = self.inv_std
        if not self.training:
            return s * r_x, None
        spread = (self.x_hat * r_x).mean(axis=0)
        r_x_hat = s * (r_x - r_x.mean(axis=0) - self.x_hat * spread)
        return r_x_hat, -s * spread

    def backward(
        self, r_grad_output: Array, v: Direction, memo: Any, need_input: bool
    ) -> tuple[dict[str, Array], Array | None]:
        r_x_hat, r_s_over_s = memo
        r_g = r_grad_output

        r_grads: dict[str, Array] = {}
        r_d = r_g
        if self.affine:
            r_gamma = r_g * self.x_hat
            if r_x_hat is not None:
                r_gamma = r_gamma + self.g * r_x_hat
            r_grads = {"gamma": r_gamma.sum(axis=0), "beta": r_g.sum(axis=0)}
            r_d = r_g * self.gamma + self.g * v["gamma"]

        if not need_input:
            return r_grads, None
        s = self.inv_std
        if not self.training:
            return r_grads, r_d * s
        return r_grads, self._r_grad_input_training(r_d, r_x_hat, r_s_over_s)

    def _r_grad_input_training(
        self, r_d: Array, r_x_hat: Array | None, r_s_over_s: Array | None
    ) -> Array:
        """``R{grad_input}`` through the batch statistics (training mode)."""
        n = r_d.shape[0]
        r_projection = (r_d * self.x_hat).sum(axis=0)
        inner = n * r_d - r_d.sum(axis=0) - self.x_hat * r_projection
        if r_x_hat is not None:
            r_projection_x = (self.d * r_x_hat).sum(axis=0)
            inner -= r_x_hat * self.projection + self.x_hat * r_projection_x
        r_grad_input = (self.inv_std / n) * inner
        if r_s_over_s is not None:
            r_grad_input += r_s_over_s * self.grad_input
        return np.asarray(r_grad_input)
