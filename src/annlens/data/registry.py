"""Data sets by name: load one, list the names, describe them for the CLI.

Everything is offline. The names:

- bundled with scikit-learn: ``digits``, ``iris``, ``wine``, ``breast_cancer``
  (classification), ``diabetes`` (regression);
- generated: ``mnist1d`` (the mnist1d package's generator), ``moons``,
  ``circles`` and ``spirals`` (2-D, for decision-boundary pictures);
- from a file: ``csv``, ``npy``, ``npz``, or ``file`` (format from the
  suffix), with ``path=`` and ``target=``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from annlens.data import generators
from annlens.data.bundled import DESCRIPTIONS, load_bundled
from annlens.data.dataset import Dataset, RawData, build_dataset, check_seed
from annlens.data.files import read_data_file
from annlens.data.mnist1d_data import DESCRIPTION as MNIST1D_DESCRIPTION
from annlens.data.mnist1d_data import load_mnist1d
from annlens.data.splits import SAMPLE_STREAM
from annlens.errors import DataError, unknown_name
from annlens.model import seeded_generator

FILE_KINDS = ("csv", "npy", "npz", "file")


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`describe_datasets` reports about one named data set.

    ``samples`` is the default count for generated sets (change it with
    ``n_samples=``); ``classes`` is None for regression.
    """

    name: str
    task: str
    samples: int
    features: int
    classes: int | None
    generated: bool
    description: str

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for tables and JSON)."""
        return dict(self.__dict__)


_BUNDLED = {
    "digits": DatasetInfo("digits", "classification", 1797, 64, 10, False, ""),
    "iris": DatasetInfo("iris", "classification", 150, 4, 3, False, ""),
    "wine": DatasetInfo("wine", "classification", 178, 13, 3, False, ""),
    "breast_cancer": DatasetInfo(
        "breast_cancer", "classification", 569, 30, 2, False, ""
    ),
    "diabetes": DatasetInfo("diabetes", "regression", 442, 10, None, False, ""),
}
_GENERATED = {
    "mnist1d": DatasetInfo(
        "mnist1d", "classification", 5000, 40, 10, True, MNIST1D_DESCRIPTION
    ),
    "moons": DatasetInfo("moons", "classification", 400, 2, 2, True, ""),
    "circles": DatasetInfo("circles", "classification", 400, 2, 2, True, ""),
    "spirals": DatasetInfo("spirals", "classification", 600, 2, 2, True, ""),
}
_TOY: dict[str, Callable[..., RawData]] = {
    "moons": generators.moons,
    "circles": generators.circles,
    "spirals": generators.spirals,
}


def dataset_names() -> list[str]:
    """The names of the built-in data sets (bundled and generated), sorted."""
    return sorted([*_BUNDLED, *_GENERATED])


def dataset_info(name: str) -> DatasetInfo:
    """What is known about the built-in set ``name`` without loading it."""
    if name not in _BUNDLED and name not in _GENERATED:
        known = [*dataset_names(), *FILE_KINDS]
        raise DataError(unknown_name("data set", str(name), known))
    info = _BUNDLED.get(name) or _GENERATED[name]
    if info.description:
        return info
    description = DESCRIPTIONS.get(name) or generators.DESCRIPTIONS[name]
    return DatasetInfo(**{**info.as_dict(), "description": description})


def describe_datasets() -> list[dict[str, Any]]:
    """One row per built-in set: name, task, samples, features, classes.

    ``samples`` is the default count for generated sets; ``classes`` is None
    for regression. Nothing is loaded: the counts are fixed facts about each
    set (a test checks them against the loaded data). :func:`dataset_info`
    gives the description as well.
    """
    columns = ("name", "task", "samples", "features", "classes")
    return [
        {key: getattr(dataset_info(name), key) for key in columns}
        for name in dataset_names()
    ]


def load_dataset(
    name: str,
    *,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    standardize: bool = True,
    n_samples: int | None = None,
    noise: float | None = None,
    path: str | os.PathLike[str] | None = None,
    target: str | int | None = None,
    task: str | None = None,
    drop_nan: bool = False,
    standardize_target: bool = False,
    target_path: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load a data set by name, split and standardised.

    Parameters
    ----------
    name : str
        A built-in name (see :func:`dataset_names`) or a file kind:
        ``"csv"``, ``"npy"``, ``"npz"`` or ``"file"`` (kind from the suffix).
    seed : int
        Fixes the split and, for generated sets, the samples.
    val_fraction, test_fraction : float
        Shares held out for validation and test; each in [0, 1), their sum
        below 1; a share of 0 gives an empty split.
    standardize : bool
        Standardise features with the training part's mean and std (kept on
        the data set as ``mean`` and ``std``).
    n_samples : int, optional
        The number of samples of a generated set (moons, circles, spirals,
        mnist1d).
    noise : float, optional
        The noise of moons (default 0.2), circles (0.1) or spirals (0.05).
    path : path-like, optional
        The data file, for the file kinds.
    target : str or int, optional
        The target column of a data file (see :mod:`annlens.data.files`).
    task : str, optional
        ``"classification"`` or ``"regression"`` for a data file; inferred when
        omitted.
    drop_nan : bool
        Drop rows of a data file that hold NaN instead of refusing them.
    standardize_target : bool
        Standardise regression targets with the training part's mean and std
        (kept as ``target_mean`` and ``target_std``; predictions go back to
        the target's units with ``inverse_transform_target``). Off here, so
        that ``y`` is as the source holds it; experiments turn it on by
        default (``data.standardize_target``). Class labels are never scaled.
    target_path : path-like, optional
        A .npy array of targets, (samples,) or (samples, outputs), for
        features in the plain 2-D .npy array at ``path`` (``target`` is then
        not given). Its one-hot rows are class labels; other 2-D targets are
        several regression outputs.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        An unknown name, an option that does not apply to the data set, or
        data that cannot be used (see :mod:`annlens.data.clean`).

    Examples
    --------
    >>> data = load_dataset("iris", seed=0)  # doctest: +SKIP
    >>> data.x_train.shape, data.n_classes  # doctest: +SKIP
    ((106, 4), 3)
    """
    check_seed(seed)
    raw = _load_raw(name, seed, n_samples, noise, path, target, task, target_path)
    return build_dataset(
        raw,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        standardize=standardize,
        drop_nan=drop_nan,
        standardize_target=standardize_target,
    )


def _load_raw(
    name: str,
    seed: int,
    n_samples: int | None,
    noise: float | None,
    path: str | os.PathLike[str] | None,
    target: str | int | None,
    task: str | None,
    target_path: str | os.PathLike[str] | None = None,
) -> RawData:
    if name in FILE_KINDS:
        _refuse(name, n_samples=n_samples, noise=noise)
        if path is None:
            raise DataError(f"data set {name!r} reads a file; help: pass path=")
        return read_data_file(
            path,
            target,
            kind=None if name == "file" else name,
            task=task,
            target_path=target_path,
        )

    dataset_info(name)  # refuses an unknown name, listing the known ones
    _refuse(name, path=path, target=target, task=task, target_path=target_path)
    if name in _BUNDLED:
        _refuse(name, n_samples=n_samples, noise=noise)
        return load_bundled(name)
    if name == "mnist1d":
        _refuse(name, noise=noise)
        return load_mnist1d(n_samples)

    count = _GENERATED[name].samples if n_samples is None else n_samples
    if isinstance(count, bool) or not isinstance(count, int) or count < 4:
        raise DataError(f"{name}: n_samples must be an integer >= 4, got {count!r}")
    if noise is not None and (
        isinstance(noise, bool)
        or not isinstance(noise, (int, float))
        or not 0.0 <= noise < float("inf")
    ):
        raise DataError(f"{name}: noise must be a finite number >= 0, got {noise!r}")
    return _TOY[name](seeded_generator(int(seed), SAMPLE_STREAM), count, noise)


def _refuse(name: str, **options: Any) -> None:
    """Refuse options that do not apply to data set ``name``."""
    given = sorted(key for key, value in options.items() if value is not None)
    if given:
        raise DataError(
            f"data set {name!r} does not take {', '.join(given)}; "
            "n_samples applies to generated sets, noise to moons, circles and "
            "spirals, path/target/target_path/task to files"
        )
