"""How far two values are apart, and how far is too far.

:func:`difference` measures two arrays against each other (the largest
absolute difference, and that relative to the scale of the arrays); the
tolerances say what counts as agreement in each dtype; :func:`excess` puts a
difference against both tolerances at once, so that rows, steps and variants
can be ranked by how far beyond agreement they are.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from annlens.errors import ConfigError, ShapeError


def default_tolerance(dtype: Any) -> float:
    """The relative difference counted as agreement: 1e-10 in float64, 1e-4 in
    float32."""
    return 1e-10 if np.dtype(dtype) == np.float64 else 1e-4


def default_atol(dtype: Any) -> float:
    """The absolute difference always counted as agreement: a hundredth of
    the relative tolerance, 1e-12 in float64 and 1e-6 in float32."""
    return default_tolerance(dtype) / 100


def check_tolerance(value: Any, name: str) -> float:
    """``value`` as a float >= 0, or a ConfigError naming ``name``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating, np.integer))
        or not value >= 0
        or math.isinf(value)
    ):
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def excess(
    max_abs: float,
    max_rel: float,
    tolerance: float,
    atol: float,
    error_ratio: float | None = None,
    rounding: float = 0.0,
) -> float:
    """How many times over its most lenient limit a difference is.

    ``min(max_rel / tolerance, max_abs / atol, error_ratio / rounding)``, the
    last only when ``error_ratio`` was measured: at most 1 when the difference
    is within any of the limits, above 1 when it is beyond all of them. A limit
    of 0 allows nothing (a ratio of infinity for any nonzero value), and NaN
    counts as infinity.

    Parameters
    ----------
    max_abs, max_rel : float
        The difference (see :func:`difference`).
    tolerance, atol : float
        The relative and absolute difference counted as agreement.
    error_ratio : float, optional
        annlens's distance from a float64 evaluation over PyTorch's (see
        :func:`error_ratio`); None when not measured.
    rounding : float
        The largest ``error_ratio`` counted as agreement.
    """
    ratios = [_ratio(max_rel, tolerance), _ratio(max_abs, atol)]
    if error_ratio is not None:
        ratios.append(_ratio(error_ratio, rounding))
    return min(ratios)


def error_ratio(error_annlens: float, error_torch: float) -> float:
    """How many times further from the exact value annlens is than PyTorch.

    0 when both are exact, infinity when only PyTorch is, NaN for NaN.
    """
    return (
        _ratio(error_annlens, error_torch) if not math.isnan(error_torch) else math.nan
    )


def _ratio(value: float, limit: float) -> float:
    """``value / limit``; for a limit of 0, infinity unless the value is 0."""
    if math.isnan(value):
        return math.inf
    if limit > 0:
        return value / limit
    return math.inf if value > 0 else 0.0


def difference(ours: Any, theirs: Any, where: str = "") -> tuple[float, float]:
    """The largest absolute and relative difference of two arrays.

    Parameters
    ----------
    ours, theirs : array-like of the same shape
        The annlens and the torch value.
    where : str
        Named in the error when the shapes differ.

    Returns
    -------
    (float, float)
        ``max |ours - theirs|`` and that divided by the larger of
        ``max |ours|`` and ``max |theirs|`` (0 when both are all zeros).

    Notes
    -----
    The relative difference is taken against the scale of the whole array,
    not element by element, so entries that are 0 in both do not divide by 0
    and tiny entries next to large ones do not dominate.
    """
    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(theirs, dtype=np.float64)
    if a.shape != b.shape:
        raise ShapeError(
            f"cannot compare {where or 'values'}: annlens has shape {a.shape}, "
            f"torch has {b.shape}"
        )
    if a.size == 0:
        return 0.0, 0.0
    max_abs = float(np.max(np.abs(a - b)))
    scale = float(max(np.max(np.abs(a)), np.max(np.abs(b))))
    return max_abs, (max_abs / scale if scale > 0 else max_abs)


def resolve_tolerances(dtype: Any, tolerance: Any, atol: Any) -> tuple[float, float]:
    """``(tolerance, atol)``, each checked, or the dtype's default when None
    or NaN.

    Raises
    ------
    ConfigError
        When a tolerance given is not a finite number >= 0.
    """

    def given(value: Any) -> bool:
        return value is not None and not (
            isinstance(value, float) and math.isnan(value)
        )

    relative = default_tolerance(dtype)
    if given(tolerance):
        relative = check_tolerance(tolerance, "tolerance")
    absolute = default_atol(dtype)
    if given(atol):
        absolute = check_tolerance(atol, "atol")
    return relative, absolute


#: The default largest ratio of annlens's float32 error to PyTorch's that
#: counts as agreement (see :func:`error_ratio`). The float32 errors of two
#: correct implementations differ by a factor of a few from batch to batch in
#: a network that amplifies rounding (up to 3.8 over 33 batches of the
#: six-layer tanh network with normal(0, 1) weights in
#: examples/initialization.toml), while a wrong formula puts annlens orders of
#: magnitude further from the float64 values than PyTorch.
DEFAULT_ROUNDING = 4.0


def resolve_rounding(rounding: Any) -> float:
    """``rounding`` checked, or :data:`DEFAULT_ROUNDING` when None or NaN."""
    if rounding is None or (isinstance(rounding, float) and math.isnan(rounding)):
        return DEFAULT_ROUNDING
    return check_tolerance(rounding, "rounding")
