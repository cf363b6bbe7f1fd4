"""Data sets from arrays in memory: :func:`dataset_from_arrays`.

The arrays take the same road as every other source (see
:func:`annlens.data.dataset.build_dataset`): checked, encoded, split and
standardised. Their rows are data rows ``0 .. samples - 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from annlens.data.dataset import Dataset, RawData, build_dataset
from annlens.errors import DataError


def dataset_from_arrays(
    x: Any,
    y: Any,
    *,
    name: str = "arrays",
    task: str | None = None,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    target_name: str = "target",
    description: str = "",
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    standardize: bool = True,
    drop_nan: bool = False,
    standardize_target: bool = False,
) -> Dataset:
    """Make a :class:`Dataset` from arrays in memory.

    Parameters
    ----------
    x : array-like, (samples, features)
        Numeric features.
    y : array-like, (samples,) or (samples, outputs)
        Class labels (numbers or text; the surrounding whitespace of a text
        label is dropped), one-hot rows, or regression targets.
    task : str, optional
        ``"classification"`` or ``"regression"``; inferred when omitted
        (text, booleans and whole numbers are class labels).
    feature_names, class_names : sequence of str, optional
        Column names (default ``column_0 ...``) and, when ``y`` already holds
        indices ``0 .. k-1``, the name of each class.

    The other parameters are those of :func:`build_dataset`.

    Examples
    --------
    >>> import numpy as np
    >>> data = dataset_from_arrays(np.eye(20)[:, :3], np.arange(20) % 2, seed=0)
    >>> data.n_classes, data.n_features
    (2, 3)
    """
    x_array = np.asarray(x)
    if x_array.ndim != 2:
        raise DataError(
            f"{name}: x must be 2-D (samples, features), got shape {x_array.shape}"
        )
    y_array = np.asarray(y)
    if y_array.ndim == 2 and y_array.shape[1] == 1:
        y_array = y_array[:, 0]
    if y_array.ndim not in (1, 2):
        raise DataError(
            f"{name}: y must have shape (samples,) or (samples, outputs), got "
            f"shape {y_array.shape}"
        )
    if len(y_array) != len(x_array):
        raise DataError(
            f"{name}: y has {len(y_array)} rows but x has {len(x_array)}; y "
            f"must hold one target per row of x, got shape {y_array.shape}"
        )
    names = tuple(feature_names or (f"column_{i}" for i in range(x_array.shape[1])))
    if len(names) != x_array.shape[1]:
        raise DataError(
            f"{name}: {len(names)} feature names for {x_array.shape[1]} columns"
        )
    raw = RawData(
        name=name,
        x=x_array,
        y=y_array,
        feature_names=names,
        target_name=target_name,
        task=task,
        class_names=tuple(class_names) if class_names is not None else None,
        description=description,
    )
    return build_dataset(
        raw,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        standardize=standardize,
        drop_nan=drop_nan,
        standardize_target=standardize_target,
    )
