"""Checking an activation's derivatives against central finite differences.

:func:`check_activation` evaluates ``f'`` and ``f''`` (and the ``backward`` and
``jvp`` products built on them) on a grid of points in float64, compares each
with a central difference, and returns an :class:`ActivationCheck` that says
how far apart they are and where. It reports; it never raises for a wrong
derivative. It is meant for user-defined activations as much as built-in ones.

The comparison, shared with :func:`annlens.analysis.gradcheck`, is the
max-norm relative error of :func:`max_relative_error`, with its scale floored
at the resolution of the finite differences (:func:`noise_floor`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from annlens.activations.base import Activation, Array
from annlens.activations.registry import get_activation


def max_relative_error(
    analytic: Array, numeric: Array, floor: float = 1e-12
) -> tuple[float, int]:
    """The max-norm relative error of two arrays and where it is largest.

    Parameters
    ----------
    analytic, numeric : ndarray, same shape
        The derivative as computed and as estimated.
    floor : float
        The smallest scale divided by, so that two arrays of (near) zeros
        compare as equal instead of dividing zero by zero.

    Returns
    -------
    error : float
        ``max_i |a_i - n_i| / max(max_i |a_i|, max_i |n_i|, floor)``.
    index : int
        The flat index of the largest ``|a_i - n_i|``.

    Notes
    -----
    Dividing by the largest magnitude in the array, not by each element's own,
    keeps the error meaningful where the derivative is tiny: there a central
    difference carries rounding noise of about ``1e-16 |f| / eps`` that would
    make an element-by-element relative error look large for a correct
    derivative. A wrong derivative still shows, as a difference of the size of
    the derivative itself. :func:`noise_floor` gives the ``floor`` that keeps
    rounding noise alone from failing a check.
    """
    diff = np.abs(np.asarray(analytic, dtype=np.float64) - numeric).ravel()
    if diff.size == 0:
        return 0.0, 0
    index = int(np.argmax(diff))
    scale = max(float(np.max(np.abs(analytic))), float(np.max(np.abs(numeric))))
    return float(diff[index] / max(scale, floor)), index


def noise_floor(magnitude: float, eps: float, tolerance: float) -> float:
    """The scale below which a finite-difference comparison turns absolute.

    Parameters
    ----------
    magnitude : float
        The size of the values whose differences estimate the derivative (the
        loss, or ``max |f|``).
    eps : float
        The finite-difference step.
    tolerance : float
        The error that passes.

    Returns
    -------
    float
        ``10 u magnitude / (eps tolerance)``, at least 1e-12, with ``u`` the
        float64 unit roundoff (2.2e-16).

    Notes
    -----
    A central difference ``(F(x+eps) - F(x-eps)) / 2 eps`` of values of size
    ``|F|`` carries rounding noise of up to about ``u |F| / eps``: with
    ``eps = 1e-6`` and ``|F| = 1``, about 2e-10, whatever the true derivative.
    Dividing by at least this floor keeps that noise below a tenth of the
    tolerance, so that a correct gradient that has all but vanished (deep
    sigmoid networks) is not reported as wrong. Below the floor the check is in
    effect absolute, to ``10 u |F| / eps``: as fine as central differences can
    resolve.
    """
    unit_roundoff = float(np.finfo(np.float64).eps)
    return max(10 * unit_roundoff * magnitude / (eps * tolerance), 1e-12)


@dataclass(frozen=True)
class DerivativeCheck:
    """One derivative compared with its finite-difference estimate.

    Attributes
    ----------
    label : str
        What was checked: ``"f'"``, ``"f''"``, ``"backward"`` or ``"jvp"``.
    error : float
        The max-norm relative error (see :func:`max_relative_error`).
    passed : bool
        ``error <= tolerance``.
    where : str
        Where the two disagree most, as ``z = 0.35`` (or a row and column).
    analytic, numeric : float
        The two values there.
    note : str
        Why nothing could be compared (the derivative raised), else "".
    """

    label: str
    error: float
    passed: bool
    where: str = ""
    analytic: float = float("nan")
    numeric: float = float("nan")
    note: str = ""

    def __str__(self) -> str:
        if self.note:
            return f"{self.label:<9} FAILED: {self.note}"
        status = "ok" if self.passed else "MISMATCH"
        return (
            f"{self.label:<9} {status:<8} max relative error {self.error:.2e}, "
            f"worst at {self.where}: analytic {self.analytic:.10g}, "
            f"numeric {self.numeric:.10g}"
        )


@dataclass(frozen=True)
class ActivationCheck:
    """What :func:`check_activation` found.

    Attributes
    ----------
    name : str
        The activation's name.
    first : DerivativeCheck
        ``f'`` (for an activation that is not elementwise: its backward product).
    second : DerivativeCheck or None
        ``f''``, compared with differences of ``f'``; None when not defined.
    products : list of DerivativeCheck
        ``backward`` and ``jvp`` compared with what ``f'`` implies.
    notes : list of str
        What was left out, and why.
    tolerance, eps : float
        The settings used.
    points : int
        The number of points compared.
    """

    name: str
    first: DerivativeCheck
    second: DerivativeCheck | None
    products: list[DerivativeCheck]
    tolerance: float
    eps: float
    points: int
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every derivative that was checked agrees within tolerance."""
        checks = [self.first, *self.products]
        if self.second is not None:
            checks.append(self.second)
        return all(check.passed for check in checks)

    def __str__(self) -> str:
        status = "passed" if self.passed else "FAILED"
        lines = [
            f"check_activation({self.name}): {status} "
            f"(tolerance {self.tolerance:g}, eps {self.eps:g}, {self.points} points)"
        ]
        checks = [self.first, self.second, *self.products]
        lines += [f"  {check}" for check in checks if check is not None]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        second = "None" if self.second is None else f"{self.second.error:.2e}"
        return (
            f"ActivationCheck(name={self.name!r}, passed={self.passed}, "
            f"first_error={self.first.error:.2e}, second_error={second})"
        )


def _compare(
    label: str,
    compute: Callable[[], Array],
    numeric: Array,
    z: Array,
    tolerance: float,
    floor: float,
) -> DerivativeCheck:
    """Evaluate ``compute()`` and compare it with ``numeric``, never raising."""
    try:
        analytic = np.broadcast_to(np.asarray(compute(), dtype=np.float64), z.shape)
    except Exception as problem:  # the report says what the derivative did
        note = f"{label} raised {type(problem).__name__}: {problem}"
        return DerivativeCheck(label, float("inf"), False, note=note)
    error, index = max_relative_error(analytic, numeric, floor)
    row, column = np.unravel_index(index, z.shape)
    where = f"z = {z.flat[index]:.6g}"
    if z.shape[0] > 1:
        where += f" (row {row}, column {column})"
    return DerivativeCheck(
        label,
        error,
        bool(error <= tolerance),
        where,
        float(analytic.flat[index]),
        float(numeric.flat[index]),
    )


def check_activation(
    act: Activation | str,
    points: Sequence[float] | Array | None = None,
    eps: float = 1e-6,
    tolerance: float = 1e-6,
    kinks: Sequence[float] | None = None,
) -> ActivationCheck:
    """Compare an activation's derivatives with central finite differences.

    Parameters
    ----------
    act : Activation or str
        The activation, or a registered name.
    points : array-like of float, optional
        Where to compare; default 241 points evenly spaced on [-6, 6].
    eps : float
        The finite-difference step.
    tolerance : float
        The largest max-norm relative error that passes.
    kinks : sequence of float, optional
        Points where ``f`` or ``f'`` is not smooth; points closer than
        ``10 eps`` to one are skipped. Default: the activation's ``kinks``.

    Returns
    -------
    ActivationCheck
        The errors, where they are largest, and ``passed``.

    Notes
    -----
    All in float64. ``f'(z)`` is compared with ``(f(z+h) - f(z-h)) / 2h`` and
    ``f''(z)`` with ``(f'(z+h) - f'(z-h)) / 2h`` using the activation's own
    ``f'`` (a second difference of ``f`` would drown in rounding at this step).
    ``backward`` and ``jvp`` are compared with the same estimate times a random
    vector. Each error is a max-norm relative error whose scale is floored by
    :func:`noise_floor`, so rounding noise alone never fails a check. An
    activation that is not elementwise (softmax) is checked through
    its products alone: ``backward(z, a, u)`` against the gradient of
    ``<u, f(z)>`` and ``jvp(z, a, v)`` against ``(f(z+hv) - f(z-hv)) / 2h``.
    """
    act = get_activation(act)
    grid = np.linspace(-6.0, 6.0, 241) if points is None else points
    z_all = np.asarray(grid, dtype=np.float64).ravel()
    kinks = tuple(getattr(act, "kinks", ())) if kinks is None else tuple(kinks)
    near = np.zeros(z_all.shape, dtype=bool)
    for kink in kinks:
        near |= np.abs(z_all - kink) < 10 * eps
    notes = []
    if near.any():
        listed = ", ".join(f"{k:g}" for k in kinks)
        notes.append(
            f"skipped {int(near.sum())} of {near.size} points lying within "
            f"{10 * eps:g} of a kink (kinks at {listed})"
        )
    z_flat = z_all[~near]
    rng = np.random.default_rng(0)

    if act.elementwise:
        z = z_flat.reshape(1, -1)
        first, second, products = _elementwise(act, z, eps, tolerance, rng, notes)
    else:
        z = z_flat[: (z_flat.size // 4) * 4].reshape(-1, 4)
        first, second, products = _jacobian(act, z, eps, tolerance, rng, notes)
    return ActivationCheck(
        act.name, first, second, products, tolerance, eps, z.size, notes
    )


def _size(*arrays: Array) -> float:
    """The largest magnitude in ``arrays``, the size a difference is taken of."""
    return max(float(np.max(np.abs(array), initial=0.0)) for array in arrays)


def _elementwise(
    act: Activation,
    z: Array,
    eps: float,
    tolerance: float,
    rng: np.random.Generator,
    notes: list[str],
) -> tuple[DerivativeCheck, DerivativeCheck | None, list[DerivativeCheck]]:
    """The checks of an elementwise activation on the row of points ``z``."""
    up, down = z + eps, z - eps
    step = up - down
    a, a_up, a_down = act.forward(z), act.forward(up), act.forward(down)
    slope = (a_up - a_down) / step
    floor = noise_floor(_size(a_up, a_down), eps, tolerance)

    first = _compare("f'", lambda: act.derivative(z, a), slope, z, tolerance, floor)

    second: DerivativeCheck | None = None
    try:
        act.second_derivative(z, a)
        defined = True
    except NotImplementedError as error:
        notes.append(f"f'' not checked: {error}")
        defined = False
    except Exception:
        defined = True  # _compare reports what it raised
    if defined:
        try:
            slope_up, slope_down = (
                act.derivative(up, a_up),
                act.derivative(down, a_down),
            )
        except Exception as error:
            note = f"f'' not estimated: f' raised {type(error).__name__}: {error}"
            second = DerivativeCheck("f''", float("inf"), False, note=note)
        else:
            curvature = (slope_up - slope_down) / step
            second = _compare(
                "f''",
                lambda: act.second_derivative(z, a),
                curvature,
                z,
                tolerance,
                noise_floor(_size(slope_up, slope_down), eps, tolerance),
            )

    u, v = rng.normal(size=z.shape), rng.normal(size=z.shape)
    products = [
        _compare(
            "backward",
            lambda: act.backward(z, a, u),
            u * slope,
            z,
            tolerance,
            floor * _size(u),
        ),
        _compare(
            "jvp", lambda: act.jvp(z, a, v), v * slope, z, tolerance, floor * _size(v)
        ),
    ]
    return first, second, products


def _jacobian(
    act: Activation,
    z: Array,
    eps: float,
    tolerance: float,
    rng: np.random.Generator,
    notes: list[str],
) -> tuple[DerivativeCheck, DerivativeCheck | None, list[DerivativeCheck]]:
    """The checks of an activation that is not elementwise, rows of ``z``."""
    a = act.forward(z)
    u, v = rng.normal(size=z.shape), rng.normal(size=z.shape)

    # gradient of <u, f(z)> one entry of z at a time: the backward product
    vjp = np.empty_like(z)
    for index in np.ndindex(*z.shape):
        up, down = z.copy(), z.copy()
        up[index] += eps
        down[index] -= eps
        step = up[index] - down[index]
        vjp[index] = np.sum(u * (act.forward(up) - act.forward(down))) / step
    floor = noise_floor(_size(np.sum(np.abs(u * a), axis=-1)), eps, tolerance)
    first = _compare(
        "backward", lambda: act.backward(z, a, u), vjp, z, tolerance, floor
    )

    directional = (act.forward(z + eps * v) - act.forward(z - eps * v)) / (2 * eps)
    floor = noise_floor(_size(a), eps, tolerance)
    jvp = _compare("jvp", lambda: act.jvp(z, a, v), directional, z, tolerance, floor)
    notes.append(
        f"{act.name} is not elementwise: f' checked through its products with "
        "vectors, f'' not checked"
    )
    return first, None, [jvp]
