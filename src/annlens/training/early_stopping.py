"""EarlyStopping: a callback that ends training when a monitored value stalls."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from annlens.errors import ConfigError, did_you_mean
from annlens.training.callbacks import Callback, Logs

logger = logging.getLogger("annlens")


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor : str
        A column of the history row, such as ``"val_loss"`` or ``"accuracy"``.
    patience : int
        Epochs without improvement to allow; training stops at the end of the
        ``patience``-th such epoch.
    min_delta : float
        The smallest change that counts as an improvement, >= 0.
    mode : {"auto", "min", "max"}
        Whether lower or higher is better; ``auto`` takes "max" for names
        containing "accuracy" and "min" otherwise.
    restore_best : bool
        At the end of training, load the parameters and buffers of the best
        epoch into the model. The optimizer state is not rolled back.

    Attributes
    ----------
    best : float
        The best value seen.
    best_epoch : int or None
        The epoch it was seen at.
    stopped_epoch : int or None
        The epoch after which training was stopped, None when it ran out.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best: bool = False,
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ConfigError(
                f"EarlyStopping patience must be an integer >= 0, got {patience!r}"
            )
        if not isinstance(monitor, str) or not monitor:
            raise ConfigError(
                "EarlyStopping monitor must be a column name such as 'val_loss', "
                f"got {monitor!r}"
            )
        if (
            isinstance(min_delta, bool)
            or not isinstance(min_delta, (int, float))
            or not min_delta >= 0
        ):
            raise ConfigError(
                f"EarlyStopping min_delta must be >= 0, got {min_delta!r}"
            )
        if mode not in ("auto", "min", "max"):
            raise ConfigError(
                f"EarlyStopping mode must be 'auto', 'min' or 'max', got {mode!r}"
            )
        if not isinstance(restore_best, bool):
            raise ConfigError(
                "EarlyStopping restore_best must be True or False, "
                f"got {restore_best!r}"
            )
        if mode == "auto":
            mode = "max" if "accuracy" in monitor else "min"
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        self.mode = mode
        self.restore_best = restore_best
        self._reset()

    def _reset(self) -> None:
        self.best = np.inf if self.mode == "min" else -np.inf
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.wait = 0
        self._best_state: dict[str, Any] | None = None

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best by more than ``min_delta``."""
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_fit_start(self, trainer: Any, logs: Logs) -> None:
        if not logs.get("resumed"):
            self._reset()

    def on_epoch_end(self, trainer: Any, logs: Logs) -> None:
        if self.monitor not in logs:
            columns = [str(key) for key in logs]
            validated = any(key.startswith("val_") for key in columns)
            raise ConfigError(
                f"EarlyStopping monitors {self.monitor!r}, which the history row "
                f"does not have{did_you_mean(self.monitor, columns)}; "
                f"columns: {', '.join(columns)}"
                + (
                    "; help: give validation data for val_* columns"
                    if self.monitor.startswith("val_") and not validated
                    else ""
                )
            )
        value = float(logs[self.monitor])
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, logs["epoch"], 0
            if self.restore_best:
                self._best_state = trainer.model.state_dict()
            return

        self.wait += 1
        if self.wait >= self.patience:
            trainer.stop_training = True
            self.stopped_epoch = logs["epoch"]
            # epochs are logged from 1, as the trainer logs them
            best = "none" if self.best_epoch is None else self.best_epoch + 1
            logger.info(
                "early stopping after epoch %d: %s has not improved on %.6g "
                "(epoch %s) for %d epochs",
                logs["epoch"] + 1,
                self.monitor,
                self.best,
                best,
                self.wait,
            )

    def state_dict(self) -> dict[str, Any]:
        """The best value, its epoch (and weights), the epochs waited."""
        return {
            "best": float(self.best),
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "wait": self.wait,
            "best_state": self._best_state,
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`."""
        self.best = float(saved["best"])
        self.best_epoch = saved["best_epoch"]
        self.stopped_epoch = saved["stopped_epoch"]
        self.wait = int(saved["wait"])
        self._best_state = saved.get("best_state")

    def on_fit_end(self, trainer: Any, logs: Logs) -> None:
        if self.restore_best and self._best_state is not None:
            assert self.best_epoch is not None, "best weights kept without an epoch"
            trainer.model.load_state_dict(self._best_state)
            logger.info("restored the parameters of epoch %d", self.best_epoch + 1)
