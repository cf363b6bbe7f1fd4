"""Targets in an experiment: units of the metrics, the stored scaling, the loss check.

Regression targets are standardised by default (``data.standardize_target``):
the model learns ``(y - mean) / std`` with the training part's mean and std,
so the loss (MSE by default) starts near 1 whatever the target's scale. The
history's ``loss`` is then in standardised units; the metrics ``mae`` and
``rmse`` of every regression variant are in the target's own units, taken
back through the scaling, so that they read as the data does.

The scaling of every variant (features and targets) is written to
``scaling.json`` in the run directory when the run starts, with a
fingerprint of each split's features and targets; a resumed run refits it from its data
and refuses to go on if it or a digest differs (the data changed since).
:func:`check_loss_targets` tries the loss on every target of every split
before anything trains, and names the first refused one by its data row and
CSV line.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, NoReturn

import numpy as np
from numpy.typing import NDArray

from annlens.errors import AnnlensError, ConfigError

SCALING = "scaling.json"

Array = NDArray[Any]


class ErrorMetric:
    """MAE or RMSE of a regression output, in the target's own units.

    Parameters
    ----------
    kind : {"mae", "rmse"}
        Mean absolute error, or root mean squared error.
    std : ndarray, (outputs,) or None
        The targets' standardisation std (None: the targets are as loaded).
    logits : bool
        The output is a logit whose sigmoid is the prediction (under binary
        cross-entropy, which applies the sigmoid itself): the error is
        ``sigmoid(output) - target``, a probability's error.

    Notes
    -----
    With standardised targets, ``output - target`` is in units of std, so the
    error in the target's units is ``(output - target) * std``; the mean
    cancels. A training row averages the batches' values weighted by batch
    size (see :class:`~annlens.training.Trainer`), for RMSE their squares
    before the root (``root_mean`` is True), so that it is the RMSE over the
    epoch's samples; validation and test values are computed over the whole
    split.
    """

    def __init__(self, kind: str, std: Array | None, logits: bool = False) -> None:
        assert kind in ("mae", "rmse"), f"unknown error kind {kind!r}"
        self.kind = kind
        self.std = np.ones(1) if std is None else np.asarray(std, dtype=np.float64)
        self.logits = logits
        self.root_mean = kind == "rmse"

    def __call__(self, output: Array, target: Any) -> float:
        output = np.asarray(output, dtype=np.float64)
        if self.logits:
            output = 0.5 * (1.0 + np.tanh(0.5 * output))  # sigmoid, no overflow
        target = np.asarray(target, dtype=np.float64).reshape(output.shape)
        error = (output - target) * self.std
        if self.kind == "mae":
            return float(np.mean(np.abs(error)))
        return float(np.sqrt(np.mean(error**2)))

    def __repr__(self) -> str:
        logits = ", logits=True" if self.logits else ""
        return f"ErrorMetric({self.kind!r}, std={self.std.tolist()}{logits})"


def regression_metrics(data: Any, loss: Any = None) -> list[tuple[str, ErrorMetric]]:
    """``mae`` and ``rmse`` in the target's units, for a regression data set.

    Under binary cross-entropy (probability targets) the output is a logit
    and the errors are those of its sigmoid.
    """
    from annlens.losses import BinaryCrossEntropy

    logits = isinstance(loss, BinaryCrossEntropy)
    return [
        (kind, ErrorMetric(kind, data.target_std, logits)) for kind in ("mae", "rmse")
    ]


def metric_names(task: str) -> list[str]:
    """The metrics a variant records besides the loss."""
    return ["accuracy"] if task == "classification" else ["mae", "rmse"]


# -- the scaling stored with a run ------------------------------------------------


def scaling_record(data: Any) -> dict[str, Any]:
    """The standardisation of one variant's data, as plain JSON values.

    ``classes`` names the class of each model output, in order (None for
    regression): text labels are sorted, so the file's labels alone do not
    say which output is which.
    """

    def pair(mean: Array | None, std: Array | None) -> dict[str, Any] | None:
        if mean is None or std is None:
            return None
        return {"mean": np.asarray(mean).tolist(), "std": np.asarray(std).tolist()}

    return {
        "task": data.task,
        "features": pair(data.mean, data.std),
        "target": pair(data.target_mean, data.target_std),
        "classes": list(data.class_names) if data.class_names is not None else None,
    }


def write_scaling(run_dir: Any, all_parts: list[Any]) -> None:
    """Write ``scaling.json``: each variant's feature and target scaling."""
    from annlens.io.atomic import write_json

    record = {
        parts.name: {**scaling_record(parts.data), "data": data_fingerprint(parts.data)}
        for parts in all_parts
    }
    write_json(run_dir.path / SCALING, record)


SPLITS = {"train": "training", "val": "validation", "test": "test"}

#: Relative tolerance of the sums that fingerprint a float array: far above
#: the last-digit differences of the same data standardised on another
#: machine, far below any edit of a value.
FINGERPRINT_TOLERANCE = 1e-9


def array_fingerprint(array: Array) -> dict[str, Any]:
    """What identifies an array across machines: shape and dtype, then

    - class indices and other integers: the sha256 of their bytes, exact;
    - floats (standardised features or targets, whose last digits may differ
      between machines): ``Σ x``, ``Σ x²`` and the sums weighted by row and
      by column position, ``Σ (i+1) x_ij`` and ``Σ (j+1) x_ij``, so that an
      edited value, a swapped row or a swapped column changes one of them.
    """
    array = np.ascontiguousarray(array)
    record: dict[str, Any] = {"dtype": array.dtype.str, "shape": list(array.shape)}
    if array.dtype.kind != "f":
        record["sha256"] = hashlib.sha256(array.tobytes()).hexdigest()
        return record
    # (samples, everything else), also for an empty split
    table = array.reshape(len(array), math.prod(array.shape[1:])).astype(np.float64)
    rows = np.arange(1, table.shape[0] + 1, dtype=np.float64)
    columns = np.arange(1, table.shape[1] + 1, dtype=np.float64)
    record["sums"] = [
        float(table.sum()),
        float(np.square(table).sum()),
        float(rows @ table.sum(axis=1)),
        float(table.sum(axis=0) @ columns),
    ]
    record["scale"] = (
        float(np.abs(table).sum() * rows[-1] * columns[-1]) if len(table) else 0.0
    )
    return record


def same_fingerprint(now: dict[str, Any], then: Any) -> bool:
    """Whether two :func:`array_fingerprint` records describe the same array."""
    if not isinstance(then, dict) or any(
        now[key] != then.get(key) for key in ("dtype", "shape")
    ):
        return False
    if "sha256" in now:
        return bool(now["sha256"] == then.get("sha256"))
    sums = then.get("sums")
    if not isinstance(sums, list) or len(sums) != len(now["sums"]):
        return False
    tolerance = FINGERPRINT_TOLERANCE * max(now["scale"], 1.0)
    return all(abs(a - b) <= tolerance for a, b in zip(now["sums"], sums, strict=True))


def data_fingerprint(data: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """The fingerprint of each split's features and targets (see
    :func:`array_fingerprint`), as the model trains on them: a data file whose
    labels were edited (the features, and so their scaling, unchanged) gives
    another."""
    return {
        split: {"features": array_fingerprint(x), "targets": array_fingerprint(y)}
        for split, (x, y) in ((s, data.split(s)) for s in SPLITS)
    }


def _check_fingerprint(run_dir: Any, parts: Any, then: Any) -> None:
    """Refuse data whose arrays differ from those the run started with.

    A run written before the fingerprint was stored has none and is not
    checked.
    """
    if not isinstance(then, dict):
        return
    now = data_fingerprint(parts.data)
    for split, name in SPLITS.items():
        for part in ("features", "targets"):
            stored = (then.get(split) or {}).get(part)
            if not same_fingerprint(now[split][part], stored):
                raise ConfigError(
                    f"variant {parts.name!r}: the {name} {part} differ from "
                    f"those the run started with (their fingerprint in {SCALING} "
                    f"of {str(run_dir.path)!r}); the data changed since the run "
                    "started, so resuming would not continue the same run; "
                    "help: to train on the data as it is now, start a new run: "
                    f"`annlens run {run_dir.config_path}`; to continue this one, "
                    "put the data back as it was"
                )


def check_scaling(run_dir: Any, all_parts: list[Any]) -> None:
    """Refuse to resume when the data no longer gives the stored scaling.

    A run directory written before the scaling was stored has no
    ``scaling.json``; it is accepted unless a variant standardises its
    targets, whose units the checkpoints would then not tell.
    """
    path = run_dir.path / SCALING
    if not path.exists():
        scaled = [p.name for p in all_parts if p.data.target_mean is not None]
        if scaled:
            raise ConfigError(
                f"{str(run_dir.path)!r} holds no {SCALING}, so the target units "
                f"its variants {scaled} trained in are not known; help: if the "
                "run was made before targets were standardised, add "
                "standardize_target = false to [data] in its config"
            )
        return
    stored = json.loads(path.read_text(encoding="utf-8"))
    for parts in all_parts:
        now, then = scaling_record(parts.data), stored.get(parts.name)
        if then is None:
            raise ConfigError(
                f"{SCALING} of {str(run_dir.path)!r} holds no variant "
                f"{parts.name!r}; help: start a new run"
            )
        for part in ("features", "target"):
            if not _same(now[part], then.get(part)):
                raise ConfigError(
                    f"variant {parts.name!r}: the data gives another {part} "
                    f"standardisation than the one stored in {SCALING} "
                    f"(mean {_short(then.get(part))} then, {_short(now[part])} "
                    "now); the data changed since the run started, so resuming "
                    "would not continue the same run; help: start a new run"
                )
        _check_fingerprint(run_dir, parts, then.get("data"))


def _same(now: dict[str, Any] | None, then: dict[str, Any] | None) -> bool:
    if now is None or then is None:
        return now is then
    return all(
        np.shape(now[key]) == np.shape(then[key])
        and np.allclose(now[key], then[key], rtol=1e-12, atol=0.0)
        for key in ("mean", "std")
    )


def _short(pair: dict[str, Any] | None) -> str:
    if pair is None:
        return "none"
    values = [f"{v:.6g}" for v in pair["mean"][:3]]
    return "[" + ", ".join(values) + (", ...]" if len(pair["mean"]) > 3 else "]")


# -- the loss against every target ------------------------------------------------


def _fits(loss: Any, y: Array, outputs: int, dtype: Any) -> AnnlensError | None:
    """The error the loss raises on targets ``y`` (None when it takes them)."""
    output = np.zeros((len(y), outputs), dtype=dtype)
    try:
        loss.value_and_grad(output, y)
    except AnnlensError as error:
        return error
    return None


def _first_refused(loss: Any, y: Array, outputs: int, dtype: Any) -> int:
    """The position of the first target the loss refuses (``y`` as a whole fails).

    Bisects on prefixes: the loss checks each target on its own, so a prefix
    fails exactly when it holds a refused target.
    """
    low, high = 1, len(y)  # the prefix of length high fails
    while low < high:
        middle = (low + high) // 2
        if _fits(loss, y[:middle], outputs, dtype) is None:
            low = middle + 1
        else:
            high = middle
    return high - 1


def check_loss_targets(
    loss: Any, data: Any, dtype: Any, outputs: int | None = None
) -> None:
    """Refuse, before training, targets of any split that the loss would refuse.

    ``outputs`` is the model's output width (default: the data's
    ``n_outputs``). Each split is tried whole, as
    :meth:`~annlens.training.Trainer.evaluate` takes it. A loss that refuses
    the first target already does not fit the data at all (wrong kind of
    target): the message then speaks of the output width and the number of
    classes or target columns. Otherwise the first refused target is named
    by split, data row and CSV line.

    Raises
    ------
    AnnlensError
        The loss's own error, its message extended with where the target is.
    """
    outputs = data.n_outputs if outputs is None else outputs
    where = f"loss {loss.name!r} does not fit the data ({_kind(data)})"
    error = _fits(loss, data.y_train[:1], outputs, dtype)
    if error is not None:
        _raise_reworded(
            error,
            f"{where}: {_mismatch(loss, data, outputs) or _shaped(error, outputs)}"
            f"{_hint(loss, data, data.y_train[:1], dtype)}",
        )
    for split in ("train", "val", "test"):
        y = data.split(split)[1]
        error = _fits(loss, y, outputs, dtype) if len(y) else None
        if error is None:
            continue
        position = _first_refused(loss, y, outputs, dtype)
        _raise_reworded(
            error,
            f"{where}: {split} targets: {error}; the first refused, position "
            f"{position} of the {split} split, is {data.locate(split, position)}"
            f"{_hint(loss, data, y[position : position + 1], dtype)}",
        )


def _shaped(error: AnnlensError, outputs: int) -> str:
    """The loss's own message, with what its shapes mean for the model."""
    if "shape" not in str(error):
        return str(error)
    return (
        f"{error} (tried on one target; shapes are (samples, width), and the "
        f"model's output width is {outputs})"
    )


def _kind(data: Any) -> str:
    """``"classification, 3 classes"`` or ``"regression, 1 target column"``."""
    if data.task == "classification":
        return f"classification, {data.n_classes} classes"
    columns = data.n_outputs
    return f"regression, {columns} target column{'s' if columns != 1 else ''}"


def _mismatch(loss: Any, data: Any, outputs: int) -> str:
    """Why a loss cannot take this kind of target, in a user's terms ('' if unknown)."""
    from annlens.losses import (
        MAE,
        MSE,
        BinaryCrossEntropy,
        Huber,
        NLLLoss,
        SoftmaxCrossEntropy,
    )

    labels = (SoftmaxCrossEntropy, NLLLoss)
    numbers = (MSE, MAE, Huber)
    from_file = data.source is not None  # data.task applies to files only
    if isinstance(loss, labels) and data.task == "regression":
        task = "set data.task = 'classification' if the target holds classes, or "
        return (
            "it takes class labels, one output per class, but the target is a "
            f"continuous number ({outputs} output{'s' if outputs != 1 else ''}); "
            f"help: {task if from_file else ''}use loss.name = 'mse' (or 'auto') "
            "for a continuous target"
        )
    if isinstance(loss, numbers) and data.task == "classification":
        task = ", or set data.task = 'regression' if the target is a number"
        return (
            f"it compares each of the model's {outputs} outputs with a number, "
            f"but the target is one class label out of {data.n_classes}; help: "
            "use loss.name = 'auto' (softmax cross-entropy) for class labels"
            f"{task if from_file else ''}"
        )
    if isinstance(loss, BinaryCrossEntropy) and data.task == "classification":
        return (
            f"it takes one yes/no output per target, but the model's output "
            f"width is {outputs} for {data.n_classes} classes; help: use "
            "loss.name = 'softmax_cross_entropy' (or 'auto') for more than two "
            "classes"
        )
    if isinstance(loss, BinaryCrossEntropy) and data.task == "regression":
        own = np.asarray(data.inverse_transform_target(data.y_train), dtype=float)
        low, high = float(np.nanmin(own)), float(np.nanmax(own))
        outside = float(np.mean((own < 0.0) | (own > 1.0)))
        if outside > 0.05:  # a continuous target, not a few stray values
            return (
                "it takes targets in [0, 1] (probabilities of class 1), but the "
                f"target is a continuous number from {low:.4g} to {high:.4g} in "
                "the training split; help: use loss.name = 'mse' (or 'auto') for "
                "a continuous target"
            )
    return ""


def _hint(loss: Any, data: Any, y: Array, dtype: Any) -> str:
    """A help line when the targets would fit in their own units."""
    if not data.targets_standardized:
        return ""
    original = data.inverse_transform_target(y)
    if _fits(loss, original, data.n_outputs, dtype) is not None:
        return ""
    return (
        "; help: the targets are standardised (data.standardize_target = true) "
        "and this loss takes them only in their own units; set "
        "data.standardize_target = false"
    )


def _raise_reworded(error: AnnlensError, message: str) -> NoReturn:
    """Raise ``error`` again with ``message`` in place of its own."""
    error.args = (message, *error.args[1:])
    raise error
