"""Seeded train/validation/test splits and the training-set standardisation.

:func:`split_indices` holds out a validation and a test share of the samples.
For classification it is stratified: each class is split in the same
proportions, so every split keeps the class balance of the whole (as far as
whole samples allow). :class:`Standardizer` is fitted on the training part
only, so that nothing about the held-out samples leaks into training.

Seeds: a data set's ``seed`` feeds :func:`annlens.model.seeded_generator`
with stream :data:`SPLIT_STREAM` for the split and :data:`SAMPLE_STREAM` for
generated samples, apart from the model's streams (0 weights, 1 noise,
2 data order).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from annlens.errors import ConfigError, DataError

logger = logging.getLogger("annlens")

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

SAMPLE_STREAM = 3
SPLIT_STREAM = 4


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """The number of validation and test samples out of ``n``.

    Each is ``round(fraction * n)``, and at least 1 when its fraction is above 0.
    """
    for label, value in (
        ("val_fraction", val_fraction),
        ("test_fraction", test_fraction),
    ):
        if isinstance(value, bool) or not 0.0 <= float(value) < 1.0:
            raise ConfigError(f"{label} must be in [0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1.0:
        raise ConfigError(
            f"val_fraction + test_fraction must be below 1 to leave training "
            f"samples, got {val_fraction} + {test_fraction}"
        )
    n_val = max(int(round(val_fraction * n)), 1 if val_fraction > 0 else 0)
    n_test = max(int(round(test_fraction * n)), 1 if test_fraction > 0 else 0)
    return n_val, n_test


def split_indices(
    n: int,
    val_fraction: float,
    test_fraction: float,
    rng: np.random.Generator,
    labels: NDArray[np.integer] | None = None,
    where: str = "data",
) -> tuple[IntArray, IntArray, IntArray]:
    """Row indices of the training, validation and test parts.

    Parameters
    ----------
    n : int
        The number of samples.
    val_fraction, test_fraction : float
        The shares held out, each in [0, 1), together below 1.
    rng : numpy.random.Generator
        The only source of randomness: the same generator state gives the
        same split.
    labels : ndarray of int, (n,), optional
        Class indices; when given the split is stratified.
    where : str
        The data set's name, for messages.

    Returns
    -------
    train, val, test : ndarray of int64
        Disjoint indices covering ``range(n)``, each in shuffled order.

    Notes
    -----
    Stratification allocates each class's share of a split by largest
    remainders: class ``c`` with ``n_c`` samples gets ``floor(n_c * m / n)`` of
    a split of size ``m``, and the samples left over go to the classes with the
    largest fractional parts, so split sizes are exact.
    """
    n_val, n_test = split_sizes(n, val_fraction, test_fraction)
    if n - n_val - n_test < 1:
        raise DataError(
            f"{where}: {n} samples are too few to hold out {n_val} for "
            f"validation and {n_test} for test and still train"
        )
    if labels is None:
        order = rng.permutation(n)
        test, val, train = np.split(order, [n_test, n_test + n_val])
        return train.astype(np.int64), val.astype(np.int64), test.astype(np.int64)

    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    needed = 1 + (n_val > 0) + (n_test > 0)
    if counts.min() < needed:
        small = classes[counts < needed].tolist()
        logger.warning(
            "%s: classes %s have fewer than %d samples, so not every split "
            "can hold each class",
            where,
            small,
            needed,
        )
    test_counts = _allocate(counts, n_test, rng)
    val_counts = _allocate(counts - test_counts, n_val, rng)

    parts: list[list[IntArray]] = [[], [], []]
    for c, k_test, k_val in zip(classes, test_counts, val_counts, strict=True):
        members = rng.permutation(np.flatnonzero(labels == c))
        parts[2].append(members[:k_test])
        parts[1].append(members[k_test : k_test + k_val])
        parts[0].append(members[k_test + k_val :])
    train, val, test = (rng.permutation(np.concatenate(p)) for p in parts)
    return train.astype(np.int64), val.astype(np.int64), test.astype(np.int64)


def _allocate(counts: IntArray, total: int, rng: np.random.Generator) -> IntArray:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainders)."""
    if total == 0:
        return np.zeros_like(counts)
    quotas = counts * total / counts.sum()
    given = np.minimum(np.floor(quotas).astype(np.int64), counts)
    remainders = quotas - given
    # Ties are broken at random, so no class is favoured by its position.
    order = rng.permutation(len(counts))
    order = order[np.argsort(-remainders[order], kind="stable")]
    for c in order:
        if given.sum() == total:
            break
        if given[c] < counts[c]:
            given[c] += 1
    assert given.sum() == total, "the split sizes leave room in some class"
    return given


STD_FLOOR = 0.1


@dataclass(frozen=True, eq=False)
class Standardizer:
    """Per-feature standardisation ``(x - mean) / std`` fitted on training data.

    Attributes
    ----------
    mean, std : ndarray, (features,)
        The training part's statistics; a feature that is constant there gets
        ``std = 1`` so that it maps to 0 rather than to NaN.

    Notes
    -----
    A feature that is nearly constant in the training part (an edge pixel of
    the digits, zero in all but a few images) would be divided by a tiny
    std, and a held-out sample where it is non-zero would land a hundred
    standard deviations out. Such a feature is told by its std: below
    ``STD_FLOOR`` times its range in the training part (``max - min``),
    where a feature spread over its range (normal, uniform, two balanced
    values) has a std well above a tenth of its range. The std of such a
    lopsided feature is floored at ``STD_FLOOR`` times the median std of the
    features, so that it keeps a scale comparable to the others instead of
    exploding. Every other feature keeps its own std, whatever the scales of
    the others (a feature on a small scale beside large ones is not
    squashed).
    """

    mean: FloatArray
    std: FloatArray

    @classmethod
    def fit(cls, x: Any) -> Standardizer:
        """Fit the mean and standard deviation of each column of ``x``."""
        array = np.asarray(x, dtype=np.float64)
        mean = array.mean(axis=0)
        std = array.std(axis=0)
        std[std < 1e-12 * np.maximum(1.0, np.abs(mean))] = 1.0
        spread = array.max(axis=0) - array.min(axis=0)
        lopsided = std < STD_FLOOR * spread
        floor = STD_FLOOR * float(np.median(std))
        std = np.where(lopsided, np.maximum(std, floor), std)
        return cls(mean=mean, std=std)

    def apply(self, x: Any) -> FloatArray:
        """Standardise ``x`` of shape (samples, features)."""
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.std

    def __repr__(self) -> str:
        return f"Standardizer(features={len(self.mean)})"
