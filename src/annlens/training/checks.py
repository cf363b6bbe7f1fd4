"""Checks of the Trainer's settings and data, made before any step runs.

Each refusal names what was expected, what arrived and where; nothing here
changes the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from annlens.errors import (
    ConfigError,
    InputError,
    LabelError,
    ShapeError,
    check_count,
    did_you_mean,
)
from annlens.layers.base import Array
from annlens.layers.batchnorm import BatchNorm
from annlens.model import Sequential
from annlens.model.inputs import check_fits
from annlens.optim.constraints import Constraint

Pair = tuple[Array, Any]


def check_settings(
    model: Any,
    loss: Any,
    optimizer: Any,
    *,
    batch_size: Any,
    epochs: Any,
    schedule: Any,
    penalties: Sequence[Any],
    constraints: Sequence[Any],
    clip_norm: Any,
    clip_value: Any,
    validation_split: Any,
    seed: Any,
) -> None:
    """Refuse Trainer settings that cannot work, naming the bad one."""
    check_integer("batch_size", batch_size, 1)
    check_integer("epochs", epochs, 0)
    for name, value in (("clip_norm", clip_norm), ("clip_value", clip_value)):
        if value is not None and not (is_number(value) and value > 0):
            raise ConfigError(
                f"Trainer {name} must be a number > 0 or None, got {value!r}"
            )
    if not (is_number(validation_split) and 0 <= validation_split < 1):
        raise ConfigError(
            f"Trainer validation_split must be in [0, 1), got {validation_split!r}"
        )
    if seed is not None:
        check_integer("seed", seed, 0)
    if isinstance(loss, type):
        raise ConfigError(
            f"Trainer loss must be a loss object, got the class {loss.__name__}; "
            f"help: pass {loss.__name__}()"
        )
    if not callable(getattr(loss, "value_and_grad", None)):
        raise ConfigError(
            f"Trainer loss must have value_and_grad(output, target), got {loss!r}"
        )
    if not isinstance(model, Sequential):
        raise ConfigError(
            f"Trainer model must be a Sequential, got {type(model).__name__}"
        )
    if getattr(optimizer, "model", None) is not model:
        raise ConfigError(
            f"the optimizer {optimizer!r} was not built on this model; "
            "help: build it as Optimizer(model, ...)"
        )
    if schedule is not None and getattr(schedule, "optimizer", None) is not optimizer:
        raise ConfigError(
            f"the schedule {schedule!r} was not made on this trainer's "
            "optimizer; help: build it as Schedule(optimizer, ...)"
        )
    for name, group in (("penalties", penalties), ("constraints", constraints)):
        if isinstance(group, (str, bytes)) or not isinstance(group, Iterable):
            raise ConfigError(
                f"Trainer {name} must be a list, got {group!r}; "
                f"help: pass {name}=[{type(group).__name__}(...)]"
            )
    for constraint in constraints:
        if not callable(getattr(constraint, "apply", None)):
            raise ConfigError(
                f"a constraint must have apply(model), got {constraint!r}; "
                "help: see annlens.optim.constraints"
            )
        if isinstance(constraint, Constraint):
            # constraints apply after the update: refuse now what they would
            # refuse then (a pattern matching nothing, an axis a parameter lacks)
            for _, layer, key in constraint.chosen(model):
                constraint.project(layer.params[key])
    for penalty in penalties:
        if not all(
            callable(getattr(penalty, method, None))
            for method in ("value", "add_gradients")
        ):
            raise ConfigError(
                "a penalty must have value(model) and add_gradients(model), "
                f"got {penalty!r}; help: see annlens.optim.regularizers"
            )


def check_data(x: Any, y: Any, what: str) -> Pair:
    """``(x, y)`` as arrays: x 2-D and not empty, y as long as x."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2:
        raise ShapeError(
            f"{what}: x must be 2-D (samples, features), got shape {x.shape}"
        )
    if len(x) == 0:
        raise InputError(f"{what}: x holds no samples")
    if y.ndim == 0 or len(y) != len(x):
        raise ShapeError(
            f"{what}: x has {len(x)} samples but y has "
            f"{'a scalar' if y.ndim == 0 else len(y)}"
        )
    return x, y


def check_inputs(model: Any, x: Array, what: str) -> None:
    """Refuse an input the model cannot take, at its position in the whole data.

    The model checks each batch as it runs; checking all of ``x`` once before
    the first step refuses a wrong width, a non-numeric dtype or a NaN/Inf in
    any row before a step has changed the weights, and names its row in
    ``x`` rather than in a batch.
    """
    width = model.in_features
    if x.shape[1] != width:
        raise ShapeError(
            f"{what}: x must have {width} columns (the model's in_features), "
            f"got shape {x.shape}"
        )
    if x.dtype.kind not in "fiub":
        raise InputError(f"{what}: x must be numeric, got dtype {x.dtype}")
    finite = np.isfinite(x)
    if not finite.all():
        nan, inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
        row, column = np.argwhere(~finite)[0]
        raise InputError(
            f"{what}: x holds {nan} NaN and {inf} Inf values "
            f"(first at row {row}, column {column})"
        )
    if x.dtype.kind == "f" and x.dtype.itemsize > model.dtype.itemsize:
        with np.errstate(over="ignore"):
            converted = x.astype(model.dtype)
        check_fits(converted, x, f"{what}: x")


def check_targets(model: Any, loss: Any, y: Any, what: str) -> None:
    """Refuse a bad target before training, at its position in the whole data.

    The loss checks its targets at every batch; trying it once on all of them
    (against a zero output of the model's width) finds a label out of range,
    a fraction or a NaN in the last batch before the first one trains, and
    names its position in ``y`` rather than in a batch. Only the loss's
    :class:`~annlens.errors.LabelError` is raised here: anything else a
    custom loss does with a zero output is left to the training steps.
    """
    output = np.zeros((len(y), model.out_features), dtype=model.dtype)
    try:
        loss.value_and_grad(output, y)
    except LabelError as error:
        raise LabelError(f"{what}: {error}") from None
    except Exception:  # the training steps meet it with real outputs
        return


def split_validation(
    x: Array, y: Any, validation_data: Any, split: float
) -> tuple[Array, Any, Pair | None]:
    """The training part and the validation pair (given, split off, or None).

    ``split`` takes the last ``ceil(n * split)`` rows, before any shuffling.
    """
    if validation_data is not None:
        if split:
            raise ConfigError(
                "give validation_data or validation_split, not both "
                f"(validation_split={split})"
            )
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ConfigError(
                "validation_data must be a pair (x, y), "
                f"got {type(validation_data).__name__}"
            )
        x_val, y_val = validation_data
        return x, y, check_data(x_val, y_val, "validation data")
    if not split:
        return x, y, None
    # ceil(n * split), rounded first so that 0.8 of 10 holds out 8, not the 9
    # that n - int(n * (1 - 0.8)) gives in floating point
    held = math.ceil(round(len(x) * split, 9))
    if held < 1 or held >= len(x):
        raise ConfigError(
            f"validation_split={split} of {len(x)} samples holds out {held}; "
            "both parts need at least one sample"
        )
    cut = len(x) - held
    return x[:cut], y[:cut], (x[cut:], y[cut:])


def check_batches(model: Any, samples: int, batch_size: int) -> None:
    """Refuse a batch of one sample (every one, or the last) before BatchNorm."""
    if batch_size != 1 and samples % batch_size != 1:
        return
    for layer in model.layers:
        if isinstance(layer, BatchNorm) and batch_size == 1:
            raise ConfigError(
                f"with batch_size=1 every batch holds 1 sample, which BatchNorm "
                f"layer {layer.name!r} cannot normalise in training mode; "
                "help: use a batch_size of 2 or more"
            )
        if isinstance(layer, BatchNorm):
            raise ConfigError(
                f"with {samples} samples and batch_size={batch_size} the last "
                f"batch of every epoch holds 1 sample, which BatchNorm layer "
                f"{layer.name!r} cannot normalise in training mode; "
                "help: choose another batch_size"
            )


def check_schedule(
    schedule: Any, monitor: str, columns: Sequence[str], validating: bool
) -> None:
    """Refuse a metric-driven schedule whose monitored column will not exist.

    ``columns`` are the training columns of a step (loss, penalty, metrics);
    an epoch schedule with validation also sees their ``val_`` forms.
    """
    if schedule is None or not schedule.needs_metric:
        return
    known = list(columns)
    if validating and schedule.unit == "epoch":
        known += [f"val_{key}" for key in columns if key != "penalty"]
    if monitor not in known:
        article = "an" if schedule.unit[:1] in "aeiou" else "a"
        if not monitor.startswith("val_") or any(k.startswith("val_") for k in known):
            hint = ""
        elif schedule.unit == "epoch":
            hint = "; help: give validation data or schedule_monitor='loss'"
        else:
            hint = (
                f"; help: validation runs once an epoch, so a per-{schedule.unit} "
                "schedule follows a training column such as schedule_monitor='loss'"
            )
        raise ConfigError(
            f"the schedule {schedule!r} follows schedule_monitor={monitor!r}"
            f"{did_you_mean(monitor, known)}, but {article} {schedule.unit} of "
            f"this run gives only {', '.join(known)}{hint}"
        )


def check_schedule_length(
    schedule: Any, epochs: int, steps_per_epoch: int, step_limit: int | None = None
) -> None:
    """Refuse a schedule with a ``total_steps`` that this fit would step past.

    A OneCycle schedule cannot be stepped more than ``total_steps`` times;
    found only at the step that goes past, the run would fail part way, with
    that step's update already made. ``step_limit`` is a count of optimizer
    steps at which the fit stops (a callback's ``step_limit``), which bounds a
    schedule stepped once a batch.
    """
    if schedule is None or epochs <= 0:
        return
    per_epoch = steps_per_epoch if schedule.unit == "batch" else 1
    done = int(getattr(schedule, "count", 0))
    needed = done + epochs * per_epoch
    how = f"epochs x {'steps per epoch' if schedule.unit == 'batch' else '1'}"
    if step_limit is not None and schedule.unit == "batch" and step_limit < needed:
        needed, how = max(done, step_limit), "the step limit"
    after = getattr(schedule, "after", None)
    warmup = getattr(schedule, "warmup_steps", None)
    if after is not None and isinstance(warmup, int):
        # a warm-up in front: the schedule after it is stepped once the
        # warm-up's count has reached warmup_steps
        more = max(0, needed - max(done, warmup))
        schedule, done = after, int(getattr(after, "count", 0))
        needed = done + more
        how += f", less {warmup} warm-up steps"
    total = getattr(schedule, "total_steps", None)
    if not isinstance(total, int):
        return
    if needed > total:
        unit = "batch" if schedule.unit == "batch" else "epoch"
        raise ConfigError(
            f"the schedule {schedule!r} is stepped once a {unit}: this fit takes "
            f"{needed - done} more steps after {done}, {needed} in all, but "
            f"its total_steps is {total}; help: set total_steps={needed} ({how})"
        )


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    )


def check_integer(name: str, value: Any, low: int) -> None:
    check_count(f"Trainer {name}", value, low)
