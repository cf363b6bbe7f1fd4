"""The callbacks an experiment adds to each variant's training.

Each is a few lines on the Trainer's events: fold the epoch into the
recorder, stop after a number of steps, and checkpoint the last and the best
state.
"""

from __future__ import annotations

import math
from typing import Any

from annlens.training import Callback


class EndEpoch(Callback):
    """Tell the recorder that an epoch ended (for epoch-level statistics)."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder

    def on_epoch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        self.recorder.end_epoch(logs["epoch"])

    def __repr__(self) -> str:
        return f"EndEpoch({self.recorder!r})"


class StepLimit(Callback):
    """Stop training once the optimizer has taken ``steps`` steps.

    ``step_limit`` tells the trainer's checks where the fit ends, so that a
    schedule with ``total_steps = steps`` is not refused for the epochs the
    limit cuts short.
    """

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.step_limit = steps

    def on_batch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        if trainer.optimizer.t >= self.steps:
            trainer.stop_training = True

    def __repr__(self) -> str:
        return f"StepLimit({self.steps})"


class Checkpoints(Callback):
    """Save ``<variant>-last`` every ``every`` epochs and ``<variant>-best``.

    The best checkpoint follows ``monitor`` (lower is better, higher for an
    accuracy); when the history has no ``val_loss`` (no validation part) it
    follows the training ``loss``. Each checkpoint carries the trainer's and
    the recorder's state, so that a resumed run continues bit for bit, and
    ``scaling``, the standardisation of the data the model learnt from (see
    :func:`annlens.experiment.targets.scaling_record`), so that its outputs
    can be taken back to the target's units.
    """

    def __init__(
        self,
        run_dir: Any,
        variant: str,
        recorder: Any,
        every: int = 1,
        monitor: str = "val_loss",
        scaling: dict[str, Any] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.variant = variant
        self.recorder = recorder
        self.every = every
        self.monitor = monitor
        self.scaling = scaling
        self.sign = -1.0 if "accuracy" in monitor else 1.0
        self.best = math.inf

    def save(self, trainer: Any, which: str) -> None:
        # Only the last checkpoint resumes a run, so only it carries the
        # trainer's and the recorder's state (the recorder's grows with the
        # run); the best one holds the model, optimizer and schedule.
        extra = {"trainer": trainer.state_dict()}
        if self.scaling is not None:
            extra["scaling"] = self.scaling
        if which == "last":
            extra["recorder"] = self.recorder.state_dict()
        self.run_dir.save_checkpoint(
            trainer.model,
            f"{self.variant}-{which}",
            trainer.optimizer,
            trainer.schedule,
            extra=extra,
        )

    def on_epoch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        value = logs.get(self.monitor)
        if value is None and self.monitor == "val_loss":
            value = logs.get("loss")
        if value is not None and self.sign * value < self.best:
            self.best = self.sign * float(value)
            self.save(trainer, "best")
        if (logs["epoch"] + 1) % self.every == 0:
            self.save(trainer, "last")

    def on_fit_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        self.save(trainer, "last")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])

    def __repr__(self) -> str:
        return (
            f"Checkpoints({self.variant!r}, every={self.every}, "
            f"monitor={self.monitor!r})"
        )
