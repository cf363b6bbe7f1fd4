"""Where training stands, for a checkpoint: the Trainer's state and its resumption.

:class:`TrainerState` gives the Trainer :meth:`~TrainerState.state_dict` and
:meth:`~TrainerState.load_state_dict`: the epochs done, whether training was
stopped, the history, the data-order generator and each callback's state. The
model, optimizer and schedule save their own; a checkpoint
(:mod:`annlens.io.checkpoint`) keeps them all, and ``fit(..., resume=True)``
goes on from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from annlens.errors import ConfigError
from annlens.training.callbacks import CallbackList
from annlens.training.history import History


class TrainerState:
    """Saving and restoring where a Trainer stands.

    Not used alone: the attributes below are set by ``Trainer.__init__``.
    """

    callbacks: CallbackList
    rng: np.random.Generator
    history: History
    stop_training: bool
    epoch: int
    epochs_done: int

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
