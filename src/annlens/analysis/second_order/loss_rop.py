"""The R-operator at the loss: ``R{dL/d output}`` from ``R{output}``.

The backward pass starts from ``grad_output = dL/d output``; its R-operator is
the Hessian of the loss with respect to the output applied to ``R{output}``.
This file holds that product for the losses whose curvature annlens supports,
mean squared error, softmax cross-entropy and binary cross-entropy, each with
its reduction's scale, and :func:`loss_rop`, which refuses every other loss.

References
----------
Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian.
Neural Computation 6(1), 147-160.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from annlens.activations import softmax
from annlens.layers.base import Array
from annlens.losses import MSE, BinaryCrossEntropy, Loss, SoftmaxCrossEntropy


class LossROp:
    """The product of the loss's Hessian in the output with ``R{output}``.

    Parameters
    ----------
    loss : Loss
        The loss, one of the supported types.
    output : ndarray, (batch, outputs)
        The model output of the pass.
    target : array-like
        The target of the pass, already checked by ``loss.value_and_grad``.

    Notes
    -----
    With ``s`` the reduction's scale (1 for ``"sum"``) and ``r = R{output}``:

    - MSE, ``L = s sum (output - y)²``, ``s = 1 / (batch * outputs)``::

          R{grad_output} = 2 s r

    - SoftmaxCrossEntropy on logits, ``p = softmax(output)`` per row,
      ``s = 1 / batch``, ``q`` the (smoothed) target distribution; each row's
      Hessian is ``sum(q) (diag(p) - p pᵀ)``, so::

          R{grad_output} = s sum(q) p * (r - sum(p r))

    - BinaryCrossEntropy on logits, ``s = 1 / (batch * outputs)``::

          R{grad_output} = s sigma(output) (1 - sigma(output)) r
    """

    def __init__(self, loss: Loss, output: Array, target: Any) -> None:
        self.loss = loss
        self.scale = 1.0
        if isinstance(loss, SoftmaxCrossEntropy):
            if loss.reduction == "mean":
                self.scale = 1.0 / output.shape[0]
            q = loss.target_distribution(target, output)
            self.p = softmax(output)
            self.mass = self.scale * q.sum(axis=1, keepdims=True)
            return
        if loss.reduction == "mean":
            self.scale = 1.0 / output.size
        if isinstance(loss, BinaryCrossEntropy):
            e = np.exp(-np.abs(output))
            self.slope = self.scale * e / (1 + e) ** 2  # sigma (1 - sigma)

    def __call__(self, r_output: Array | None, output: Array) -> Array:
        """``R{grad_output}``, shape (batch, outputs); zero when ``r_output`` is."""
        if r_output is None:
            return np.zeros_like(output)
        if isinstance(self.loss, SoftmaxCrossEntropy):
            centred = r_output - (self.p * r_output).sum(axis=1, keepdims=True)
            return np.asarray(self.mass * self.p * centred, dtype=output.dtype)
        if isinstance(self.loss, BinaryCrossEntropy):
            return np.asarray(self.slope * r_output, dtype=output.dtype)
        return np.asarray((2 * self.scale) * r_output, dtype=output.dtype)

    def __repr__(self) -> str:
        return f"LossROp({self.loss!r})"


SUPPORTED = (MSE, SoftmaxCrossEntropy, BinaryCrossEntropy)


def check_loss(loss: Loss) -> None:
    """Refuse a loss whose curvature is not supported, before any pass runs.

    The type must be exactly one of :data:`SUPPORTED`: a subclass may compute
    another loss, whose Hessian this file would then get wrong.

    Raises
    ------
    NotImplementedError
        Naming the loss and the supported ones.
    """
    if type(loss) not in SUPPORTED:
        names = ", ".join(cls.__name__ for cls in SUPPORTED)
        raise NotImplementedError(
            f"exact Hessian-vector products do not support the loss "
            f"{type(loss).__name__} ({loss!r}); supported losses: {names}"
        )


def loss_rop(loss: Loss, output: Array, target: Any) -> LossROp:
    """The R-operator at ``loss`` for the pass with ``output`` and ``target``."""
    check_loss(loss)
    return LossROp(loss, output, target)
