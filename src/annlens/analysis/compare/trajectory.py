"""N training steps side by side: how far annlens and PyTorch drift apart.

:func:`compare_training` trains a copy of the model and its PyTorch twin with
the same optimizer (an annlens optimizer and the ``torch.optim`` class of the
same rule, given the same hyperparameters), the same batches in the same
order and, for Dropout, the same masks. After every step it records the two
losses and the largest difference over every parameter and buffer.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

from annlens.analysis.compare.parity import (
    HookPointLog,
    default_atol,
    default_tolerance,
    detached_copy,
    difference,
)
from annlens.errors import ConfigError

# annlens optimizer class name -> torch.optim class name (same rule, same keys).
TORCH_OPTIMIZERS: dict[str, str] = {
    "SGD": "SGD",
    "Adam": "Adam",
    "AdamW": "AdamW",
    "NAdam": "NAdam",
    "Adamax": "Adamax",
    "Adagrad": "Adagrad",
    "RMSProp": "RMSprop",
    "Adadelta": "Adadelta",
}


@dataclass(frozen=True)
class TrajectoryStep:
    """The state of the two runs after one optimizer step.

    Attributes
    ----------
    step : int
        The step number, from 1.
    loss_annlens, loss_torch : float
        The loss each computed on this step's batch (before its update).
    loss_abs, loss_rel : float
        Their absolute and relative difference.
    param_max_abs, param_max_rel : float
        The largest difference over every parameter and buffer after the
        update (see :func:`~annlens.analysis.compare.difference`).
    worst : str
        The parameter or buffer where the relative difference is largest.
    """

    step: int
    loss_annlens: float
    loss_torch: float
    loss_abs: float
    loss_rel: float
    param_max_abs: float
    param_max_rel: float
    worst: str


@dataclass
class TrajectoryResult:
    """How two training runs drift apart, step by step.

    Attributes
    ----------
    steps : list of TrajectoryStep
        One entry per optimizer step.
    optimizer : str
        The annlens optimizer and its hyperparameters.
    dtype : str
        The dtype both trained in.
    """

    steps: list[TrajectoryStep]
    optimizer: str
    dtype: str

    @property
    def max_param_rel(self) -> float:
        """The largest relative parameter difference over every step."""
        return max((s.param_max_rel for s in self.steps), default=0.0)

    @property
    def max_loss_rel(self) -> float:
        """The largest relative loss difference over every step."""
        return max((s.loss_rel for s in self.steps), default=0.0)

    def agrees(self, tolerance: float | None = None, atol: float | None = None) -> bool:
        """Whether every step stays within ``tolerance`` relative or ``atol``
        absolute, for the loss and for the parameters (by dtype by default)."""
        rel = tolerance if tolerance is not None else default_tolerance(self.dtype)
        absolute = atol if atol is not None else default_atol(self.dtype)
        return all(
            (s.loss_rel <= rel or s.loss_abs <= absolute)
            and (s.param_max_rel <= rel or s.param_max_abs <= absolute)
            for s in self.steps
        )

    def to_dataframe(self) -> Any:
        """One row per step, as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame([vars(step) for step in self.steps])

    def table(self) -> Any:
        """A rich Table for the terminal."""
        from annlens.analysis.compare.table import trajectory_table

        return trajectory_table(self)

    def to_html(self) -> str:
        """An HTML fragment (a ``<table>``) for the report."""
        from annlens.analysis.compare.table import trajectory_html

        return trajectory_html(self)

    def __rich__(self) -> Any:
        return self.table()

    def __repr__(self) -> str:
        return (
            f"TrajectoryResult({len(self.steps)} steps, {self.optimizer}, "
            f"dtype={self.dtype}, max_param_rel={self.max_param_rel:.3g}, "
            f"max_loss_rel={self.max_loss_rel:.3g})"
        )


def build_optimizer(name: str | type, model: Any, hyper: dict[str, Any]) -> Any:
    """The annlens optimizer ``name`` ("sgd", "adam", ... or a class) for ``model``."""
    from annlens.optim import get_optimizer

    if isinstance(name, type):
        return name(model, **hyper)
    return get_optimizer(name, model, **hyper)


def torch_optimizer(optimizer: Any, parameters: list[Any]) -> Any:
    """The ``torch.optim`` optimizer with the same rule and hyperparameters."""
    from annlens.analysis.compare.twin import require_torch

    torch = require_torch()
    name = type(optimizer).__name__
    if name not in TORCH_OPTIMIZERS:
        raise NotImplementedError(
            f"optimizer {name} has no torch.optim twin; twins exist for "
            f"{', '.join(TORCH_OPTIMIZERS)}"
        )
    torch_cls = getattr(torch.optim, TORCH_OPTIMIZERS[name])
    accepted = inspect.signature(torch_cls).parameters
    missing = [key for key in optimizer.base if key not in accepted]
    if missing:
        raise NotImplementedError(
            f"torch.optim.{torch_cls.__name__} has no hyperparameter {missing}, "
            f"which annlens {name} uses"
        )
    return torch_cls(parameters, **optimizer.base)


def compare_training(
    model: Any,
    optimizer_name: str | type,
    hyper: dict[str, Any],
    x: Any,
    y: Any,
    loss: Any,
    steps: int,
    batch_size: int,
    seed: int = 0,
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
        Hyperparameters for the annlens optimizer; torch receives the resolved
        set (the defaults included), so both use the same values.
    x : array-like, (samples, in_features)
        Training inputs.
    y : array-like
        Training targets, as ``loss`` takes them.
    loss : Loss or str
        A built-in annlens loss, or its registered name.
    steps : int
        Optimizer steps to take.
    batch_size : int
        Samples per step; each epoch visits full batches of one permutation
        drawn from ``seed``, the same for both.
    seed : int
        Fixes the data order.

    Returns
    -------
    TrajectoryResult
        Per step: both losses, their difference, and the largest parameter
        and buffer difference after the update.
    """
    from annlens.analysis.compare.twin import build_twin, loss_twin
    from annlens.losses import get_loss

    ours = detached_copy(model)
    ours.train()
    twin = build_twin(ours)
    loss = get_loss(loss)
    torch_loss = loss_twin(loss)
    optimizer = build_optimizer(optimizer_name, ours, hyper)
    torch_opt = torch_optimizer(optimizer, twin.parameters())

    x = np.asarray(x, dtype=ours.dtype)
    y = np.asarray(y)
    recorder = HookPointLog()
    masks = recorder.attach(ours) if _has_dropout(ours) else None

    records = []
    for step, rows in enumerate(_batches(len(x), batch_size, steps, seed), start=1):
        output = ours.forward(x[rows])
        value, grad = loss.value_and_grad(output, y[rows])
        ours.backward(grad)
        optimizer.step()

        twin.set_masks(recorder.masks)
        with twin.default_dtype():
            torch_opt.zero_grad()
            torch_value = torch_loss(twin.module(twin.tensor(x[rows])), y[rows])
            torch_value.backward()
            torch_opt.step()

        records.append(_step_record(step, float(value), torch_value.item(), twin))
        recorder.values.clear()
    if masks is not None:
        masks.remove()
    return TrajectoryResult(records, repr(optimizer), ours.dtype.name)


def _has_dropout(model: Any) -> bool:
    return any("mask" in layer.stages for layer in model.layers)


def _batches(samples: int, batch_size: int, steps: int, seed: int) -> Any:
    """Row indices of each step: full batches of a fresh permutation per epoch."""
    if not isinstance(batch_size, int) or not 1 <= batch_size <= samples:
        raise ConfigError(
            f"compare_training batch_size must be in [1, {samples}] (the number "
            f"of samples), got {batch_size!r}"
        )
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"compare_training steps must be >= 1, got {steps!r}")
    rng = np.random.default_rng(seed)
    per_epoch = samples // batch_size
    order = rng.permutation(samples)
    for step in range(steps):
        position = step % per_epoch
        if position == 0 and step > 0:
            order = rng.permutation(samples)
        yield order[position * batch_size : (position + 1) * batch_size]


def _step_record(
    step: int, value: float, torch_value: float, twin: Any
) -> TrajectoryStep:
    """Both losses and the largest parameter or buffer difference after a step."""
    loss_abs, loss_rel = difference(value, torch_value)
    worst, worst_abs, worst_rel = "", 0.0, -1.0
    for pair in twin.pairs:
        max_abs, max_rel = difference(pair.annlens_value(), pair.torch_value())
        worst_abs = max(worst_abs, max_abs)
        if max_rel > worst_rel or np.isnan(max_rel):
            worst, worst_rel = pair.name, max_rel
    return TrajectoryStep(
        step,
        value,
        torch_value,
        loss_abs,
        loss_rel,
        worst_abs,
        max(worst_rel, 0.0),
        worst,
    )
