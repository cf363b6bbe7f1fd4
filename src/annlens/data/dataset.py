"""The Dataset record, and the one road every source takes to become one.

A loader (a bundled set, a generator, a data file, arrays in memory) produces a
:class:`RawData`: features ``x``, targets ``y`` and their names. Then
:func:`build_dataset` checks the data (numeric, finite, at least two classes),
checks every target once (see :mod:`annlens.data.labels`), encodes class
labels as ``0 .. n_classes - 1``, splits it with a seeded, stratified split
and standardises the features (and, when asked, regression targets) with
statistics fitted on the training part only. The result is a frozen
:class:`Dataset`.

Shapes, everywhere in annlens: ``x`` is (samples, features) float64; ``y`` is
(samples,) int64 class indices for classification (one-hot rows become
indices) and (samples, outputs) float64 for regression, the shape the model's
output has.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from annlens.data.clean import (
    check_features,
    drop_missing,
    encode_labels,
    infer_task,
    one_hot_labels,
    warn_if_label_like,
)
from annlens.data.labels import check_finite_targets
from annlens.data.locate import Source, describe_row
from annlens.data.splits import SPLIT_STREAM, Standardizer, split_indices
from annlens.errors import ConfigError, DataError
from annlens.model import seeded_generator

logger = logging.getLogger("annlens")

Array = NDArray[Any]
TASKS = ("classification", "regression")


@dataclass
class RawData:
    """Features and targets as a source delivers them, before checks and splits.

    Attributes
    ----------
    name : str
        The data set's name, or the file it came from (used in messages).
    x : ndarray, (samples, features)
        Numeric features.
    y : ndarray, (samples,)
        Targets: numbers or text labels; NaN (or None) marks a missing value.
    feature_names : tuple of str
        One name per column of ``x``.
    target_name : str
        The name of the target column.
    task : str or None
        ``"classification"``, ``"regression"`` or None to infer it from ``y``.
    class_names : tuple of str or None
        Names of classes ``0 .. k-1`` when ``y`` already holds class indices.
    description : str
        One or two sentences about the data.
    source : Source or None
        The file the data was read from, for messages that name a row's line.
    """

    name: str
    x: Array
    y: Array
    feature_names: tuple[str, ...]
    target_name: str = "target"
    task: str | None = None
    class_names: tuple[str, ...] | None = None
    description: str = ""
    source: Source | None = None

    def __repr__(self) -> str:
        return (
            f"RawData(name={self.name!r}, x.shape={self.x.shape}, "
            f"target={self.target_name!r}, task={self.task!r})"
        )


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A data set split into training, validation and test parts.

    Attributes
    ----------
    name : str
        The registered name (``"iris"``) or the file name.
    task : {"classification", "regression"}
        What the targets are.
    x_train, x_val, x_test : ndarray, (samples, features), float64
        Features, standardised with the training statistics when asked.
        A split of fraction 0 is an empty (0, features) array.
    y_train, y_val, y_test : ndarray
        (samples,) int64 class indices, or (samples, 1) float64 targets
        (standardised with the training statistics when asked).
    feature_names : tuple of str
        One name per feature column.
    class_names : tuple of str or None
        The name of each class index; None for regression.
    n_classes : int or None
        The number of classes; None for regression.
    description : str
        What the data is and where it comes from.
    target_name : str
        The name of the target column.
    seed : int
        The seed of the split (and of generated samples).
    mean, std : ndarray, (features,) or None
        The standardisation fitted on ``x_train`` (None when not standardised);
        :meth:`transform` applies it to new data.
    target_mean, target_std : ndarray, (outputs,) or None
        The standardisation of regression targets fitted on ``y_train`` (None
        when the targets are as loaded); :meth:`inverse_transform_target`
        turns a prediction back into the target's own units.
    source : Source or None
        The file the data was read from.
    source_rows : dict of str to ndarray of int64
        For ``"train"``, ``"val"`` and ``"test"``: the data row each sample
        came from (see :mod:`annlens.data.locate`); :meth:`locate` names it.
    """

    name: str
    task: str
    x_train: Array
    y_train: Array
    x_val: Array
    y_val: Array
    x_test: Array
    y_test: Array
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...] | None
    n_classes: int | None
    description: str = ""
    target_name: str = "target"
    seed: int = 0
    mean: Array | None = field(default=None)
    std: Array | None = field(default=None)
    target_mean: Array | None = field(default=None)
    target_std: Array | None = field(default=None)
    source: Source | None = None
    source_rows: dict[str, Array] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        """The number of feature columns."""
        return int(self.x_train.shape[1])

    @property
    def n_outputs(self) -> int:
        """The output width a model needs: classes, or target columns."""
        return self.n_classes if self.n_classes is not None else self.y_train.shape[1]

    @property
    def n_samples(self) -> int:
        """The number of samples over all three splits."""
        return len(self.y_train) + len(self.y_val) + len(self.y_test)

    def split(self, which: str) -> tuple[Array, Array]:
        """``(x, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        parts = {
            "train": (self.x_train, self.y_train),
            "val": (self.x_val, self.y_val),
            "test": (self.x_test, self.y_test),
        }
        if which not in parts:
            raise ConfigError(f"split must be 'train', 'val' or 'test', got {which!r}")
        return parts[which]

    def transform(self, x: Any) -> Array:
        """Apply the training standardisation ``(x - mean) / std`` to new data."""
        array = np.asarray(x, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != self.n_features:
            raise DataError(
                f"data set {self.name!r} expects x of shape (samples, "
                f"{self.n_features}), got {array.shape}"
            )
        if self.mean is None or self.std is None:
            return array
        return (array - self.mean) / self.std

    def inverse_transform(self, x: Any) -> Array:
        """Undo :meth:`transform`: ``x * std + mean``."""
        array = np.asarray(x, dtype=np.float64)
        if self.mean is None or self.std is None:
            return array
        return array * self.std + self.mean

    @property
    def targets_standardized(self) -> bool:
        """Whether ``y_*`` are standardised regression targets."""
        return self.target_mean is not None

    def transform_target(self, y: Any) -> Array:
        """Standardise targets in their own units as ``y_train`` was."""
        array = np.asarray(y, dtype=np.float64)
        if self.target_mean is None or self.target_std is None:
            return array
        return (array - self.target_mean) / self.target_std

    def inverse_transform_target(self, y: Any) -> Array:
        """Targets or predictions back in the target's own units.

        ``y * target_std + target_mean``; unchanged when the targets are not
        standardised. An output of shape (samples, outputs) or (samples,).
        """
        array = np.asarray(y, dtype=np.float64)
        if self.target_mean is None or self.target_std is None:
            return array
        if array.ndim == 1:
            return array * self.target_std[0] + self.target_mean[0]
        return array * self.target_std + self.target_mean

    def locate(self, split: str, position: int) -> str:
        """Where sample ``position`` of ``split`` came from, for messages.

        ``"data row 17 (line 19 of data.csv)"``: the row as loaded, counting
        from 0, and the file line when the data came from a CSV file.
        """
        rows = self.source_rows.get(split)
        if rows is None or not 0 <= position < len(rows):
            return f"sample {position} of the {split} split"
        return describe_row(int(rows[position]), self.source)

    def __repr__(self) -> str:
        classes = f", n_classes={self.n_classes}" if self.n_classes else ""
        if self.targets_standardized:
            classes += ", targets standardised"
        return (
            f"Dataset(name={self.name!r}, task={self.task!r}, "
            f"features={self.n_features}{classes}, train={len(self.y_train)}, "
            f"val={len(self.y_val)}, test={len(self.y_test)}, seed={self.seed})"
        )


def check_seed(seed: Any) -> None:
    """Refuse a seed that is not a whole number >= 0, naming it."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"data seed must be an integer >= 0, got {seed!r}")


def build_dataset(
    raw: RawData,
    *,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    standardize: bool = True,
    drop_nan: bool = False,
    standardize_target: bool = False,
) -> Dataset:
    """Check, encode, split and standardise ``raw`` into a :class:`Dataset`.

    Parameters
    ----------
    raw : RawData
        What a loader produced.
    seed : int
        Seeds the split (see :func:`annlens.data.splits.split_indices`).
    val_fraction, test_fraction : float
        The shares of samples held out, each in [0, 1), together below 1.
    standardize : bool
        Standardise features with the training part's mean and std.
    drop_nan : bool
        Drop rows holding NaN instead of refusing them.
    standardize_target : bool
        Standardise regression targets with the training part's mean and
        std (the std floored as for features, see
        :class:`~annlens.data.splits.Standardizer`, but each target column
        on its own, so that one output's scale does not floor another's
        std), kept as ``target_mean``
        and ``target_std``. Class labels are never scaled: for classification
        this does nothing.

    Raises
    ------
    DataError
        Non-numeric or infinite features, NaN rows (unless dropped), infinite
        targets, class labels that are neither text nor whole numbers (or not
        indices of the given class names), fewer than two classes, or too few
        samples for the split. A bad target is named by its data row (and
        CSV line), before anything is split.
    """
    check_seed(seed)
    x, y = check_features(raw), np.asarray(raw.y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim not in (1, 2) or len(y) != len(x):
        raise DataError(
            f"{raw.name}: expected targets of shape ({len(x)},) or ({len(x)}, "
            f"outputs), one row per row of features, got {y.shape}"
        )
    x, y, rows = drop_missing(x, y, raw, drop_nan)
    check_finite_targets(y, raw, rows)
    task = raw.task or infer_task(y)
    if raw.task is None and task == "regression":
        warn_if_label_like(y, raw, rows)
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}")

    class_names: tuple[str, ...] | None = None
    n_classes: int | None = None
    if task == "classification" and y.ndim == 2:
        y, class_names = one_hot_labels(y, raw, rows)
        n_classes = len(class_names)
    elif task == "classification":
        y, class_names = encode_labels(y, raw, rows)
        n_classes = len(class_names)
    else:
        y = _regression_targets(y, raw)

    rng = seeded_generator(int(seed), SPLIT_STREAM)
    train, val, test = split_indices(
        len(y),
        val_fraction,
        test_fraction,
        rng,
        labels=y if task == "classification" else None,
        where=raw.name,
    )

    scaler = Standardizer.fit(x[train]) if standardize else None
    parts = [scaler.apply(x[i]) if scaler else x[i] for i in (train, val, test)]
    y_scaler = None
    if standardize_target and task == "regression":
        y_scaler = _fit_each_column(y[train])
    targets = [y_scaler.apply(y[i]) if y_scaler else y[i] for i in (train, val, test)]
    return Dataset(
        name=raw.name,
        task=task,
        x_train=parts[0],
        y_train=targets[0],
        x_val=parts[1],
        y_val=targets[1],
        x_test=parts[2],
        y_test=targets[2],
        feature_names=tuple(raw.feature_names),
        class_names=class_names,
        n_classes=n_classes,
        description=raw.description,
        target_name=raw.target_name,
        seed=int(seed),
        mean=scaler.mean if scaler else None,
        std=scaler.std if scaler else None,
        target_mean=y_scaler.mean if y_scaler else None,
        target_std=y_scaler.std if y_scaler else None,
        source=raw.source,
        source_rows={"train": rows[train], "val": rows[val], "test": rows[test]},
    )


def _fit_each_column(y: Array) -> Standardizer:
    """A Standardizer fitted on each column of ``y`` alone."""
    fits = [Standardizer.fit(y[:, [j]]) for j in range(y.shape[1])]
    return Standardizer(
        mean=np.concatenate([f.mean for f in fits]),
        std=np.concatenate([f.std for f in fits]),
    )


def _regression_targets(y: Array, raw: RawData) -> Array:
    """Regression targets as a float64 (samples, 1) column."""
    if y.dtype.kind not in "biuf":
        raise DataError(
            f"{raw.name}: regression target {raw.target_name!r} must be numeric, "
            f"got values such as {y[0]!r}"
        )
    return y.astype(np.float64).reshape(len(y), -1)
