"""The trace of the Hessian from products alone: Hutchinson's estimator.

:func:`hessian_trace` estimates ``tr(H)``, the sum of the Hessian's
eigenvalues (its mean curvature times the number of parameters), from exact
Hessian-vector products with random vectors drawn from a seeded generator,
and says how uncertain the estimate is. :func:`hutchinson_trace` is the same
for any symmetric linear map given as a function of a flat vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from annlens.analysis.second_order.hvp import HessianOperator
from annlens.analysis.second_order.spectrum import MatVec
from annlens.errors import ConfigError
from annlens.losses import Loss
from annlens.model import Sequential


@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson's estimate of a trace.

    Attributes
    ----------
    estimate : float
        The mean of the samples ``vᵀ H v``.
    std_error : float
        Their standard deviation (with ``ddof=1``) over ``sqrt(samples)``;
        the exact trace lies within two of these of the estimate about 95% of
        the time.
    samples : ndarray, (n,)
        Each ``vᵀ H v``.
    distribution : str
        ``"rademacher"`` or ``"normal"``.
    """

    estimate: float
    std_error: float
    samples: NDArray[np.float64]
    distribution: str

    def __float__(self) -> float:
        return self.estimate

    def __repr__(self) -> str:
        return (
            f"TraceEstimate({self.estimate:.6g} ± {self.std_error:.2g}, "
            f"{len(self.samples)} {self.distribution} samples)"
        )


def hutchinson_trace(
    matvec: MatVec,
    size: int,
    samples: int = 100,
    *,
    seed: int | np.random.Generator = 0,
    distribution: str = "rademacher",
) -> TraceEstimate:
    """Estimate ``tr(H)`` as the mean of ``vᵀ H v`` over random ``v``.

    Parameters
    ----------
    matvec : callable, (size,) -> (size,)
        The linear map, ``v -> H v``.
    size : int
        The dimension.
    samples : int
        How many random vectors (one product each), at least 2.
    seed : int or numpy.random.Generator
        The generator the vectors are drawn from; a seed gives the same
        estimate every time.
    distribution : {"rademacher", "normal"}
        Entries of ``v``: +1 or -1 with equal probability, or standard normal.

    Returns
    -------
    TraceEstimate

    Notes
    -----
    For ``v`` with independent entries of mean 0 and variance 1,
    ``E[v vᵀ] = I``, so ``E[vᵀ H v] = tr(H E[v vᵀ]) = tr(H)``. The variance of
    one sample is ``2 sum_{i != j} H_ij²`` for Rademacher entries, smaller than
    the ``2 ||H||_F²`` of normal ones, which is why Rademacher is the default.

    References
    ----------
    Hutchinson, M. F. (1989). A stochastic estimator of the trace of the
    influence matrix for Laplacian smoothing splines. Communications in
    Statistics - Simulation and Computation 18(3), 1059-1076.
    """
    if not isinstance(samples, (int, np.integer)) or samples < 2:
        raise ConfigError(f"samples must be an integer >= 2, got {samples!r}")
    if distribution not in ("rademacher", "normal"):
        raise ConfigError(
            f"distribution must be 'rademacher' or 'normal', got {distribution!r}"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    values = np.empty(samples)
    for i in range(samples):
        if distribution == "rademacher":
            v = rng.integers(0, 2, size).astype(np.float64) * 2 - 1
        else:
            v = rng.standard_normal(size)
        values[i] = v @ np.asarray(matvec(v), dtype=np.float64)
    return TraceEstimate(
        estimate=float(values.mean()),
        std_error=float(values.std(ddof=1) / math.sqrt(samples)),
        samples=values,
        distribution=distribution,
    )


def hessian_trace(
    model: Sequential,
    x: Any,
    y: Any,
    loss: str | Loss,
    samples: int = 100,
    *,
    seed: int | np.random.Generator = 0,
    distribution: str = "rademacher",
) -> TraceEstimate:
    """Hutchinson's estimate of the trace of the loss Hessian on a batch.

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
    samples : int
        How many random vectors, one exact Hessian-vector product each.
    seed : int or numpy.random.Generator
        For the random vectors.
    distribution : {"rademacher", "normal"}
        See :func:`hutchinson_trace`.

    Returns
    -------
    TraceEstimate

    Notes
    -----
    ``tr(H) = E[vᵀ H v]`` for random ``v`` with ``E[v vᵀ] = I``; see
    :func:`hutchinson_trace`.

    References
    ----------
    Hutchinson, M. F. (1989). A stochastic estimator of the trace of the
    influence matrix for Laplacian smoothing splines. Communications in
    Statistics - Simulation and Computation 18(3), 1059-1076.
    """
    operator = HessianOperator(model, x, y, loss)
    return hutchinson_trace(
        operator.matvec, operator.size, samples, seed=seed, distribution=distribution
    )
