"""Regression losses: mean squared error, mean absolute error, Huber.

Each compares an output of shape (batch, outputs) with targets of the same
shape, elementwise; ``reduction="mean"`` averages over every element, as
PyTorch does (so a wider output does not scale the loss up).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from annlens.errors import ConfigError
from annlens.losses.base import Array, Loss
from annlens.losses.registry import register_loss
from annlens.losses.targets import check_output, matching_target


class MSE(Loss):
    """Mean squared error ``L = reduce((output - y)²)``.

    Parameters
    ----------
    reduction : {"mean", "sum"}
        "mean" divides by the number of elements, batch * outputs.

    Notes
    -----
    With ``d = output - y`` and ``s`` the reduction's scale (``1 / d.size`` or
    1)::

        L             = s * sum(d²)
        dL/d output   = 2 s d
    """

    name: ClassVar[str] = "mse"

    def value_and_grad(self, output: Array, target: Any) -> tuple[float, Array]:
        output = check_output(output, "MSE")
        d = output - matching_target(target, output, "MSE")
        value, scale = self.reduce((d * d).ravel())
        return value, (2 * scale) * d


class MAE(Loss):
    """Mean absolute error ``L = reduce(|output - y|)``.

    Notes
    -----
    ``dL/d output = s sign(output - y)``, which is 0 where ``output = y``
    (the subgradient PyTorch uses).
    """

    name: ClassVar[str] = "mae"

    def value_and_grad(self, output: Array, target: Any) -> tuple[float, Array]:
        output = check_output(output, "MAE")
        d = output - matching_target(target, output, "MAE")
        value, scale = self.reduce(np.abs(d).ravel())
        return value, scale * np.sign(d)


class Huber(Loss):
    """Huber loss: quadratic for small errors, linear for large ones.

    Parameters
    ----------
    delta : float
        Where the quadratic part meets the linear part, > 0.
    reduction : {"mean", "sum"}
        "mean" divides by the number of elements.

    Notes
    -----
    Per element, with ``d = output - y``::

        l(d)  = d² / 2                  if |d| <= delta
              = delta (|d| - delta / 2)  otherwise
        l'(d) = clip(d, -delta, delta)

    References
    ----------
    Huber, P. J. (1964). Robust estimation of a location parameter.
    Annals of Mathematical Statistics 35(1).
    """

    name: ClassVar[str] = "huber"

    def __init__(self, delta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        if not delta > 0:
            raise ConfigError(f"Huber delta must be > 0, got {delta!r}")
        self.delta = float(delta)

    def value_and_grad(self, output: Array, target: Any) -> tuple[float, Array]:
        output = check_output(output, "Huber")
        d = output - matching_target(target, output, "Huber")
        size = np.abs(d)
        per_element = np.where(
            size <= self.delta, 0.5 * d * d, self.delta * (size - 0.5 * self.delta)
        )
        value, scale = self.reduce(per_element.ravel())
        return value, scale * np.clip(d, -self.delta, self.delta)


for _cls in (MSE, MAE, Huber):
    register_loss(_cls.name, _cls)
