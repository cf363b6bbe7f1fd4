"""One training step of the Trainer: forward, loss, backward, clip, update.

:class:`TrainingStep` holds :meth:`~TrainingStep.step` and the pieces around
it: computing the gradients, stepping a schedule, silencing NumPy's warnings
while the NaN guard watches, and undoing a step that raises (the layers'
buffers and the noise generator put back, the failing step replayed to name
the layer and stage of a NaN or Inf). It is a base of
:class:`~annlens.training.trainer.Trainer`, which sets every attribute
declared here; the loop over epochs and batches is in
:mod:`annlens.training.loop`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from annlens.errors import ConfigError, HookError, NonFiniteError
from annlens.layers.base import Array
from annlens.model import Sequential
from annlens.optim import Optimizer, clip_grad_norm, clip_grad_value
from annlens.training.callbacks import CallbackList, Logs
from annlens.training.guard import NonFiniteGuard, unwrap
from annlens.training.history import History
from annlens.training.metrics import Metric, metric_value

# what a step changes before its update: each layer's buffers, the noise state
Start = tuple[list[tuple[Any, dict[str, Array]]], Mapping[str, Any] | None]


class TrainingStep:
    """The single step of a Trainer, on one batch (see ``Trainer`` for the rest).

    Not used alone: the attributes below are set by ``Trainer.__init__``.
    """

    model: Sequential
    loss: Any
    optimizer: Optimizer
    schedule: Any
    schedule_monitor: str
    penalties: tuple[Any, ...]
    clip_norm: float | None
    clip_value: float | None
    constraints: tuple[Any, ...]
    metrics: dict[str, Metric]
    callbacks: CallbackList
    guard: NonFiniteGuard | None
    record_steps: bool
    history: History
    epoch: int
    batch: int

    def step(self, x_batch: Any, y_batch: Any) -> Logs:
        """One training step on one batch, in training mode; returns its logs.

        Public so that a loop can be driven by hand: callbacks, the guard, the
        schedule and the per-step history work as inside :meth:`fit`. The
        metrics are computed on the batch's output before the update. When the
        step raises before its update (a metric included), the parameters,
        optimizer state and buffers are as before it, and with the guard on
        the noise generator too.
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
                # metrics before the update: one that fails changes nothing
                for name, fn in self.metrics.items():
                    logs[name] = metric_value(name, fn(output, y_batch))
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

        self._advance_schedule("batch", logs)
        if self.record_steps:
            self.history.record_step(logs["step"], self.epoch, logs["loss"], logs["lr"])
        self.callbacks.fire("on_after_update", self, logs)
        self.callbacks.fire("on_batch_end", self, logs)
        return logs

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
