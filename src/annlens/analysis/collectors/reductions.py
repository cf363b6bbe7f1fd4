"""Reductions of one array, each computed at most once and shared by collectors.

When a hook fires, every collector that listens there asks the same
:class:`Reductions` object for what it needs: the sum, the sum of squares, the
minimum, a per-unit maximum, a histogram. Each is computed on first request and
kept, so two collectors that both need the maximum cost one pass, and a
quantity that follows from another (the maximum from the per-unit maxima, the
sum of ``|x|`` from the sum when the array has one sign) costs no pass at all.

This file also holds the histogram maths: equal-width bins over the array's own
``[min, max]`` and quantiles read from the cumulative counts. It keeps nothing
between hook firings; the recorder decides how long a :class:`Reductions` lives
(one training step).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]

#: The quantile levels reported as ``q01`` ... ``q99``.
QUANTILES: dict[str, float] = {
    "q01": 0.01,
    "q05": 0.05,
    "q25": 0.25,
    "q50": 0.50,
    "q75": 0.75,
    "q95": 0.95,
    "q99": 0.99,
}

#: Above this ratio of ``mean²`` to the one-pass variance, the one-pass formula
#: has lost too many digits and the variance is recomputed in two passes.
_CANCELLATION = 1e3


class Reductions:
    """Lazily computed reductions of one array.

    Parameters
    ----------
    x : ndarray
        The array, any shape; 2-D arrays are read as (batch, units) by the
        per-unit and per-sample reductions.

    Notes
    -----
    Sums and sums of squares are dot products (with ones, and with the array
    itself): one pass each in the array's own dtype, with relative errors
    near 1e-7 in float32 for the sizes of a layer (checked against float64).
    The variance is ``sumsq / n - mean²``; when ``mean²`` exceeds a thousand
    times that value (so that the subtraction cancels more than three digits)
    it is recomputed as ``mean((x - mean)²)``.
    """

    __slots__ = (
        "x",
        "flat",
        "size",
        "_sum",
        "_sumsq",
        "_min",
        "_max",
        "_abs_sum",
        "_var",
        "_col_max",
        "_col_sum",
        "_row_sumsq",
        "_hist",
    )

    def __init__(self, x: Array) -> None:
        self.x = x
        self.flat = x.reshape(-1)
        self.size = int(x.size)
        self._sum: float | None = None
        self._sumsq: float | None = None
        self._min: float | None = None
        self._max: float | None = None
        self._abs_sum: float | None = None
        self._var: float | None = None
        self._col_max: Array | None = None
        self._col_sum: Array | None = None
        self._row_sumsq: Array | None = None
        self._hist: tuple[int, float, float, NDArray[np.int64]] | None = None

    # -- one-pass sums ---------------------------------------------------------

    def sum(self) -> float:
        """``Σ x``."""
        if self._sum is None:
            if self._col_sum is not None:
                self._sum = float(self._col_sum.sum())
            else:
                self._sum = _total(self.flat)
        return self._sum

    def sumsq(self) -> float:
        """``Σ x²``, the squared L2 norm."""
        if self._sumsq is None:
            self._sumsq = float(np.dot(self.flat, self.flat))
            if not math.isfinite(self._sumsq):
                wide = _widened(self.flat)
                if wide is not None:
                    self._sumsq = float(np.dot(wide, wide))
        return self._sumsq

    def min(self) -> float:
        """The smallest entry (NaN when any entry is NaN)."""
        if self._min is None:
            self._min = float(np.minimum.reduce(self.flat)) if self.size else math.nan
        return self._min

    def max(self) -> float:
        """The largest entry (NaN when any entry is NaN)."""
        if self._max is None:
            if self._col_max is not None:
                self._max = float(self._col_max.max())
            else:
                self._max = (
                    float(np.maximum.reduce(self.flat)) if self.size else math.nan
                )
        return self._max

    def abs_sum(self) -> float:
        """``Σ |x|``; free when the array has one sign (ReLU outputs, say)."""
        if self._abs_sum is None:
            if self.size and self.min() >= 0:
                self._abs_sum = self.sum()
            elif self.size and self.max() <= 0:
                self._abs_sum = -self.sum()
            else:
                scratch = _scratch(self.size, self.flat.dtype)
                np.abs(self.flat, out=scratch)
                self._abs_sum = _total(scratch)
        return self._abs_sum

    # -- moments -----------------------------------------------------------------

    def mean(self) -> float:
        """``Σ x / n``."""
        return self.sum() / self.size if self.size else math.nan

    def var(self) -> float:
        """The population variance ``Σ (x - mean)² / n``."""
        if self._var is None:
            if not self.size:
                return math.nan
            mean = self.mean()
            var = self.sumsq() / self.size - mean * mean
            if math.isfinite(var) and mean * mean > _CANCELLATION * max(var, 0.0):
                centred = self.flat.astype(np.float64) - mean
                var = float(np.dot(centred, centred)) / self.size
            self._var = max(var, 0.0) if math.isfinite(var) else var
        return self._var

    # -- per unit and per sample ---------------------------------------------------

    def column_max(self) -> Array:
        """The maximum over the batch of each unit, shape (units,)."""
        if self._col_max is None:
            self._col_max = self.x.max(axis=0)
        return self._col_max

    def column_sum(self) -> Array:
        """The sum over the batch of each unit, shape (units,).

        Computed as ``ones @ x``, a matrix-vector product about twice as fast
        as ``x.sum(axis=0)``.
        """
        if self._col_sum is None:
            self._col_sum = _ones(self.x.shape[0], self.x.dtype) @ self.x
        return self._col_sum

    def row_sumsq(self) -> Array:
        """The squared L2 norm of each sample (row), shape (batch,)."""
        if self._row_sumsq is None:
            self._row_sumsq = np.einsum("ij,ij->i", self.x, self.x)
        return self._row_sumsq

    # -- histogram -------------------------------------------------------------------

    def histogram(self, bins: int) -> tuple[float, float, NDArray[np.int64]]:
        """Counts in ``bins`` equal-width bins over ``[min, max]``.

        Returns
        -------
        lo, hi : float
            The outer edges, the array's minimum and maximum.
        counts : ndarray of int64, shape (bins,)
            Entries per bin; the last bin is closed on the right.
        """
        if self._hist is None or self._hist[0] != bins:
            lo, hi = self.min(), self.max()
            counts = histogram_counts(self.flat, lo, hi, bins)
            self._hist = (bins, lo, hi, counts)
        return self._hist[1], self._hist[2], self._hist[3]

    def __repr__(self) -> str:
        return f"Reductions(shape={self.x.shape}, dtype={self.x.dtype})"


_ONES: dict[tuple[int, np.dtype], Array] = {}


def _ones(n: int, dtype: np.dtype) -> Array:
    """A cached read-only vector of ``n`` ones."""
    key = (n, np.dtype(dtype))
    ones = _ONES.get(key)
    if ones is None:
        if len(_ONES) > 64:
            _ONES.clear()
        ones = _ONES[key] = np.ones(n, dtype=dtype)
        ones.flags.writeable = False
    return ones


#: Up to this many entries a sum is a dot product with ones (see :func:`_total`).
_DOT_SUM_LIMIT = 65536


def _total(flat: Array) -> float:
    """``Σ x`` of a 1-D array in one pass.

    Up to :data:`_DOT_SUM_LIMIT` floats it is the dot product with a vector of
    ones, one BLAS call that costs half of ``np.sum`` there (whose pairwise
    loop and Python wrapper dominate on a layer's arrays); beyond, ``einsum``,
    as fast without a vector of ones as long as the array.
    """
    if flat.dtype.kind != "f":
        return float(np.add.reduce(flat))
    if flat.size <= _DOT_SUM_LIMIT:
        total = float(np.dot(flat, _ones(_DOT_SUM_LIMIT, flat.dtype)[: flat.size]))
    else:
        total = float(np.einsum("i->", flat))
    if not math.isfinite(total):
        wide = _widened(flat)
        if wide is not None:
            total = float(np.einsum("i->", wide))
    return total


def _widened(flat: Array) -> Array | None:
    """``flat`` in float64 when it is narrower, for a sum that overflowed.

    A float32 array of finite values near 1e38 has a sum (or sum of squares)
    beyond float32's range: in float64 it is finite, so that a statistic is
    not reported as Inf while the values are finite. None for float64, where
    an Inf sum means Inf or NaN values (or values near 1e308).
    """
    return flat.astype(np.float64) if flat.dtype.itemsize < 8 else None


_SCRATCH: dict[np.dtype, Array] = {}


def _scratch(n: int, dtype: np.dtype) -> Array:
    """A reused work array of ``n`` entries (grown as needed, never shrunk)."""
    buffer = _SCRATCH.get(np.dtype(dtype))
    if buffer is None or buffer.size < n:
        buffer = _SCRATCH[np.dtype(dtype)] = np.empty(n, dtype=dtype)
    return buffer[:n]


def histogram_counts(flat: Array, lo: float, hi: float, bins: int) -> NDArray[np.int64]:
    """Counts of ``flat`` in ``bins`` equal-width bins over ``[lo, hi]``.

    Parameters
    ----------
    flat : ndarray, shape (n,)
        The values, all inside ``[lo, hi]``.
    lo, hi : float
        The outer edges; the last bin includes ``hi``.
    bins : int
        The number of bins.

    Returns
    -------
    ndarray of int64, shape (bins,)
        All zeros when ``lo`` or ``hi`` is not finite; everything in the first
        bin when ``lo == hi``.

    Notes
    -----
    The bin of ``x`` is ``floor((x - lo) * bins / (hi - lo))``, clipped to
    ``[0, bins - 1]``: one product, one subtraction and a ``bincount``, about
    three times faster than ``np.histogram``. The counts equal those of
    ``np.histogram(flat, bins, range=(lo, hi))`` except for a value within
    rounding of an inner edge, which may land in the neighbouring bin.
    """
    counts = np.zeros(bins, dtype=np.int64)
    if not (math.isfinite(lo) and math.isfinite(hi)) or flat.size == 0:
        return counts
    if hi <= lo:
        counts[0] = flat.size
        return counts
    # x * scale - lo * scale rather than (x - lo) * scale: x - lo overflows in
    # float32 when the values span more than float32's range
    scale = bins / (hi - lo)
    index = np.multiply(flat, flat.dtype.type(scale))
    index -= flat.dtype.type(lo * scale)
    positions = index.astype(np.intp)
    np.clip(positions, 0, bins - 1, out=positions)
    counts += np.bincount(positions, minlength=bins)
    return counts


def histogram_quantiles(
    lo: float, hi: float, counts: NDArray[np.integer], levels: list[float]
) -> list[float]:
    """Quantiles read from a histogram by linear interpolation inside a bin.

    Parameters
    ----------
    lo, hi : float
        The outer edges of the equal-width bins.
    counts : ndarray, shape (bins,)
        Entries per bin.
    levels : list of float
        Levels in [0, 1].

    Returns
    -------
    list of float
        One value per level; NaN when the histogram is empty.

    Notes
    -----
    With cumulative counts ``C_k`` at the right edge of bin ``k``, the level
    ``q`` falls in the first bin where ``C_k >= q n``; inside it the value is
    interpolated as if the bin's entries were spread evenly. The result lies
    in the same bin as the exact sample quantile, so it is off by at most one
    bin width, ``(hi - lo) / bins``.
    """
    total = int(counts.sum())
    if total == 0 or not (math.isfinite(lo) and math.isfinite(hi)):
        return [math.nan] * len(levels)
    edges = np.linspace(lo, hi, len(counts) + 1)
    cumulative = np.concatenate(([0], np.cumsum(counts)))
    targets = np.asarray(levels, dtype=np.float64) * total
    values = []
    for target in targets:
        k = int(np.searchsorted(cumulative, target, side="left"))
        k = min(max(k, 1), len(counts))
        inside = counts[k - 1]
        fraction = (target - cumulative[k - 1]) / inside if inside else 0.0
        values.append(float(edges[k - 1] + fraction * (edges[k] - edges[k - 1])))
    return values
