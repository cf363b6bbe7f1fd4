"""N training steps side by side: how far annlens and PyTorch drift apart.

:func:`compare_training` trains a copy of the model with the annlens Trainer's
own step, and its PyTorch twin with
:class:`~annlens.analysis.compare.torch_training.TorchSteps`: the same
optimizer rule and hyperparameters (its groups included), the same
penalties, clipping, constraints and learning-rate schedule, the same batches
in the same order and, for Dropout, the same masks. After every step it
records the two losses and the difference of every parameter and buffer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from annlens.analysis.compare.measure import difference, excess, resolve_tolerances
from annlens.analysis.compare.one_batch import HookPointLog, detached_copy
from annlens.analysis.compare.trajectory import TrajectoryResult, TrajectoryStep
from annlens.errors import ConfigError, NonFiniteError


def build_optimizer(name: str | type, model: Any, hyper: Mapping[str, Any]) -> Any:
    """The annlens optimizer ``name`` ("sgd", "adam", ... or a class) for ``model``."""
    from annlens.optim import get_optimizer

    if isinstance(name, type):
        return name(model, **hyper)
    return get_optimizer(name, model, **hyper)


def compare_training(
    model: Any,
    optimizer_name: str | type,
    hyper: Mapping[str, Any],
    x: Any,
    y: Any,
    loss: Any,
    steps: int,
    batch_size: int,
    seed: int = 0,
    *,
    penalties: Sequence[Any] = (),
    clip_value: float | None = None,
    clip_norm: float | None = None,
    constraints: Sequence[Any] = (),
    schedule: str | None = None,
    schedule_settings: Mapping[str, Any] | None = None,
    tolerance: float | None = None,
    atol: float | None = None,
) -> TrajectoryResult:
    """Train annlens and its PyTorch twin side by side for ``steps`` steps.

    Parameters
    ----------
    model : Sequential
        The starting point; it is not changed (both train a copy), and both
        train in training mode.
    optimizer_name : str or Optimizer subclass
        An annlens optimizer ("sgd", "adam", ...); torch gets the
        ``torch.optim`` class of the same rule.
    hyper : dict
        Hyperparameters for the annlens optimizer, ``groups`` included; torch
        receives the resolved set (the defaults included) per parameter.
    x : array-like, (samples, in_features)
        Training inputs.
    y : array-like
        Training targets, as ``loss`` takes them.
    loss : Loss or str
        A built-in annlens loss, or its registered name.
    steps : int
        Optimizer steps to take, >= 1.
    batch_size : int
        Samples per step; each epoch visits full batches of one permutation
        drawn from ``seed``, the same for both.
    seed : int
        Fixes the data order.
    penalties : sequence of L1Penalty or L2Penalty
        Added to the loss, as the Trainer's ``penalties``.
    clip_value, clip_norm : float, optional
        Gradient clipping, as the Trainer's.
    constraints : sequence of MaxNorm or NonNegative
        Applied after each update, as the Trainer's.
    schedule : str, optional
        A learning-rate schedule by registered name, built on the annlens
        optimizer with ``schedule_settings``.
    schedule_settings : dict, optional
        The schedule's settings (``gamma``, ``T_max``, ``unit``, ...).
    tolerance, atol : float, optional
        The relative and absolute difference counted as agreement (the dtype's
        defaults, 1e-4 and 1e-6 in float32, 1e-10 and 1e-12 in float64).

    Returns
    -------
    TrajectoryResult
        Per step: both losses, their difference, and the difference of every
        parameter and buffer after the update. When annlens's NaN guard
        finds a NaN or Inf, the run stops before that step and ``stopped``
        says where.

    Raises
    ------
    ConfigError
        For a batch size or step count out of range, a bad tolerance, or a
        setting the Trainer refuses.
    NotImplementedError
        For a layer, loss, optimizer, penalty or constraint without a twin.

    Notes
    -----
    A schedule whose unit is the epoch steps after every ``samples //
    batch_size`` steps (one epoch of full batches); one that follows a metric
    (``plateau``) is given the epoch's mean training loss, there being no
    validation pass here. torch's learning rate is set from annlens's at
    every step (see
    :class:`~annlens.analysis.compare.torch_training.TorchSteps`).
    """
    from annlens.analysis.compare.torch_training import TorchSteps
    from annlens.analysis.compare.twin import build_twin, loss_twin
    from annlens.losses import get_loss
    from annlens.optim import get_schedule
    from annlens.training import Trainer

    tolerance, atol = resolve_tolerances(model.dtype, tolerance, atol)
    x = np.asarray(x)
    _check_counts(len(x), batch_size, steps)
    ours = detached_copy(model)
    ours.train()
    twin = build_twin(ours)
    loss = get_loss(loss)
    optimizer = build_optimizer(optimizer_name, ours, hyper)
    scheduled = None
    if schedule is not None:
        scheduled = get_schedule(schedule, optimizer, **dict(schedule_settings or {}))
    trainer = Trainer(
        ours,
        loss,
        optimizer,
        batch_size=batch_size,
        schedule=scheduled,
        schedule_monitor="loss",
        penalties=penalties,
        clip_norm=clip_norm,
        clip_value=clip_value,
        constraints=constraints,
        metrics=(),
        seed=seed,
        record_steps=False,
    )
    theirs = TorchSteps(
        twin, loss_twin(loss), optimizer, penalties, clip_value, clip_norm, constraints
    )

    x = x.astype(ours.dtype, copy=False)
    y = np.asarray(y)
    recorder = HookPointLog()
    masks = ours.hooks(("mask", recorder)) if _has_dropout(ours) else None
    records: list[TrajectoryStep] = []
    stopped = None
    epoch_losses: list[float] = []
    per_epoch = len(x) // batch_size
    try:
        for step, rows in enumerate(_batches(len(x), batch_size, steps, seed), 1):
            lr_scale = optimizer.lr_scale
            try:
                value = trainer.step(x[rows], y[rows])["loss"]
            except NonFiniteError as error:
                stopped = f"annlens stopped at step {step}: {error}"
                break
            twin.set_masks(recorder.masks)
            torch_value = theirs.step(x[rows], y[rows], lr_scale)
            records.append(_record(step, value, torch_value, twin, tolerance, atol))
            epoch_losses.append(value)
            if scheduled is not None and scheduled.unit == "epoch":
                if step % per_epoch == 0:
                    mean = float(np.mean(epoch_losses))
                    scheduled.step(mean if scheduled.needs_metric else None)
                    epoch_losses.clear()
    finally:
        if masks is not None:
            masks.remove()
    return TrajectoryResult(
        records,
        repr(optimizer),
        ours.dtype.name,
        tolerance,
        atol,
        stopped,
        _recipe(penalties, clip_value, clip_norm, constraints, scheduled),
    )


def _has_dropout(model: Any) -> bool:
    return any("mask" in layer.stages for layer in model.layers)


def _recipe(
    penalties: Sequence[Any],
    clip_value: float | None,
    clip_norm: float | None,
    constraints: Sequence[Any],
    schedule: Any,
) -> str:
    """What a step does besides the update, in words ("" for nothing)."""
    parts = [repr(p) for p in penalties]
    if clip_value is not None:
        parts.append(f"clip_value={clip_value:g}")
    if clip_norm is not None:
        parts.append(f"clip_norm={clip_norm:g}")
    parts += [repr(c) for c in constraints]
    if schedule is not None:
        parts.append(repr(schedule))
    return ", ".join(parts)


def _check_counts(samples: int, batch_size: Any, steps: Any) -> None:
    """Refuse a batch size or a step count that cannot be run."""
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or not 1 <= batch_size <= samples
    ):
        raise ConfigError(
            f"compare_training batch_size must be in [1, {samples}] (the number "
            f"of samples), got {batch_size!r}"
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"compare_training steps must be >= 1, got {steps!r}")


def _batches(samples: int, batch_size: int, steps: int, seed: int) -> Iterator[Any]:
    """Row indices of each step: full batches of a fresh permutation per epoch."""
    rng = np.random.default_rng(seed)
    per_epoch = samples // batch_size
    order = rng.permutation(samples)
    for step in range(steps):
        position = step % per_epoch
        if position == 0 and step > 0:
            order = rng.permutation(samples)
        yield order[position * batch_size : (position + 1) * batch_size]


def _record(
    step: int,
    value: float,
    torch_value: float,
    twin: Any,
    tolerance: float,
    atol: float,
) -> TrajectoryStep:
    """Both losses and every parameter's and buffer's difference after a step."""
    loss_abs, loss_rel = difference(value, torch_value)
    differences = {
        pair.name: difference(pair.annlens_value(), pair.torch_value())
        for pair in twin.pairs
    }

    def beyond(name: str) -> tuple[float, float]:
        max_abs, max_rel = differences[name]
        return excess(max_abs, max_rel, tolerance, atol), max_rel

    worst = max(differences, key=beyond, default="")
    worst_abs, worst_rel = differences.get(worst, (0.0, 0.0))
    return TrajectoryStep(
        step,
        value,
        torch_value,
        loss_abs,
        loss_rel,
        _largest([a for a, _ in differences.values()]),
        _largest([r for _, r in differences.values()]),
        worst,
        worst_abs,
        worst_rel,
        differences,
    )


def _largest(values: list[float]) -> float:
    """The largest value, NaN when there is one, 0 for none."""
    return float(np.max(values)) if values else 0.0
