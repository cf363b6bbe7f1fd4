"""Checks that turn raw features and targets into data a model can learn from.

Each check refuses bad data with a :class:`~annlens.errors.DataError` that
names the source, the column and how many values are affected: non-numeric or
infinite features, rows holding NaN (refused, or dropped on request), a
target with a single class. Class labels, numbers or text, become indices
``0 .. n_classes - 1`` in sorted order; a text label loses its surrounding
whitespace first, so ``" cat"`` (from ``a, cat`` in a CSV) and ``"cat"`` are
one class. The checks of single targets (their
values and where the first bad one sits) are in :mod:`annlens.data.labels`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from annlens.data.labels import check_whole_labels, given_indices
from annlens.data.locate import describe_row
from annlens.errors import DataError

if TYPE_CHECKING:
    from annlens.data.dataset import RawData

logger = logging.getLogger("annlens")

Array = NDArray[Any]

#: Whole-number targets with at most this many distinct values count as labels.
MAX_INFERRED_CLASSES = 50


def check_features(raw: RawData) -> NDArray[np.float64]:
    """Return ``raw.x`` as float64, refusing empty, non-numeric or infinite data."""
    x = np.asarray(raw.x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(
            f"{raw.name}: expected a (samples, features) table with at least one "
            f"row and one feature column, got shape {x.shape}"
        )
    if x.dtype.kind not in "biuf":
        _name_non_numeric(x, raw)
    x = x.astype(np.float64)

    infinite = np.isinf(x)
    if infinite.any():
        columns = _column_counts(infinite, raw.feature_names)
        first = describe_row(int(np.argmax(infinite.any(axis=1))), raw.source)
        count = int(infinite.sum())
        values, them = (
            ("value", "it or drop that row")
            if count == 1
            else ("values", "them or drop those rows")
        )
        raise DataError(
            f"{raw.name}: {count} infinite {values} in feature columns "
            f"{columns}; the first at {first}, counting from 0; help: replace "
            f"{them}"
        )
    return x


def _name_non_numeric(x: Array, raw: RawData) -> None:
    """Raise a DataError naming the first column that is not numbers."""
    for j, column in enumerate(x.T):
        for row, value in enumerate(column):
            try:
                float(value)
            except (TypeError, ValueError):
                raise DataError(
                    f"{raw.name}: feature column {raw.feature_names[j]!r} is not "
                    f"numeric (value {value!r} at data row {row}); help: encode "
                    "it as numbers or leave the column out"
                ) from None
    # Every value converts one by one (an object array of numbers): accept it.


def missing_mask(values: Array) -> NDArray[np.bool_]:
    """True where a value is NaN or None, for numeric and object arrays alike."""
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind == "O":
        return np.array([v is None or v != v for v in values], dtype=bool)
    return np.zeros(len(values), dtype=bool)


def drop_missing(
    x: NDArray[np.float64], y: Array, raw: RawData, drop_nan: bool
) -> tuple[NDArray[np.float64], Array, NDArray[np.int64]]:
    """Refuse rows holding NaN, or drop them when ``drop_nan`` is true.

    The message counts the rows, the NaN per column, and names the first row
    (and its CSV line). Returns ``x``, ``y`` and the data row of each row
    kept, for messages about it later.
    """
    in_x = np.isnan(x)
    y_columns = y.reshape(len(y), -1).T if len(y) else np.zeros((1, 0))
    in_y = np.logical_or.reduce([missing_mask(column) for column in y_columns])
    bad = in_x.any(axis=1) | in_y
    count = int(bad.sum())
    if not count:
        return x, y, np.arange(len(y), dtype=np.int64)

    if not drop_nan:
        flags = np.column_stack([in_x, in_y])
        columns = _column_counts(flags, (*raw.feature_names, raw.target_name))
        first = describe_row(int(np.argmax(bad)), raw.source)
        raise DataError(
            f"{raw.name}: {count} of {len(y)} rows hold NaN (columns {columns}; "
            f"first at {first}, counting from 0); help: "
            "pass drop_nan=True (config: data.drop_nan = true) to drop them"
        )
    if count == len(y):
        raise DataError(f"{raw.name}: every one of the {count} rows holds NaN")
    logger.warning("%s: dropped %d of %d rows holding NaN", raw.name, count, len(y))
    return x[~bad], y[~bad], np.flatnonzero(~bad).astype(np.int64)


def _column_counts(flags: NDArray[np.bool_], names: tuple[str, ...]) -> str:
    """``'age': 2, 'income': 1`` for the columns where ``flags`` has hits."""
    counts = flags.sum(axis=0)
    return ", ".join(f"{names[j]!r}: {int(counts[j])}" for j in np.flatnonzero(counts))


def is_one_hot(y: Array) -> bool:
    """Whether every row of a 2-D ``y`` is 0 but for a single 1."""
    if y.ndim != 2 or y.dtype.kind not in "biuf" or y.shape[1] < 2:
        return False
    return bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))


def one_hot_labels(
    y: Array, raw: RawData, rows: NDArray[np.int64]
) -> tuple[NDArray[np.int64], tuple[str, ...]]:
    """Class indices from one-hot rows; the classes are named ``"0" .. "k-1"``.

    A row that is not one 1 among 0s is refused, named by its data row.
    """
    k = y.shape[1]
    if y.dtype.kind not in "biuf":
        raise DataError(
            f"{raw.name}: a target of shape {y.shape} for classification must "
            f"hold one-hot rows of numbers, got dtype {y.dtype}"
        )
    bad = ~(np.all((y == 0) | (y == 1), axis=1) & (y.sum(axis=1) == 1))
    if bad.any():
        first = int(np.argmax(bad))
        raise DataError(
            f"{raw.name}: a target of {k} columns for classification must hold "
            f"one-hot rows (a single 1 among 0s); {int(bad.sum())} of {len(y)} "
            f"rows are not, the first {y[first].tolist()} at "
            f"{describe_row(int(rows[first]), raw.source)}; help: fix those "
            "rows, or set task='regression' (data.task) for several outputs"
        )
    return y.argmax(axis=1).astype(np.int64), tuple(str(j) for j in range(k))


def infer_task(y: Array) -> str:
    """Guess the task from the targets.

    Text and booleans are class labels; numbers are class labels when they
    take at most :data:`MAX_INFERRED_CLASSES` distinct values and are whole,
    or all but a few are (the few are then refused as labels by
    :func:`encode_labels`, naming the first, rather than silently making the
    target continuous); anything else is a regression target. A 2-D target
    is class labels when its rows are one-hot, else several regression
    outputs. Pass ``task=`` to overrule.
    """
    if y.ndim == 2:
        return "classification" if is_one_hot(y) else "regression"
    if y.dtype.kind in "bOUST":
        return "classification"
    if y.dtype.kind in "iuf":
        whole = np.mod(y, 1) == 0
        if whole.all() and len(np.unique(y)) <= MAX_INFERRED_CLASSES:
            return "classification"
        if _labels_with_strays(y, whole):
            return "classification"
    return "regression"


#: At most this share of fractional values among whole-number labels is taken
#: for mistakes in class labels rather than a continuous target.
MAX_STRAY_SHARE = 0.05


def warn_if_label_like(y: Array, raw: RawData, rows: NDArray[np.int64]) -> None:
    """Warn when a target inferred continuous looks mostly like class labels.

    Most values whole, taking few distinct values, with more fractional ones
    than :data:`MAX_STRAY_SHARE` allows for typos: either reading may be
    meant, so the warning names the first fractional value and the key that
    decides.
    """
    if y.ndim != 1 or y.dtype.kind != "f" or not len(y):
        return
    whole = np.mod(y, 1) == 0
    if whole.mean() < 0.5 or len(np.unique(y[whole])) > MAX_INFERRED_CLASSES:
        return
    first = int(np.argmax(~whole))
    logger.warning(
        "%s: target %r is read as continuous (regression): %d of %d values are "
        "not whole, the first %r at %s, though the others take only %d whole "
        "values, like class labels; set task='classification' or "
        "task='regression' (data.task) to say which",
        raw.name,
        raw.target_name,
        int((~whole).sum()),
        len(y),
        y[first].item(),
        describe_row(int(rows[first]), raw.source),
        len(np.unique(y[whole])),
    )


def _labels_with_strays(y: Array, whole: NDArray[np.bool_]) -> bool:
    """Few whole values, and a few (at most 5%) fractional ones among them.

    Such a target is class labels with typos far more often than a
    continuous one: a continuous target is rarely whole in 95% of its rows.
    """
    strays = int((~whole).sum())
    if strays == 0 or strays > MAX_STRAY_SHARE * len(y):
        return False
    return len(np.unique(y[whole])) <= min(MAX_INFERRED_CLASSES, len(y) // 2)


def encode_labels(
    y: Array, raw: RawData, rows: NDArray[np.int64] | None = None
) -> tuple[NDArray[np.int64], tuple[str, ...]]:
    """Class indices ``0 .. k-1`` and the name of each class.

    When ``raw.class_names`` is given, ``y`` must already hold indices into it;
    otherwise the distinct values of ``y``, sorted, become the classes, and
    numbers among them must be whole; text labels are compared without their
    surrounding whitespace (``" cat"`` is class ``"cat"``). ``rows`` are the
    data rows of ``y`` (default ``0 .. len(y) - 1``), named when a label is
    refused.
    """
    if y.ndim != 1:
        raise DataError(
            f"{raw.name}: class labels must be one column, got shape {y.shape}"
        )
    if rows is None:
        rows = np.arange(len(y), dtype=np.int64)
    if raw.class_names is not None:
        indices, names = given_indices(y, raw, rows), raw.class_names
    else:
        y = _strip_text(y)
        _check_not_blank(y, raw, rows)
        check_whole_labels(y, raw, rows)
        try:
            values, indices = np.unique(y, return_inverse=True)
        except TypeError:
            raise DataError(
                f"{raw.name}: target {raw.target_name!r} mixes numbers and text"
            ) from None
        names = tuple(_label_text(value) for value in values)

    present = np.unique(indices)
    if len(present) < 2:
        only = names[int(present[0])] if len(present) else "none"
        raise DataError(
            f"{raw.name}: target {raw.target_name!r} holds a single class "
            f"({only!r}) in all {len(y)} rows; classification needs at least "
            "two; help: check the target column, or pass task='regression'"
        )
    return indices.astype(np.int64), tuple(names)


def _check_not_blank(y: Array, raw: RawData, rows: NDArray[np.int64]) -> None:
    """Refuse a text label that is empty once stripped: a missing label, not
    a class named ``""``."""
    if y.dtype.kind not in "UO":
        return
    blank = np.flatnonzero([isinstance(value, str) and not value for value in y])
    if len(blank):
        where = describe_row(int(rows[blank[0]]), raw.source)
        raise DataError(
            f"{raw.name}: target {raw.target_name!r} is blank at {where} "
            f"({len(blank)} blank in all); "
            "help: fill in those labels, or remove those rows"
        )


def _strip_text(y: Array) -> Array:
    """``y`` with the surrounding whitespace of each text label removed."""
    if y.dtype.kind == "U":
        return np.char.strip(y)
    if y.dtype.kind == "O":
        stripped = [value.strip() if isinstance(value, str) else value for value in y]
        return np.array(stripped, dtype=object)
    return y


def _label_text(value: Any) -> str:
    """A class name: ``"3"`` rather than ``"3.0"`` for whole-number floats."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)
