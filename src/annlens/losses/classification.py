"""Classification losses, all on unnormalised scores (logits) or log-probabilities.

- :class:`BinaryCrossEntropy`: one sigmoid per output, fused with the loss.
- :class:`SoftmaxCrossEntropy`: softmax over the classes fused with the loss,
  for class indices or class probabilities, with label smoothing.
- :class:`NLLLoss`: the negative log-likelihood of log-probabilities.

Fusing the nonlinearity with the loss is what keeps them finite at logits of
size 1e4: the loss is written with ``log1p`` and log-sum-exp instead of taking
the logarithm of a probability that has rounded to 0, and the gradient
collapses to ``probability - target``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from annlens.activations.softmax import log_softmax
from annlens.errors import ConfigError, LabelError
from annlens.losses.base import Array, Loss
from annlens.losses.registry import register_loss
from annlens.losses.targets import (
    binary_target,
    check_output,
    class_indices,
    class_probabilities,
)


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy on logits, one independent sigmoid per output.

    Parameters
    ----------
    reduction : {"mean", "sum"}
        "mean" divides by the number of elements, as PyTorch's
        ``BCEWithLogitsLoss``.

    Notes
    -----
    Targets ``y`` in [0, 1] have the output's shape (batch, outputs); a 1-D
    target is accepted for an output of shape (batch, 1). Per element, with
    ``z`` the logit and ``sigma`` the sigmoid::

        l(z, y) = -y log sigma(z) - (1 - y) log(1 - sigma(z))
                = max(z, 0) - z y + log1p(exp(-|z|))
        dl/dz   = sigma(z) - y
    """

    name: ClassVar[str] = "binary_cross_entropy"

    def value_and_grad(self, output: Array, target: Any) -> tuple[float, Array]:
        z = check_output(output, "BinaryCrossEntropy")
        y = binary_target(target, z, "BinaryCrossEntropy")
        e = np.exp(-np.abs(z))
        per_element = np.maximum(z, 0) - z * y + np.log1p(e)
        value, scale = self.reduce(per_element.ravel())
        sigma = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
        return value, scale * (sigma - y)


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of ``softmax(logits)`` against the targets, fused.

    Parameters
    ----------
    label_smoothing : float
        In [0, 1]: the target ``q`` becomes ``(1 - eps) q + eps / classes``,
        as PyTorch's ``label_smoothing``.
    reduction : {"mean", "sum"}
        "mean" divides by the batch size.

    Notes
    -----
    Targets are class indices of shape (batch,), or class probabilities
    (one-hot or soft) of shape (batch, classes). With ``q`` the (smoothed)
    target distribution per sample and ``p = softmax(z)``::

        l(z, q) = -sum_c q_c log p_c,   log p = z - logsumexp(z)
        dl/dz   = p sum_c q_c - q        (= p - q when q sums to 1)
    """

    name: ClassVar[str] = "softmax_cross_entropy"

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ConfigError(
                f"SoftmaxCrossEntropy label_smoothing must be in [0, 1], "
                f"got {label_smoothing!r}"
            )
        self.label_smoothing = float(label_smoothing)

    def target_distribution(self, target: Any, logits: Array) -> Array:
        """The (smoothed) target distribution ``q``, shape (batch, classes)."""
        where = "SoftmaxCrossEntropy"
        batch, classes = logits.shape
        shape = np.shape(target)
        if len(shape) == 2 and shape[1] == 1 and classes != 1:
            raise LabelError(
                f"{where} expects class indices of shape ({batch},) or class "
                f"probabilities of shape ({batch}, {classes}), got {shape}; "
                "help: pass class indices as a 1-D array, y.ravel()"
            )
        if len(shape) == 1:
            labels = class_indices(target, logits, where)
            q = np.zeros_like(logits)
            q[np.arange(batch), labels] = 1
        else:
            q = class_probabilities(target, logits, where)
        if self.label_smoothing:
            q = (1 - self.label_smoothing) * q + self.label_smoothing / classes
        return q

    def value_and_grad(self, output: Array, target: Any) -> tuple[float, Array]:
        z = check_output(output, "SoftmaxCrossEntropy")
        if np.ndim(target) == 1 and not self.label_smoothing:
            return self._value_and_grad_for_labels(z, target)
        q = self.target_distribution(target, z)
        log_p = log_softmax(z)
        value, scale = self.reduce(-np.sum(q * log_p, axis=1))
        p = np.exp(log_p)
        return value, scale * (p * np.sum(q, axis=1, keepdims=True) - q)

    def _value_and_grad_for_labels(self, z: Array, target: Any) -> tuple[float, Array]:
        """The same loss for class indices ``y``, without building one-hot ``q``.

        With a one-hot target the sum over classes picks one entry per row.
        Writing ``u = z - max(z)`` (every ``u <= 0``, so ``exp`` cannot
        overflow) and ``S = sum_c exp(u_c)`` (at least 1)::

            l_i     = -log p[i, y_i] = log S_i - u[i, y_i]
            dl/dz_i = p_i - e_{y_i},   p_i = exp(u_i) / S_i

        The gradient is built in the one array ``exp(u)``: divided by ``S``
        and multiplied by the reduction's scale in one pass, then the scale
        taken off at each label.
        """
        labels = class_indices(target, z, "SoftmaxCrossEntropy")
        rows = np.arange(z.shape[0])
        u = z - z.max(axis=1, keepdims=True)
        grad = np.exp(u)
        total = grad.sum(axis=1, keepdims=True)
        value, scale = self.reduce(np.log(total[:, 0]) - u[rows, labels])
        grad *= scale / total
        grad[rows, labels] -= scale
        return value, grad


class NLLLoss(Loss):
    """Negative log-likelihood of log-probabilities, for class indices.

    Parameters
    ----------
    reduction : {"mean", "sum"}
        "mean" divides by the batch size.

    Notes
    -----
    The output holds log-probabilities (batch, classes), such as
    :func:`~annlens.activations.log_softmax` of logits; targets are class
    indices ``y`` of shape (batch,)::

        l_i                = -output[i, y_i]
        dL/d output[i, c]  = -s [c = y_i]
    """

    name: ClassVar[str] = "nll"

    def value_and_grad(self, output: Array, target: Any) -> tuple[float, Array]:
        log_p = check_output(output, "NLLLoss")
        labels = class_indices(target, log_p, "NLLLoss")
        rows = np.arange(log_p.shape[0])
        value, scale = self.reduce(-log_p[rows, labels])
        grad = np.zeros_like(log_p)
        grad[rows, labels] = -scale
        return value, grad


for _cls in (BinaryCrossEntropy, SoftmaxCrossEntropy, NLLLoss):
    register_loss(_cls.name, _cls)
register_loss("bce", BinaryCrossEntropy)
register_loss("cross_entropy", SoftmaxCrossEntropy)
