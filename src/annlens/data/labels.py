"""Checking every target of a data set once, when it is loaded.

A bad target found by the loss in the middle of training is reported late
(after some epochs have run) and in the wrong terms (its position inside one
mini-batch). So :func:`annlens.data.build_dataset` looks at all targets
before it splits them: an infinite target, a class label that is a number
but not a whole one, a class index outside ``0 .. k-1`` when the class names
are given. Each refusal counts the bad targets and names the first by its
data row (and its CSV line, see :mod:`annlens.data.locate`). Missing targets
(NaN, None) are refused, or dropped, with the missing features by
:func:`annlens.data.clean.drop_missing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from annlens.data.locate import describe_row
from annlens.errors import DataError

if TYPE_CHECKING:
    from annlens.data.dataset import RawData

Array = NDArray[Any]


def _value(value: Any) -> Any:
    """A NumPy scalar as the plain Python value, so a message shows 2.5."""
    return value.item() if isinstance(value, np.generic) else value


def _first(flags: NDArray[np.bool_], rows: NDArray[np.int64], raw: RawData) -> str:
    """The data row (and line) of the first flagged target."""
    return describe_row(int(rows[int(np.argmax(flags))]), raw.source)


def check_finite_targets(y: Array, raw: RawData, rows: NDArray[np.int64]) -> None:
    """Refuse infinite numeric targets, naming the count and the first."""
    if y.dtype.kind != "f":
        return
    infinite = np.asarray(np.isinf(y.reshape(len(y), -1)).any(axis=1), dtype=bool)
    if infinite.any():
        count = int(infinite.sum())
        which = (
            f"{count} infinite values; the first," if count > 1 else "1 infinite value,"
        )
        them = "them or drop those rows" if count > 1 else "it or drop that row"
        raise DataError(
            f"{raw.name}: target {raw.target_name!r} holds {which} "
            f"{_value(y[int(np.argmax(infinite))])!r}, at "
            f"{_first(infinite, rows, raw)}; help: replace {them}"
        )


def check_whole_labels(y: Array, raw: RawData, rows: NDArray[np.int64]) -> None:
    """Refuse numeric class labels that are not whole numbers.

    A label such as 2.5 among labels 0, 1, 2, 3 is nearly always a typo; as a
    class of its own it would go unnoticed.
    """
    if y.dtype.kind != "f":
        return
    fractional = np.mod(y, 1) != 0
    if fractional.any():
        whole = len(np.unique(y[~fractional]))
        raise DataError(
            f"{raw.name}: class labels of target {raw.target_name!r} must be "
            f"whole numbers or text; {int(fractional.sum())} of {len(y)} are not, "
            f"the first {_value(y[int(np.argmax(fractional))])!r} at "
            f"{_first(fractional, rows, raw)} (the others take {whole} whole "
            "values); help: fix those labels, or pass task='regression' "
            "(data.task) for a continuous target"
        )


def given_indices(y: Array, raw: RawData, rows: NDArray[np.int64]) -> Array:
    """Check that ``y`` holds indices into ``raw.class_names``; return them."""
    assert raw.class_names is not None, "called only with class names"
    k = len(raw.class_names)
    expected = f"with class_names given, y must hold class indices 0..{k - 1}"
    if y.dtype.kind not in "iuf":
        raise DataError(
            f"{raw.name}: {expected}, got {y.dtype} values such as {_value(y[0])!r}"
        )
    bad = (np.mod(y, 1) != 0) | (y < 0) | (y >= k)
    if bad.any():
        raise DataError(
            f"{raw.name}: {expected}; {int(bad.sum())} of {len(y)} are not, the "
            f"first {_value(y[int(np.argmax(bad))])!r} at {_first(bad, rows, raw)}"
        )
    return y.astype(np.int64)
