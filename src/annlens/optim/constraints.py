"""Constraints applied to parameters after each optimizer step.

A constraint projects a parameter back into an allowed set: every unit's
incoming weight vector inside a ball (max-norm), or every weight at or above
zero (non-negativity). ``constraint.apply(model)`` is called after
``optimizer.step()``; it writes the projected values into the parameter
arrays in place, as the optimizer step itself does, so references to the
parameters stay valid. ``constraint.project(param)`` is the pure projection.

References
----------
Srebro, N. & Shraibman, A. (2005). Rank, trace-norm and max-norm. COLT.
Srivastava, N. et al. (2014). Dropout: a simple way to prevent neural networks
from overfitting. JMLR 15. (Max-norm with dropout.)
Lee, D. D. & Seung, H. S. (1999). Learning the parts of objects by
non-negative matrix factorization. Nature 401.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from annlens.errors import ConfigError
from annlens.layers.base import Array
from annlens.optim.base import check_number
from annlens.optim.select import PatternSelected


class Constraint(PatternSelected):
    """Base class: a projection applied to the parameters a pattern chooses."""

    def project(self, param: Array) -> Array:
        """The nearest allowed value of ``param``, as a new array."""
        raise NotImplementedError(f"{type(self).__name__} does not define project")

    def apply(self, model: Any) -> None:
        """Project each chosen parameter, writing into it in place.

        Every projection is computed before any is written, so a parameter
        that a projection refuses leaves all of them as they were.
        """
        projected = [
            (layer.params[key], self.project(layer.params[key]))
            for _, layer, key in self.chosen(model)
        ]
        for param, value in projected:
            param[...] = value


class MaxNorm(Constraint):
    """Keep each unit's incoming weight vector within an L2 ball.

    Parameters
    ----------
    max_value : float
        The largest norm allowed, > 0 (default 3, as used with dropout).
    axis : int
        The axis the norm runs over. A Dense ``W`` has shape
        (in_features, out_features), so the default 0 takes each column:
        the weights into one unit.
    pattern : str or list of str
        Globs over qualified parameter names (default ``"*.W"``).

    Notes
    -----
    For each column ``w_j`` of ``W``: ``w_j <- w_j * min(1, max_value / ||w_j||)``.
    Columns inside the ball are left exactly as they are.
    """

    def __init__(
        self,
        max_value: float = 3.0,
        axis: int = 0,
        pattern: str | Sequence[str] = "*.W",
    ) -> None:
        super().__init__(pattern)
        self.max_value = check_number(
            "MaxNorm", "max_value", max_value, 0.0, low_open=True
        )
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ConfigError(f"MaxNorm axis must be an integer, got {axis!r}")
        self.axis = axis

    def project(self, param: Array) -> Array:
        if not -param.ndim <= self.axis < param.ndim:
            raise ConfigError(
                f"MaxNorm axis {self.axis} does not exist for a parameter of "
                f"shape {param.shape}"
            )
        norms = np.sqrt(np.sum(np.square(param), axis=self.axis, keepdims=True))
        over = norms > self.max_value
        factor = np.where(over, self.max_value / np.where(over, norms, 1), 1)
        return (param * factor).astype(param.dtype)

    def config(self) -> dict[str, Any]:
        return {"max_value": self.max_value, "axis": self.axis, **super().config()}


class NonNegative(Constraint):
    """Keep every chosen weight at or above zero: ``W <- max(W, 0)``.

    Parameters
    ----------
    pattern : str or list of str
        Globs over qualified parameter names (default ``"*.W"``).
    """

    def project(self, param: Array) -> Array:
        return np.maximum(param, 0).astype(param.dtype)
