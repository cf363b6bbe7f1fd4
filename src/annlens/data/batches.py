"""Mini-batches: a seeded iterator over (x, y) and the batch-size check.

The trainer draws one epoch's order from its own generator (stream 2 of the
model seed) and passes it here, so the same seed gives the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from annlens.errors import ConfigError, DataError

Array = NDArray[Any]


def _check_batch_size_value(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def check_batch_size(n_samples: int, batch_size: int, where: str) -> None:
    """Refuse a batch size larger than the data it draws from.

    Parameters
    ----------
    n_samples : int
        The number of samples in the split.
    batch_size : int
        The requested batch size.
    where : str
        What the samples are or which setting asked for the batch, for the
        message (``"training split of 'iris'"``, ``"training.batch_size"``).

    Raises
    ------
    ConfigError
        ``batch_size`` is not a positive integer.
    DataError
        ``n_samples < batch_size``: not even one full batch.
    """
    size = _check_batch_size_value(batch_size)
    if n_samples < size:
        raise DataError(
            f"{where}: {n_samples} samples are fewer than one batch of {size}; "
            f"help: set batch_size to at most {max(n_samples, 1)}, or use more data"
        )


def batch_count(n_samples: int, batch_size: int, drop_last: bool = False) -> int:
    """The number of batches :func:`iterate_batches` yields."""
    size = _check_batch_size_value(batch_size)
    return n_samples // size if drop_last else -(-n_samples // size)


def iterate_batches(
    x: Any,
    y: Any,
    batch_size: int,
    rng: np.random.Generator | int | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[tuple[Array, Array]]:
    """Yield ``(x_batch, y_batch)`` pairs covering the data once (one epoch).

    Parameters
    ----------
    x : ndarray, (samples, features)
        Features.
    y : ndarray, (samples, ...)
        Targets, one per row of ``x``.
    batch_size : int
        Rows per batch; the last batch may be smaller unless ``drop_last``.
    rng : numpy.random.Generator or int, optional
        Draws the order when ``shuffle`` is true. A generator advances with each
        call, so successive epochs differ and a whole run stays reproducible;
        an int seeds a fresh generator; None means seed 0, so that calls
        without a generator still give one fixed order.
    shuffle : bool
        Visit the rows in a random order; otherwise in stored order.
    drop_last : bool
        Leave out a final batch smaller than ``batch_size``.

    Yields
    ------
    x_batch : ndarray, (batch, features)
    y_batch : ndarray, (batch, ...)
        Copies when shuffled, views of the inputs otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> x, y = np.arange(10.0).reshape(5, 2), np.arange(5)
    >>> [yb.tolist() for _, yb in iterate_batches(x, y, 2, shuffle=False)]
    [[0, 1], [2, 3], [4]]
    """
    size = _check_batch_size_value(batch_size)
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise DataError(
            f"x and y must have one row per sample, got {len(x)} rows of x "
            f"and {len(y)} of y"
        )
    n = len(x)
    if shuffle:
        if isinstance(rng, np.random.Generator):
            generator = rng
        else:
            generator = np.random.default_rng(0 if rng is None else int(rng))
        order: Array | None = generator.permutation(n)
    else:
        order = None

    stop = n - n % size if drop_last else n
    for start in range(0, stop, size):
        if order is None:
            yield x[start : start + size], y[start : start + size]
        else:
            chosen = order[start : start + size]
            yield x[chosen], y[chosen]
