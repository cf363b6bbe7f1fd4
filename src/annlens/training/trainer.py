"""The Trainer: mini-batch training with events, metrics, a history and a NaN guard.

Holds the training loop and its single step. What a step does inside each
layer is reached through hooks; what happens between steps and epochs is
reached through callbacks (see :mod:`annlens.training.callbacks`). Data
loading beyond in-memory arrays is not here: ``fit`` takes arrays.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from annlens.errors import ConfigError, HookError, NonFiniteError
from annlens.layers.base import Array
from annlens.losses import get_loss
from annlens.model import Sequential, seeded_generator
from annlens.optim import Optimizer, clip_grad_norm, clip_grad_value
from annlens.training.callbacks import Callback, CallbackList, Logs
from annlens.training.checks import (
    check_batches,
    check_data,
    check_schedule,
    check_settings,
    split_validation,
)
from annlens.training.guard import NonFiniteGuard, unwrap
from annlens.training.history import History
from annlens.training.metrics import Metric, get_metric

logger = logging.getLogger("annlens")

MetricSpec = str | tuple[str, Metric]
# what a step changes before its update: each layer's buffers, the noise state
Start = tuple[list[tuple[Any, dict[str, Array]]], Mapping[str, Any] | None]


class Trainer:
    """Trains a model on in-memory arrays with mini-batch gradient descent.

    Parameters
    ----------
    model : Sequential
        The model to train.
    loss : Loss or str
        Anything with ``value_and_grad(output, target) -> (float, grad)``, or
        a registered loss name (``"mse"``, ``"softmax_cross_entropy"``).
    optimizer : Optimizer
        Built on ``model``.
    batch_size : int
        Samples per step, > 0. The last batch of an epoch keeps the remainder.
    epochs : int
        Passes over the data, >= 0.
    schedule : Schedule, optional
        A schedule of :mod:`annlens.optim` made on ``optimizer``: stepped after
        every optimizer step when its ``unit`` is ``"batch"``, else once after
        each epoch (after validation). One that ``needs_metric`` (such as
        ReduceOnPlateau) is given the value of ``schedule_monitor``.
    schedule_monitor : str
        The column a metric-driven schedule follows: a history column for an
        epoch schedule (default ``"val_loss"``), a step's ``"loss"`` or
        metric for a batch schedule.
    penalties : sequence of Penalty
        Regularisers of :mod:`annlens.optim.regularizers` (anything with
        ``value(model) -> float`` and ``add_gradients(model)``): their values
        join the loss, their gradients the parameter gradients.
    clip_norm, clip_value : float, optional
        Clip the gradients elementwise and/or by global norm (value first),
        with :func:`annlens.optim.clip_grad_value` and
        :func:`annlens.optim.clip_grad_norm`; a step's logs then hold
        ``grad_norm``, the global norm before clipping.
    constraints : sequence of Constraint
        Projections of :mod:`annlens.optim.constraints` (``apply(model)``),
        applied after every optimizer step.
    metrics : sequence of names or (name, fn) pairs
        Recorded for training and validation besides the loss, which is always
        recorded. A function is ``fn(output, target) -> float``.
    callbacks : sequence of Callback
        Called at the training events, in this order.
    seed : int, optional
        Fixes the order of the data; by default derived from ``model.seed``.
    nan_guard : bool
        Stop at the first NaN or Inf with :class:`~annlens.errors.NonFiniteError`,
        naming the step, layer and stage where it appeared, and leave the model
        and optimizer as they were before the failing step. Each step checks
        the loss and the proposed updates; only a step that fails is replayed
        with a checking hook at every stage to find the place (see
        :mod:`annlens.training.guard`, also for its cost). Inside a step and
        ``evaluate`` it stands in for NumPy's overflow and invalid-value
        warnings, which are silenced there.
    validation_split : float
        The fraction of ``fit``'s data, taken from its end before shuffling,
        held out for validation, in [0, 1).
    shuffle : bool
        Reshuffle the data every epoch.
    record_steps : bool
        Keep every step's loss and learning rate in ``history.steps``.

    Notes
    -----
    One step (:meth:`step`), for a batch ``(x, y)``::

        output = model.forward(x)                forward hooks
        L      = loss(output, y) + penalties     loss hook (data loss only)
        model.backward(dL/d output)              backward hooks
        grads += penalty gradients
        model.finish_gradients()                 gradient hooks
        on_after_backward                        callbacks
        clip                                     by value, then by norm
        optimizer.step()                         update hooks, NaN guard
        constraint.apply(model)                  max-norm, non-negativity
        schedule.step()                          batch-unit schedules
        on_after_update, on_batch_end            callbacks

    Training metrics in a history row are averages over the epoch's batches,
    weighted by batch size, of values computed on training-mode outputs
    (dropout on, batch statistics), as the parameters changed during the
    epoch. Validation values are computed once on the whole validation set in
    evaluation mode. For a metric that is not a per-sample mean the training
    value is therefore an approximation.
    """

    def __init__(
        self,
        model: Sequential,
        loss: Any,
        optimizer: Optimizer,
        *,
        batch_size: int = 32,
        epochs: int = 1,
        schedule: Any = None,
        schedule_monitor: str = "val_loss",
        penalties: Sequence[Any] = (),
        clip_norm: float | None = None,
        clip_value: float | None = None,
        constraints: Sequence[Any] = (),
        metrics: Iterable[MetricSpec] | Mapping[str, Metric] = ("loss", "accuracy"),
        callbacks: Iterable[Callback] = (),
        seed: int | None = None,
        nan_guard: bool = True,
        validation_split: float = 0.0,
        shuffle: bool = True,
        record_steps: bool = True,
    ) -> None:
        if isinstance(loss, str):
            loss = get_loss(loss)
        check_settings(
            model,
            loss,
            optimizer,
            batch_size=batch_size,
            epochs=epochs,
            schedule=schedule,
            penalties=penalties,
            constraints=constraints,
            clip_norm=clip_norm,
            clip_value=clip_value,
            validation_split=validation_split,
            seed=seed,
        )

        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.batch_size = int(batch_size)
        self.epochs = int(epochs)
        self.schedule = schedule
        self.schedule_monitor = schedule_monitor
        self.penalties = tuple(penalties)
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.constraints = tuple(constraints)
        self.metrics: dict[str, Metric] = {}
        entries = metrics.items() if isinstance(metrics, Mapping) else metrics
        for entry in entries:
            if isinstance(entry, str):
                if entry != "loss":
                    self.add_metric(entry, get_metric(entry))
            else:
                self.add_metric(*entry)
        self.callbacks = CallbackList(callbacks)
        self.seed = model.seed if seed is None else int(seed)
        self.rng = seeded_generator(self.seed, 2)
        self.guard = NonFiniteGuard(model) if nan_guard else None
        self.validation_split = float(validation_split)
        self.shuffle = shuffle
        self.record_steps = record_steps

        self.history = History()
        self.stop_training = False
        self.epoch = 0
        self.epochs_done = 0
        self.batch = 0

    def add_metric(self, name: str, fn: Metric) -> None:
        """Record ``fn(output, target) -> float`` as ``name`` (and ``val_<name>``)."""
        if not isinstance(name, str) or not name or name in ("loss", "penalty"):
            raise ConfigError(f"a metric needs a new name, got {name!r}")
        if not callable(fn):
            raise ConfigError(f"metric {name!r} must be callable, got {fn!r}")
        self.metrics[name] = fn

    # -- the loop ---------------------------------------------------------------

    def fit(
        self,
        x: Any,
        y: Any,
        *,
        validation_data: tuple[Any, Any] | None = None,
        resume: bool = False,
    ) -> History:
        """Train for ``epochs`` epochs and return the history.

        Parameters
        ----------
        x : array-like, (samples, in_features)
            Training inputs.
        y : array-like, (samples, ...)
            Targets, as the loss expects them.
        validation_data : (x, y), optional
            Evaluated after every epoch; excludes ``validation_split``.
        resume : bool
            Continue after ``epochs_done`` with the history so far, as restored
            by :meth:`load_state_dict` (with the model, optimizer and schedule
            restored from the same checkpoint, the run goes on bit for bit).
            Without it, a fit starts at epoch 0 with an empty history; the data
            order goes on from where the last fit left it.
        """
        x, y = check_data(x, y, "training data")
        x, y, validation = split_validation(
            x, y, validation_data, self.validation_split
        )
        check_batches(self.model, len(x), self.batch_size)
        columns = ["loss", *(["penalty"] if self.penalties else []), *self.metrics]
        check_schedule(
            self.schedule, self.schedule_monitor, columns, validation is not None
        )
        if not resume:
            self.history = History()
            self.stop_training = False
            self.epochs_done = 0
        self.epoch = self.epochs_done
        start = {
            "epochs": self.epochs,
            "initial_epoch": self.epochs_done,
            "resumed": resume,
            "samples": len(x),
            "steps_per_epoch": math.ceil(len(x) / self.batch_size),
            "validation_samples": len(validation[0]) if validation else 0,
        }
        logger.info(
            "training on %d samples (%d held out) for %d epochs, %d steps each",
            start["samples"],
            start["validation_samples"],
            self.epochs,
            start["steps_per_epoch"],
        )

        self.callbacks.fire("on_fit_start", self, start)
        epochs_run = 0
        for epoch in range(self.epochs_done, self.epochs):
            if self.stop_training:
                break
            self._run_epoch(epoch, x, y, validation)
            epochs_run += 1
        end = {"epochs_run": epochs_run, "stopped": self.stop_training}
        self.callbacks.fire("on_fit_end", self, end)
        return self.history

    def _run_epoch(
        self, epoch: int, x: Array, y: Any, validation: tuple[Array, Any] | None
    ) -> None:
        self.epoch = self.model.state.epoch = epoch
        self.callbacks.fire("on_epoch_start", self, {"epoch": epoch})

        order = self.rng.permutation(len(x)) if self.shuffle else np.arange(len(x))
        keys = ["loss", *(["penalty"] if self.penalties else []), *self.metrics]
        totals = dict.fromkeys(keys, 0.0)
        seen = 0
        logs: Logs = {}
        for batch, start in enumerate(range(0, len(x), self.batch_size)):
            self.batch = batch
            index = order[start : start + self.batch_size]
            logs = self.step(x[index], y[index])
            seen += len(index)
            for key in keys:
                totals[key] += logs[key] * len(index)
            if self.stop_training:
                break

        row: Logs = {"epoch": epoch}
        row.update({key: total / seen for key, total in totals.items()})
        if validation is not None:
            scores = self.evaluate(*validation)
            row.update({f"val_{key}": value for key, value in scores.items()})
            shown = {key: row[key] for key in row if key.startswith("val_")}
            self.callbacks.fire("on_validation", self, {"epoch": epoch, **shown})
        row["lr"] = logs["lr"]
        self._advance_schedule("epoch", row)

        self.history.append(row)
        row = self.history.rows[-1]
        self.epochs_done = epoch + 1
        logger.info(
            "epoch %d/%d: %s",
            epoch + 1,
            self.epochs,
            ", ".join(f"{k}={v:.6g}" for k, v in row.items() if k != "epoch"),
        )
        self.callbacks.fire("on_epoch_end", self, row)

    def step(self, x_batch: Any, y_batch: Any) -> Logs:
        """One training step on one batch, in training mode; returns its logs.

        Public so that a loop can be driven by hand: callbacks, the guard, the
        schedule and the per-step history work as inside :meth:`fit`. When the
        step raises before its update, the parameters, optimizer state and
        buffers are as before it, and with the guard on the noise generator
        too.
        """
        model = self.model
        model.train()
        logs: Logs = {
            "epoch": self.epoch,
            "batch": self.batch,
            "step": model.state.step,
            "size": len(x_batch),
        }
        self.callbacks.fire("on_batch_start", self, logs)

        start = self._save_start()
        try:
            with self._quiet():
                output = self._compute_gradients(x_batch, y_batch, logs)
                self.callbacks.fire("on_after_backward", self, logs)

                # clipping: elementwise first, then the global norm
                if self.clip_value is not None:
                    logs["grad_norm"] = clip_grad_value(model, self.clip_value)
                if self.clip_norm is not None:
                    norm = clip_grad_norm(model, self.clip_norm)
                    logs.setdefault("grad_norm", norm)

                # update: every proposal passes the update hooks and the guard,
                # then all apply
                logs["lr"] = self.optimizer.lr
                if self.guard is None:
                    self.optimizer.step()
                else:
                    self.optimizer.step(check=self.guard.check_updates)

                # constraints: project the new parameters back into their sets
                for constraint in self.constraints:
                    constraint.apply(model)
        except NonFiniteError as found:
            raise self._localise(found, start, x_batch, y_batch) from None
        except HookError as error:
            # a NonFiniteError from a hook already names its layer and stage
            self._restore_start(start)
            inner = unwrap(error)
            if inner is error:
                raise
            raise inner from None
        except BaseException:
            self._restore_start(start)
            raise

        for name, fn in self.metrics.items():
            logs[name] = float(fn(output, y_batch))
        self._advance_schedule("batch", logs)
        if self.record_steps:
            self.history.record_step(logs["step"], self.epoch, logs["loss"], logs["lr"])
        self.callbacks.fire("on_after_update", self, logs)
        self.callbacks.fire("on_batch_end", self, logs)
        return logs

    def _compute_gradients(self, x: Any, y: Any, logs: Logs) -> Array:
        """Forward, loss, penalties, backward, up to the final gradients."""
        model = self.model

        # forward: every layer in turn, keeping what backward needs
        output = model.forward(x)

        # loss: its value and dL/d output, through the loss hook point
        value, grad = model.loss(self.loss, output, y)
        logs["loss"] = float(value)
        if self.guard is not None:
            self.guard.check_loss(logs["loss"])

        # penalties: their values join the objective
        if self.penalties:
            logs["penalty"] = sum(float(p.value(model)) for p in self.penalties)
            if self.guard is not None:
                self.guard.check_loss(logs["penalty"], stage="penalty")

        # backward: dL/d parameter for every layer, gradient hooks held back;
        # nothing reads dL/d input, so the first layer may skip computing it
        model.backward_parameters(grad, fire_gradient_hooks=False)

        # penalty gradients join, then the gradient hooks see the final ones
        for penalty in self.penalties:
            penalty.add_gradients(model)
        model.finish_gradients()
        return output

    # -- evaluation ---------------------------------------------------------------

    def evaluate(
        self, x: Any, y: Any, batch_size: int | None = None
    ) -> dict[str, float]:
        """The loss and every metric on ``(x, y)``, in evaluation mode.

        The loss is the data loss alone (no penalties) and the loss hook point
        does not fire: evaluation takes no gradient. With the guard on, a
        non-finite loss raises :class:`~annlens.errors.NonFiniteError` naming
        the layer and stage where the value first went non-finite (found by a
        second, checked pass).
        """
        x, y = check_data(x, y, "evaluation data")
        size = batch_size or self.batch_size
        try:
            with self._quiet():
                output = self.model.predict(x, batch_size=size)
                scores = {"loss": float(self.loss.value_and_grad(output, y)[0])}
        except HookError as error:
            found = unwrap(error)
            if found is error:
                raise
            raise found from None
        if self.guard is not None:
            try:
                self.guard.check_loss(scores["loss"])
            except NonFiniteError as found:
                replay = functools.partial(self.model.predict, x, batch_size=size)
                raise self.guard.localise(found, replay) from None
        for name, fn in self.metrics.items():
            scores[name] = float(fn(output, y))
        return scores

    # -- state for checkpoints -------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Where training stands, for a checkpoint (JSON-friendly, arrays allowed).

        Holds the epochs done, whether training was stopped, the history, the
        data-order generator and the state of every callback that has a
        ``state_dict``. The model, optimizer and schedule save their own.
        """
        return {
            "epochs_done": self.epochs_done,
            "stop_training": self.stop_training,
            "history": [dict(row) for row in self.history.rows],
            "steps": {key: list(v) for key, v in self.history.steps.items()},
            "rng": self.rng.bit_generator.state,
            "callbacks": [
                callback.state_dict() if hasattr(callback, "state_dict") else None
                for callback in self.callbacks
            ],
        }

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state_dict`; then call ``fit(..., resume=True)``."""
        missing = {"epochs_done", "history", "rng"} - set(saved)
        if missing:
            raise ConfigError(f"trainer state lacks {sorted(missing)}")
        states = saved.get("callbacks") or []
        if states and len(states) != len(self.callbacks):
            raise ConfigError(
                f"trainer state holds {len(states)} callback states, but this "
                f"trainer has {len(self.callbacks)} callbacks"
            )
        self.rng.bit_generator.state = dict(saved["rng"])
        self.epochs_done = self.epoch = int(saved["epochs_done"])
        self.stop_training = bool(saved.get("stop_training", False))
        self.history = History()
        for row in saved["history"]:
            self.history.append(row)
        for key, values in (saved.get("steps") or {}).items():
            self.history.steps[key] = list(values)
        for callback, state in zip(self.callbacks, states, strict=False):
            if state is not None and hasattr(callback, "load_state_dict"):
                callback.load_state_dict(state)

    # -- pieces ---------------------------------------------------------------------

    def _advance_schedule(self, unit: str, logs: Logs) -> None:
        """Step the schedule if one ``unit`` ("batch" or "epoch") has passed."""
        if self.schedule is None or self.schedule.unit != unit:
            return
        if not self.schedule.needs_metric:
            self.schedule.step()
            return
        if self.schedule_monitor not in logs:
            raise ConfigError(
                f"the schedule {self.schedule!r} follows "
                f"schedule_monitor={self.schedule_monitor!r}, which is not among "
                f"the {unit} values: {', '.join(logs)}"
                + (
                    "; help: give validation data or schedule_monitor='loss'"
                    if self.schedule_monitor.startswith("val_")
                    else ""
                )
            )
        self.schedule.step(logs[self.schedule_monitor])

    def _quiet(self) -> contextlib.AbstractContextManager[Any]:
        """NumPy's overflow and invalid-value warnings off while the guard is on.

        The guard itself reports the first non-finite value, with its layer and
        stage.
        """
        if self.guard is None:
            return contextlib.nullcontext()
        return np.errstate(over="ignore", invalid="ignore")

    def _localise(
        self, found: NonFiniteError, start: Start, x: Any, y: Any
    ) -> NonFiniteError:
        """The error for a non-finite value a check of this step found.

        Nothing was applied; with the guard on, the step's forward, loss and
        backward passes are replayed from the same buffers and noise with the
        guard's hooks, which name the first layer and stage that produced a
        NaN or Inf, and the buffers and noise are put back again.
        """
        self._restore_start(start)
        if self.guard is None:
            return found
        try:
            return self.guard.localise(found, lambda: self._compute_gradients(x, y, {}))
        finally:
            self._restore_start(start)

    def _save_start(self) -> Start:
        """What a step changes before its update, to undo a step that raises.

        The noise generator's state is kept only with the guard on, for the
        replay: it fixes the dropout masks.
        """
        buffers = [
            (layer, {key: value.copy() for key, value in layer.buffers.items()})
            for layer in self.model.layers
            if layer.buffers
        ]
        noise = None
        if self.guard is not None:
            noise = self.model.state.rng.bit_generator.state
        return buffers, noise

    def _restore_start(self, start: Start) -> None:
        buffers, noise = start
        for layer, kept in buffers:
            layer.buffers.update({key: value.copy() for key, value in kept.items()})
        if noise is not None:
            self.model.state.rng.bit_generator.state = noise

    def __repr__(self) -> str:
        parts = [
            f"loss={self.loss!r}",
            f"optimizer={self.optimizer!r}",
            f"batch_size={self.batch_size}",
            f"epochs={self.epochs}",
            f"metrics={list(self.metrics)}",
            f"seed={self.seed}",
        ]
        if self.callbacks:
            parts.append(f"callbacks={self.callbacks.callbacks!r}")
        return f"Trainer({', '.join(parts)})"
