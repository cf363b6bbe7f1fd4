"""Metrics: functions ``(output, target) -> float`` looked up by name.

Holds accuracy, the regression errors mae and rmse, and the registry where
users add their own. The loss is not a
metric here: the trainer always records it, from the loss object it trains
with, so ``"loss"`` in a metric list is accepted and means nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from annlens.errors import ConfigError, LabelError, UnknownNameError, unknown_name
from annlens.layers.base import Array

Metric = Callable[[Array, Any], float]


def accuracy(output: Array, target: Any) -> float:
    """The fraction of samples whose predicted class is the target class.

    Parameters
    ----------
    output : ndarray, (batch, classes) or (batch, 1)
        Scores or logits. With several columns the prediction is the argmax;
        with one column it is ``output > 0`` (a logit threshold of 0, which is
        probability 0.5 for a sigmoid; an output already squashed to (0, 1)
        needs a metric of its own).
    target : ndarray, (batch,) or (batch, classes) or (batch, 1)
        Class indices, one-hot rows (argmax taken), or 0/1 labels for one
        binary output.

    Returns
    -------
    float
        In [0, 1].
    """
    output = np.asarray(output)
    target = np.asarray(target)
    if output.ndim != 2 or len(target) != len(output):
        raise LabelError(
            f"accuracy expects output (batch, classes) and as many targets, "
            f"got output {output.shape} and target {target.shape}"
        )
    if output.shape[1] == 1:
        predicted = output[:, 0] > 0
        truth = target.reshape(len(target), -1)
        if truth.shape[1] != 1:
            raise LabelError(
                f"accuracy of a single binary output expects 0/1 targets of shape "
                f"(batch,) or (batch, 1), got {target.shape}"
            )
        _check_numbers_within(
            truth[:, 0], 0.0, 1.0, "the targets of a single binary output"
        )
        return float(np.mean(predicted == (truth[:, 0] > 0.5)))

    predicted = output.argmax(axis=1)
    if target.ndim == 2 and target.shape[1] == output.shape[1]:
        truth = target.argmax(axis=1)
    elif target.ndim == 1 or (target.ndim == 2 and target.shape[1] == 1):
        truth = target.reshape(-1)
        if truth.dtype.kind == "f":
            bad = np.flatnonzero(truth != np.round(truth))
            if len(bad):
                raise LabelError(
                    f"accuracy expects whole class indices, got "
                    f"{float(truth[bad[0]]):g} at position {bad[0]}; help: for a "
                    "continuous target use "
                    "metrics 'mae' or 'rmse'"
                )
    else:
        raise LabelError(
            f"accuracy expects class indices (batch,) or one-hot rows "
            f"(batch, {output.shape[1]}), got target shape {target.shape}"
        )
    return float(np.mean(predicted == truth))


def _check_numbers_within(values: Array, low: float, high: float, what: str) -> None:
    """A LabelError naming the first number (or NaN) outside [low, high]."""
    if values.dtype.kind not in "biuf":
        return
    bad = np.flatnonzero(~((values >= low) & (values <= high)))
    if len(bad):
        raise LabelError(
            f"accuracy expects {what} in [{low:g}, {high:g}], got "
            f"{float(values[bad[0]]):g} at position {bad[0]}; help: for a continuous "
            "target use metrics 'mae' or 'rmse'"
        )


def _errors(name: str, output: Array, target: Any) -> Array:
    """``output - target``, with targets of shape (batch,) read as one column."""
    output = np.asarray(output)
    target = np.asarray(target)
    if target.shape != output.shape and target.shape == output.shape[:1]:
        target = target.reshape(output.shape)
    if target.shape != output.shape:
        raise LabelError(
            f"{name} expects targets of the output's shape {output.shape} (or "
            f"({len(output)},) for one output), got {target.shape}"
        )
    return output - target


def mae(output: Array, target: Any) -> float:
    """The mean absolute error ``mean |output - target|``, in the target's units.

    Targets of shape (batch,) are read as one column, as the MSE loss reads
    them for a single output.
    """
    return float(np.mean(np.abs(_errors("mae", output, target))))


def rmse(output: Array, target: Any) -> float:
    """The root mean squared error ``sqrt(mean (output - target)²)``."""
    return float(np.sqrt(np.mean(np.square(_errors("rmse", output, target)))))


_METRICS: dict[str, Metric] = {"accuracy": accuracy, "mae": mae, "rmse": rmse}

#: Metrics that are the square root of a per-sample mean (see :func:`is_root_mean`).
ROOT_MEAN_METRICS: frozenset[Metric] = frozenset({rmse})


def is_root_mean(fn: Metric) -> bool:
    """Whether ``fn`` is the square root of a per-sample mean: ``rmse``, or a
    callable object whose ``root_mean`` attribute is True.

    An epoch pools such a metric's squares, weighted by batch size, and takes
    the root at the end, so that the epoch's value is the metric over all of
    its samples, not a mean of roots.
    """
    return fn in ROOT_MEAN_METRICS or getattr(fn, "root_mean", False) is True


def metric_value(name: str, value: Any) -> float:
    """A metric function's result as a float, or a ConfigError naming the metric."""
    try:
        return float(value)
    except (TypeError, ValueError):
        shape = getattr(value, "shape", None)
        got = type(value).__name__ + (f" of shape {shape}" if shape else "")
        raise ConfigError(
            f"metric {name!r} must return one number, got {got}: {value!r:.80}; "
            "help: reduce it to a scalar, such as a mean over the batch"
        ) from None


def register_metric(name: str, fn: Metric, *, overwrite: bool = False) -> None:
    """Make ``fn(output, target) -> float`` available under ``name``."""
    if not isinstance(name, str) or not name or name == "loss":
        raise ConfigError(f"a metric needs a name other than 'loss', got {name!r}")
    if not callable(fn):
        raise ConfigError(f"metric {name!r} must be callable, got {fn!r}")
    if name in _METRICS and not overwrite:
        raise ConfigError(
            f"metric {name!r} is already registered; help: pass overwrite=True"
        )
    _METRICS[name] = fn


def get_metric(name: str) -> Metric:
    """The metric registered as ``name``."""
    if name not in _METRICS:
        raise UnknownNameError(unknown_name("metric", name, metric_names()))
    return _METRICS[name]


def metric_names() -> list[str]:
    """The names of every registered metric."""
    return sorted(_METRICS)
