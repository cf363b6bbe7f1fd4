"""The Hessian's largest eigenvalues from products alone: power iteration and Lanczos.

:func:`hessian_eigenvalues` finds the ``k`` eigenvalues of largest magnitude
of a model's loss Hessian on a batch, with their eigenvectors, from exact
Hessian-vector products (:class:`~annlens.analysis.second_order.hvp.HessianOperator`),
never forming the matrix. Two methods: :func:`power_iteration` with deflation,
simple and easy to follow, and :func:`lanczos` with full reorthogonalisation,
which needs far fewer products for the same accuracy. Both work on any
symmetric linear map given as a function of a flat vector, so they can be
checked on a matrix whose eigenvalues are known.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from annlens.analysis.second_order.hvp import HessianOperator
from annlens.errors import ConfigError, check_count, did_you_mean
from annlens.layers.base import Array
from annlens.losses import Loss
from annlens.model import Sequential

Vector = NDArray[np.float64]
MatVec = Callable[[Vector], Vector]


@dataclass(frozen=True)
class HessianEigen:
    """Eigenvalues of largest magnitude and their eigenvectors.

    Attributes
    ----------
    eigenvalues : ndarray, (k,)
        Largest magnitude first.
    vectors : ndarray, (k, size)
        Unit eigenvectors, flat, in parameter order; row ``i`` goes with
        ``eigenvalues[i]``.
    residuals : ndarray, (k,)
        ``||H u - lambda u||`` of each pair (Lanczos: the usual estimate
        ``beta_m |s_mi|`` from the last step), a measure of its accuracy.
    products : int
        Hessian-vector products used.
    converged : bool
        Whether every pair met the tolerance (power iteration), or the Krylov
        space became invariant or every residual is below ``tol |lambda|``
        (Lanczos).
    method : str
        ``"power"`` or ``"lanczos"``.
    names : tuple of str
        The parameter names, to turn a flat vector back into a dict.
    shapes : tuple of tuple of int
        Their shapes.
    """

    eigenvalues: Vector
    vectors: Vector
    residuals: Vector
    products: int
    converged: bool
    method: str
    names: tuple[str, ...] = ()
    shapes: tuple[tuple[int, ...], ...] = ()

    def eigenvector(self, index: int = 0) -> dict[str, Array]:
        """Eigenvector ``index`` as a dict keyed like ``model.parameters()``."""
        count = len(self.eigenvalues)
        if (
            isinstance(index, bool)
            or not isinstance(index, (int, np.integer))
            or not -count <= index < count
        ):
            raise ConfigError(
                f"eigenvector index must be an integer from 0 to {count - 1} "
                f"(or from -{count}), one per eigenvalue found, got {index!r}"
            )
        values: dict[str, Array] = {}
        start = 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            count = int(np.prod(shape))
            values[name] = self.vectors[index, start : start + count].reshape(shape)
            start += count
        return values

    def __repr__(self) -> str:
        shown = ", ".join(f"{value:.6g}" for value in self.eigenvalues)
        return (
            f"HessianEigen([{shown}], method={self.method!r}, "
            f"products={self.products}, converged={self.converged})"
        )


def _generator(seed: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


# Every eigenvalue of a small model is cheaper and exact from the dense matrix.
DENSE_ROUTE = (
    "for every eigenvalue of a small model, use the dense Hessian: "
    "numpy.linalg.eigvalsh(annlens.analysis.second_order.hessian(model, x, y, "
    "loss))"
)


def _check_k(k: int, size: int) -> None:
    if (
        isinstance(k, bool)
        or not isinstance(k, (int, np.integer))
        or not 1 <= k <= size
    ):
        raise ConfigError(
            f"k must be an integer from 1 to the number of parameters ({size}), "
            f"got {k!r}; help: {DENSE_ROUTE}"
        )


def _check_tol(tol: Any) -> None:
    number = isinstance(tol, (int, float, np.integer, np.floating))
    if isinstance(tol, bool) or not number or not 0 <= tol < np.inf:
        raise ConfigError(f"tol must be a finite number >= 0, got {tol!r}")


def power_iteration(
    matvec: MatVec,
    size: int,
    k: int = 1,
    *,
    max_iter: int = 1000,
    tol: float = 1e-8,
    seed: int | np.random.Generator = 0,
) -> HessianEigen:
    """The ``k`` eigenvalues of largest magnitude by power iteration with deflation.

    Parameters
    ----------
    matvec : callable, (size,) -> (size,)
        The symmetric linear map, ``v -> H v``.
    size : int
        The dimension.
    k : int
        How many eigenpairs.
    max_iter : int
        The most products per eigenpair.
    tol : float
        Stop an eigenpair once its eigenvalue changes by at most ``tol |lambda|``
        from one product to the next.
    seed : int or numpy.random.Generator
        For the random start vectors.

    Returns
    -------
    HessianEigen

    Notes
    -----
    For the ``j``-th pair, iterate ``u <- H_j u / ||H_j u||`` on the deflated
    map ``H_j = H - sum_{i<j} lambda_i u_i u_iᵀ``, which keeps ``H``'s other
    eigenpairs and sends the ones found to 0, and take the Rayleigh quotient
    ``lambda = uᵀ H_j u``. The error in ``u`` shrinks as
    ``|lambda_{j+1} / lambda_j|`` per step, so close eigenvalues converge
    slowly; two of equal magnitude and opposite sign make it oscillate.
    :func:`lanczos` does better on both.
    """
    _check_k(k, size)
    _check_tol(tol)
    check_count("power iteration max_iter", max_iter)
    rng = _generator(seed)
    values: list[float] = []
    vectors: list[Vector] = []
    residuals: list[float] = []
    products, converged = 0, True

    for _ in range(k):
        u = rng.standard_normal(size)
        for found in vectors:
            u -= (found @ u) * found
        u /= np.linalg.norm(u)
        value, residual, done = 0.0, np.inf, False
        for step in range(max_iter):
            w = np.asarray(matvec(u), dtype=np.float64)
            products += 1
            for found_value, found in zip(values, vectors, strict=True):
                w -= found_value * (found @ u) * found
            new_value = float(u @ w)
            residual = float(np.linalg.norm(w - new_value * u))
            norm = float(np.linalg.norm(w))
            done = step > 0 and abs(new_value - value) <= tol * abs(new_value)
            value = new_value
            if norm == 0.0 or done:
                done = True
                break
            u = w / norm
        converged = converged and done
        values.append(value)
        vectors.append(u)
        residuals.append(residual)

    order = np.argsort(-np.abs(values), kind="stable")
    return HessianEigen(
        eigenvalues=np.asarray(values)[order],
        vectors=np.asarray(vectors).reshape(k, size)[order],
        residuals=np.asarray(residuals)[order],
        products=products,
        converged=converged,
        method="power",
    )


def lanczos(
    matvec: MatVec,
    size: int,
    k: int = 1,
    *,
    steps: int | None = None,
    tol: float = 1e-8,
    seed: int | np.random.Generator = 0,
) -> HessianEigen:
    """The ``k`` eigenvalues of largest magnitude by Lanczos iteration.

    Parameters
    ----------
    matvec : callable, (size,) -> (size,)
        The symmetric linear map, ``v -> H v``.
    size : int
        The dimension.
    k : int
        How many eigenpairs.
    steps : int, optional
        The Krylov dimension ``m``, one product each (default
        ``min(size, max(4 k, 40))``).
    tol : float
        ``converged`` is set when every residual estimate is at most
        ``tol |lambda|``.
    seed : int or numpy.random.Generator
        For the random start vector.

    Returns
    -------
    HessianEigen

    Notes
    -----
    Builds an orthonormal basis ``Q = [q_1 .. q_m]`` of the Krylov space of a
    random ``q_1`` in which ``H`` is tridiagonal::

        w       = H q_j - beta_{j-1} q_{j-1}
        alpha_j = q_jᵀ w,   w <- w - alpha_j q_j
        beta_j  = ||w||,    q_{j+1} = w / beta_j

    Every ``w`` is orthogonalised again against all of ``Q`` (full
    reorthogonalisation: ``m`` vectors of ``size`` floats kept), which keeps
    the basis orthonormal in floating point and spurious copies of eigenvalues
    away. The eigenpairs ``(theta_i, s_i)`` of the tridiagonal ``T`` give the
    Ritz values ``theta_i`` and vectors ``Q s_i``; those of largest magnitude
    converge first, with ``||H Q s_i - theta_i Q s_i|| = beta_m |s_mi|``. When
    ``beta_j`` vanishes the space is invariant and the Ritz pairs are exact.

    References
    ----------
    Lanczos, C. (1950). An iteration method for the solution of the eigenvalue
    problem of linear differential and integral operators. Journal of Research
    of the National Bureau of Standards 45(4), 255-282.

    Golub, G. H. & Van Loan, C. F. (2013). Matrix Computations, 4th ed.,
    section 10.1. Johns Hopkins University Press.
    """
    _check_k(k, size)
    _check_tol(tol)
    if steps is not None and (
        isinstance(steps, bool) or not isinstance(steps, (int, np.integer))
    ):
        raise ConfigError(f"Lanczos steps must be an integer or None, got {steps!r}")
    m = min(size, max(4 * k, 40)) if steps is None else int(steps)
    if not k <= m <= size:
        raise ConfigError(f"Lanczos steps must be from k={k} to {size}, got {steps!r}")
    rng = _generator(seed)

    basis = np.zeros((m, size))
    alpha, beta = np.zeros(m), np.zeros(m)
    q = rng.standard_normal(size)
    q /= np.linalg.norm(q)
    used = m
    for j in range(m):
        basis[j] = q
        w = np.asarray(matvec(q), dtype=np.float64)
        alpha[j] = q @ w
        for _ in range(2):  # twice is enough to orthogonalise in floating point
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta[j] = np.linalg.norm(w)
        scale = max(abs(alpha[j]), beta[j - 1] if j else 0.0, 1e-300)
        if beta[j] <= 1e-12 * scale:
            beta[j], used = 0.0, j + 1
            break
        q = w / beta[j]

    tridiagonal = (
        np.diag(alpha[:used])
        + np.diag(beta[: used - 1], 1)
        + np.diag(beta[: used - 1], -1)
    )
    theta, s = np.linalg.eigh(tridiagonal)
    chosen = np.argsort(-np.abs(theta), kind="stable")[:k]
    if len(chosen) < k:
        # In exact arithmetic the Krylov space of a random start vector holds
        # one eigenvector per distinct eigenvalue, so a repeated eigenvalue
        # (an exactly linear layer, a unit with no curvature) shrinks it,
        # whatever the seed.
        raise ConfigError(
            f"Lanczos found {used} eigenvalues, fewer than k={k}: the Krylov "
            f"space of the start vector stopped growing at dimension {used} "
            f"(of {size}), as it does when eigenvalues repeat, since it holds "
            "one copy of each; another seed does not help; help: ask for "
            f"k <= {used}, or use method='power', or {DENSE_ROUTE}"
        )
    residuals = beta[used - 1] * np.abs(s[used - 1, chosen])
    values = theta[chosen]
    return HessianEigen(
        eigenvalues=values,
        vectors=(basis[:used].T @ s[:, chosen]).T,
        residuals=residuals,
        products=used,
        converged=bool(np.all(residuals <= tol * np.abs(values))),
        method="lanczos",
    )


def hessian_eigenvalues(
    model: Sequential,
    x: Any,
    y: Any,
    loss: str | Loss,
    k: int = 1,
    *,
    method: str = "lanczos",
    seed: int | np.random.Generator = 0,
    **options: Any,
) -> HessianEigen:
    """The ``k`` eigenvalues of largest magnitude of the loss Hessian on a batch.

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
    k : int
        How many eigenpairs, from 1 to the number of parameters. Lanczos finds
        at most one copy of each distinct eigenvalue; for every eigenvalue of
        a small model, ``numpy.linalg.eigvalsh(hessian(model, x, y, loss))``
        is exact and no slower.
    method : {"lanczos", "power"}
        :func:`lanczos` or :func:`power_iteration`.
    seed : int or numpy.random.Generator
        For the random start vectors.
    **options
        ``steps`` and ``tol`` for Lanczos; ``max_iter`` and ``tol`` for power
        iteration.

    Returns
    -------
    HessianEigen
        With ``names`` and ``shapes`` set, so ``eigenvector(i)`` gives a dict.

    Notes
    -----
    The largest eigenvalue measures the sharpness of the loss along its
    steepest-curving direction; gradient descent with learning rate ``lr`` is
    unstable along directions with ``lambda > 2 / lr``.

    References
    ----------
    Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian.
    Neural Computation 6(1), 147-160.
    """
    methods: dict[str, Callable[..., HessianEigen]] = {
        "lanczos": lanczos,
        "power": power_iteration,
    }
    if method not in methods:
        raise ConfigError(
            f"hessian_eigenvalues method must be 'lanczos' or 'power', got {method!r}"
        )
    allowed = {"lanczos": ("steps", "tol"), "power": ("max_iter", "tol")}[method]
    for key in options:
        if key not in allowed:
            raise ConfigError(
                f"hessian_eigenvalues method={method!r} has no option {key!r}"
                f"{did_you_mean(key, list(allowed))}; it takes {', '.join(allowed)}"
            )
    operator = HessianOperator(model, x, y, loss)
    found = methods[method](operator.matvec, operator.size, k, seed=seed, **options)
    return dataclasses.replace(found, names=operator.names, shapes=operator.shapes)
