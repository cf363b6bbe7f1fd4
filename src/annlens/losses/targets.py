"""Checking what a loss receives: the model output and the targets.

Every loss passes its inputs through these functions before any arithmetic,
so that a wrong target is refused with a :class:`~annlens.errors.LabelError`
that names the loss, the problem, and the first offending value and where it
sits: labels out of range, non-integer class indices, shapes or batch sizes
that do not match the output, NaN or Inf, values outside [0, 1] where
probabilities are expected. The output itself must be a 2-D float batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from annlens.errors import InputError, LabelError, ShapeError

Array = NDArray[np.floating]


def check_output(output: Any, where: str) -> Array:
    """Return ``output`` as a non-empty (batch, outputs) float array.

    Integer outputs become float64; float outputs keep their dtype, which the
    gradient then shares.
    """
    array = np.asarray(output)
    if array.dtype.kind not in "fiu":
        raise InputError(
            f"{where}: the output must be numeric, got dtype {array.dtype}"
        )
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    if array.ndim != 2:
        raise ShapeError(
            f"{where} expects an output of shape (batch, outputs), got {array.shape}"
        )
    if array.shape[0] == 0:
        raise InputError(f"{where}: the output is an empty batch, shape {array.shape}")
    return array


def _numeric(target: Any, where: str) -> NDArray[Any]:
    """``target`` as an array, refused unless it holds numbers."""
    array = np.asarray(target)
    if array.dtype.kind not in "fiub":
        raise LabelError(f"{where}: targets must be numeric, got dtype {array.dtype}")
    return array


def _check_batch(array: NDArray[Any], batch: int, where: str) -> None:
    if array.ndim == 0 or array.shape[0] != batch:
        got = "a scalar" if array.ndim == 0 else f"{array.shape[0]} samples"
        raise LabelError(
            f"{where}: the output holds {batch} samples but the targets hold {got} "
            f"(shape {array.shape}); the batch sizes must match"
        )


def _check_finite(array: NDArray[Any], where: str) -> None:
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        nan, inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise LabelError(
            f"{where}: targets hold {nan} NaN and {inf} Inf values "
            f"(first at index {first})"
        )


def _check_unit_interval(array: NDArray[Any], where: str, what: str) -> None:
    outside = (array < 0) | (array > 1)
    if outside.any():
        first = tuple(int(i) for i in np.argwhere(outside)[0])
        raise LabelError(
            f"{where}: {what} must lie in [0, 1]; got {array[first].item()!r} at index "
            f"{first} ({int(outside.sum())} values outside)"
        )


def matching_target(target: Any, output: Array, where: str) -> Array:
    """Targets of the output's shape, finite, in the output's dtype.

    A 1-D target of length ``batch`` is accepted for an output of shape
    ``(batch, 1)``.
    """
    array = _numeric(target, where)
    _check_batch(array, output.shape[0], where)
    if array.ndim == 1 and output.shape[1] == 1:
        array = array.reshape(-1, 1)
    if array.shape != output.shape:
        raise LabelError(
            f"{where} expects targets of shape {output.shape}, the output's shape, "
            f"got {array.shape}"
        )
    _check_finite(array, where)
    with np.errstate(over="ignore"):
        converted = array.astype(output.dtype, copy=False)
    overflow = ~np.isfinite(converted)
    if overflow.any():
        first = tuple(int(i) for i in np.argwhere(overflow)[0])
        raise LabelError(
            f"{where}: targets hold {int(overflow.sum())} values too large for "
            f"the output's dtype {output.dtype} (first at index {first}: "
            f"{float(array[first]):.3g}); help: standardise the targets, or use a "
            "float64 model"
        )
    return converted


def binary_target(target: Any, output: Array, where: str) -> Array:
    """Like :func:`matching_target`, with every value in [0, 1]."""
    array = matching_target(target, output, where)
    _check_unit_interval(array, where, "binary targets (probabilities of class 1)")
    return array


def class_indices(target: Any, output: Array, where: str) -> NDArray[np.intp]:
    """Class-index targets: shape (batch,), integers in ``[0, classes)``.

    Floats are accepted when every value is a whole number.
    """
    array = _numeric(target, where)
    batch, classes = output.shape
    _check_batch(array, batch, where)
    if array.ndim != 1:
        raise LabelError(
            f"{where} expects class indices of shape ({batch},), got {array.shape}"
        )
    if array.dtype.kind in "iu":
        if array.size and 0 <= array.min() and array.max() < classes:
            return array.astype(np.intp, copy=False)
    _check_finite(array, where)
    if array.dtype.kind == "f":
        fractional = array != np.round(array)
        if fractional.any():
            position = int(np.argmax(fractional))
            raise LabelError(
                f"{where}: class-index targets must be integers; got "
                f"{array[position].item()!r} at position {position}; help: pass class "
                f"probabilities as an array of shape ({batch}, {classes})"
            )
    bad = (array < 0) | (array >= classes)
    if bad.any():
        position = int(np.argmax(bad))
        raise LabelError(
            f"{where}: labels must be in [0, {classes}) for {classes} classes; got "
            f"{array[position].item()!r} at position {position} "
            f"({int(bad.sum())} of {batch} out of range)"
        )
    return array.astype(np.intp)


def class_probabilities(target: Any, output: Array, where: str) -> Array:
    """Soft or one-hot targets: shape (batch, classes), values in [0, 1]."""
    array = matching_target(target, output, where)
    _check_unit_interval(array, where, "class probabilities")
    return array
