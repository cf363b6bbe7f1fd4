"""Checks at the model's edge: an input batch becomes a clean 2-D array once.

Everything that enters a model passes :func:`prepare_input`, which refuses
non-numeric, empty, wrongly shaped or non-finite input with an error naming
what arrived, and converts the batch to the model's dtype exactly once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from annlens.errors import InputError, ShapeError
from annlens.layers.base import Array


def prepare_input(x: Any, dtype: np.dtype, width: int | None, first: str) -> Array:
    """Return ``x`` as a finite (batch, width) array of ``dtype``.

    Parameters
    ----------
    x : array-like, (batch, width)
        The input batch.
    dtype : numpy dtype
        The model's dtype.
    width : int or None
        The width the first layer expects, when it has one.
    first : str
        The first layer's name, for messages.
    """
    array = np.asarray(x)
    if array.dtype.kind not in "fiub":
        raise InputError(
            f"model input must be numeric, got dtype {array.dtype} "
            f"(first layer {first!r})"
        )
    if array.ndim != 2:
        hint = "; help: use x.reshape(1, -1) for one sample" if array.ndim == 1 else ""
        raise ShapeError(
            f"model input must be 2-D (batch, features), got shape {array.shape}{hint}"
        )
    if array.shape[0] == 0:
        raise InputError(f"model input is an empty batch, shape {array.shape}")
    if width is not None and array.shape[1] != width:
        raise ShapeError(
            f"layer {first!r} expects input of shape (batch, {width}), "
            f"got {array.shape}"
        )
    converted = array
    if array.dtype != dtype:
        with np.errstate(over="ignore"):
            converted = array.astype(dtype)
    if not np.isfinite(converted.sum()):
        check_finite(array, "model input")
        check_fits(converted, array, "model input")
    return converted


def check_finite(array: Array, where: str) -> None:
    """Raise when ``array`` holds NaN or Inf, counting them and naming ``where``."""
    nan, inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
    if nan or inf:
        row, column = np.argwhere(~np.isfinite(array))[0]
        raise InputError(
            f"{where} holds {nan} NaN and {inf} Inf values "
            f"(first at row {row}, column {column})"
        )


def check_fits(converted: Array, given: Array, where: str) -> None:
    """Raise when finite values of ``given`` became Inf in ``converted``'s dtype."""
    overflow = ~np.isfinite(converted)
    if overflow.any():
        row, column = np.argwhere(overflow)[0]
        value = float(given[row, column])
        raise InputError(
            f"{where} holds {int(overflow.sum())} values too large for "
            f"{converted.dtype} (first at row {row}, column {column}: {value:.3g}); "
            "help: standardise the input, or use a float64 model"
        )
