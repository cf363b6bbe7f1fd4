"""The Trainer's loop: epochs of mini-batches, validation and evaluation.

:class:`TrainingLoop` holds :meth:`~TrainingLoop.fit`, which checks the data,
runs the epochs (each a shuffled pass of :meth:`step` over mini-batches, then
validation and the epoch's schedule step) and fires the fit and epoch events,
and :meth:`~TrainingLoop.evaluate`. The step itself is in
:mod:`annlens.training.step`; the settings are made by
:class:`~annlens.training.trainer.Trainer`, which derives from this class.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Any

import numpy as np

from annlens.errors import ConfigError, HookError, NonFiniteError, ShapeError
from annlens.layers.base import Array
from annlens.training.callbacks import Logs
from annlens.training.checks import (
    check_batches,
    check_data,
    check_inputs,
    check_schedule,
    check_schedule_length,
    check_targets,
    split_validation,
)
from annlens.training.guard import unwrap
from annlens.training.history import History
from annlens.training.metrics import is_root_mean, metric_value
from annlens.training.step import TrainingStep

logger = logging.getLogger("annlens")


class TrainingLoop(TrainingStep):
    """Training over epochs and evaluation, on top of the single step.

    Not used alone: the attributes below are set by ``Trainer.__init__``.
    """

    batch_size: int
    epochs: int
    rng: np.random.Generator
    validation_split: float
    shuffle: bool
    stop_training: bool
    epochs_done: int

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
        check_inputs(self.model, x, "training data")
        check_targets(self.model, self.loss, y, "training data")
        if validation is not None:
            check_inputs(self.model, validation[0], "validation data")
            check_targets(self.model, self.loss, validation[1], "validation data")
        columns = ["loss", *(["penalty"] if self.penalties else []), *self.metrics]
        check_schedule(
            self.schedule, self.schedule_monitor, columns, validation is not None
        )
        first = self.epochs_done if resume else 0
        limits = [
            limit
            for callback in self.callbacks.callbacks
            if isinstance(limit := getattr(callback, "step_limit", None), int)
        ]
        check_schedule_length(
            self.schedule,
            self.epochs - first,
            math.ceil(len(x) / self.batch_size),
            min(limits, default=None),
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
            epochs_run += self.epochs_done == epoch + 1
        end = {"epochs_run": epochs_run, "stopped": self.stop_training}
        self.callbacks.fire("on_fit_end", self, end)
        return self.history

    def _run_epoch(
        self, epoch: int, x: Array, y: Any, validation: tuple[Array, Any] | None
    ) -> None:
        self.epoch = self.model.state.epoch = epoch
        self.callbacks.fire("on_epoch_start", self, {"epoch": epoch})
        if self.stop_training:
            # stopped before its first batch: the epoch is not run nor recorded
            return

        order = self.rng.permutation(len(x)) if self.shuffle else np.arange(len(x))
        keys = ["loss", *(["penalty"] if self.penalties else []), *self.metrics]
        totals = dict.fromkeys(keys, 0.0)
        squared = {key for key, fn in self.metrics.items() if is_root_mean(fn)}
        seen = 0
        logs: Logs = {}
        for batch, start in enumerate(range(0, len(x), self.batch_size)):
            self.batch = batch
            index = order[start : start + self.batch_size]
            logs = self.step(x[index], y[index])
            seen += len(index)
            for key in keys:
                value = logs[key] ** 2 if key in squared else logs[key]
                totals[key] += value * len(index)
            if self.stop_training:
                break

        row: Logs = {"epoch": epoch}
        means = {key: total / seen for key, total in totals.items()}
        row.update({k: math.sqrt(v) if k in squared else v for k, v in means.items()})
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
        if batch_size is not None and (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size < 1
        ):
            raise ConfigError(
                "evaluate batch_size must be an integer >= 1, or None for the "
                f"trainer's batch_size ({self.batch_size}), got {batch_size!r}"
            )
        if x.shape[1] != self.model.in_features:
            raise ShapeError(
                f"evaluation data: x must have {self.model.in_features} columns "
                f"(the model's in_features), got shape {x.shape}"
            )
        check_targets(self.model, self.loss, y, "evaluation data")
        size = self.batch_size if batch_size is None else int(batch_size)
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
                self.guard.check_loss(scores["loss"], during="evaluation")
            except NonFiniteError as found:
                replay = functools.partial(self.model.predict, x, batch_size=size)
                raise self.guard.localise(found, replay) from None
        for name, fn in self.metrics.items():
            scores[name] = metric_value(name, fn(output, y))
        return scores
