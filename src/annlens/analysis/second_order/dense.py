"""The whole Hessian of a small model's loss, one exact product per column.

:func:`hessian` forms the matrix by multiplying the Hessian with each unit
vector in turn: ``size`` products and ``size²`` floats, so it is meant for
tiny models (a few thousand parameters at most), for teaching and for checking
the product-only tools of ``spectrum.py`` and ``trace.py`` against
``numpy.linalg``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from annlens.analysis.second_order.hvp import HessianOperator
from annlens.errors import ConfigError
from annlens.losses import Loss
from annlens.model import Sequential


def hessian(
    model: Sequential,
    x: Any,
    y: Any,
    loss: str | Loss,
    *,
    max_size: int = 4096,
) -> NDArray[np.float64]:
    """The Hessian matrix of the loss on a batch with respect to every parameter.

    Parameters
    ----------
    model : Sequential
        The model, left as it was.
    x : array-like, (batch, in_features)
        The input batch.
    y : array-like
        The targets.
    loss : str or Loss
        MSE, SoftmaxCrossEntropy or BinaryCrossEntropy.
    max_size : int
        Refuse a model with more parameters than this.

    Returns
    -------
    ndarray, (size, size), float64
        ``H[i, j] = d²L / d theta_i d theta_j``, with the parameters flattened
        in ``model.parameters()`` order, each in C order. Column ``j`` is the
        exact product ``H e_j``; the matrix is not symmetrised, so its
        asymmetry shows the rounding of the products.

    Raises
    ------
    ConfigError
        When the model has more than ``max_size`` parameters.

    Notes
    -----
    ``H e_j`` is computed by the R-operator (see
    :class:`~annlens.analysis.second_order.hvp.HessianOperator`), so the
    matrix is exact up to rounding.

    References
    ----------
    Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian.
    Neural Computation 6(1), 147-160.
    """
    size = sum(value.size for value in model.parameters().values())
    if size > max_size:
        raise ConfigError(
            f"the dense Hessian of {size} parameters needs {size} products and "
            f"{size * size * 8 / 2**20:.0f} MiB, over max_size={max_size}; help: "
            "use hessian_eigenvalues or hessian_trace, or raise max_size"
        )
    operator = HessianOperator(model, x, y, loss)
    matrix = np.empty((operator.size, operator.size))
    unit = np.zeros(operator.size)
    for j in range(operator.size):
        unit[j] = 1.0
        matrix[:, j] = operator.matvec(unit)
        unit[j] = 0.0
    return matrix
