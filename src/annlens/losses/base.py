"""The Loss contract: a value and its gradient with respect to the model output.

A loss compares the model output (batch, outputs) with a target and returns a
scalar; its gradient dL/d output starts the backward pass. ``reduction`` is
``"mean"`` or ``"sum"``. As in PyTorch, ``"mean"`` averages over the batch for
losses with one value per sample (cross-entropy, NLL) and over every element
for elementwise losses (MSE, MAE, Huber, binary cross-entropy), which pass
their per-element values, flattened, to :meth:`Loss.reduce`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from annlens.errors import ConfigError

Array = NDArray[np.floating]


class Loss:
    """Base class of every loss.

    Subclasses implement :meth:`value_and_grad`; :meth:`value` and
    :meth:`gradient` follow from it.

    Parameters
    ----------
    reduction : {"mean", "sum"}
        How per-sample losses become one number.
    """

    name: ClassVar[str] = "loss"

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum"):
            raise ConfigError(
                f"{type(self).__name__} reduction must be 'mean' or 'sum', "
                f"got {reduction!r}"
            )
        self.reduction = reduction

    def value_and_grad(self, output: Array, target: Any) -> tuple[float, Array]:
        """Return the loss and dL/d output, same shape and dtype as ``output``."""
        raise NotImplementedError(
            f"{type(self).__name__} does not define value_and_grad"
        )

    def value(self, output: Array, target: Any) -> float:
        """The loss alone."""
        return self.value_and_grad(output, target)[0]

    def gradient(self, output: Array, target: Any) -> Array:
        """dL/d output alone."""
        return self.value_and_grad(output, target)[1]

    def reduce(self, per_sample: Array) -> tuple[float, float]:
        """The reduced loss and the scale its gradient carries (1/batch or 1)."""
        scale = 1.0 / len(per_sample) if self.reduction == "mean" else 1.0
        return float(per_sample.sum() * scale), scale

    def __call__(self, output: Array, target: Any) -> float:
        return self.value(output, target)

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({settings})"
