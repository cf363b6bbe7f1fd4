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
        """Continue from a :meth:`state_dict`; then call ``fit(..., resume=True)``.

        Everything is checked before anything changes: a state that is not
        what :meth:`state_dict` writes raises :class:`ConfigError`, naming the
        entry, and leaves the trainer and its callbacks as they were.
        """
        where = "trainer state"
        if not isinstance(saved, Mapping):
            raise ConfigError(
                f"{where} must be a mapping from Trainer.state_dict(), "
                f"got {type(saved).__name__}"
            )
        missing = {"epochs_done", "history", "rng"} - set(saved)
        if missing:
            raise ConfigError(f"{where} lacks {sorted(missing)}")
        epochs_done = saved["epochs_done"]
        if (
            isinstance(epochs_done, bool)
            or not isinstance(epochs_done, (int, np.integer))
            or epochs_done < 0
        ):
            raise ConfigError(
                f"{where}: epochs_done must be an integer >= 0, got {epochs_done!r}"
            )
        rows = saved["history"]
        if not isinstance(rows, (list, tuple)) or not all(
            isinstance(row, Mapping) for row in rows
        ):
            raise ConfigError(
                f"{where}: history must be a list of rows (mappings), got {rows!r}"
            )
        steps = saved.get("steps") or {}
        if not isinstance(steps, Mapping) or not all(
            isinstance(values, (list, tuple)) for values in steps.values()
        ):
            raise ConfigError(
                f"{where}: steps must map each column to a list, got {steps!r}"
            )
        generator = type(self.rng.bit_generator)()
        try:
            generator.state = dict(saved["rng"])
        except (TypeError, ValueError, KeyError) as error:
            raise ConfigError(
                f"{where}: rng is not the state of a "
                f"{type(generator).__name__} generator ({error})"
            ) from None
        states = saved.get("callbacks") or []
        if states and len(states) != len(self.callbacks):
            raise ConfigError(
                f"{where} holds {len(states)} callback states, but this "
                f"trainer has {len(self.callbacks)} callbacks"
            )
        self._load_callbacks(states, where)

        self.rng.bit_generator.state = generator.state
        self.epochs_done = self.epoch = int(epochs_done)
        self.stop_training = bool(saved.get("stop_training", False))
        self.history = History()
        for row in rows:
            self.history.append(row)
        for key, values in steps.items():
            self.history.steps[key] = list(values)

    def _load_callbacks(self, states: Any, where: str) -> None:
        """Load each callback's state, or on a failure put back all of them."""
        pairs = [
            (position, callback, state)
            for position, (callback, state) in enumerate(
                zip(self.callbacks, states, strict=False)
            )
            if state is not None and hasattr(callback, "load_state_dict")
        ]
        before = [
            callback.state_dict() if hasattr(callback, "state_dict") else None
            for _, callback, _ in pairs
        ]
        for done, (position, callback, state) in enumerate(pairs):
            try:
                callback.load_state_dict(state)
            except Exception as error:
                for (_, earlier, _), old in zip(
                    pairs[: done + 1], before[: done + 1], strict=True
                ):
                    if old is not None:
                        earlier.load_state_dict(old)
                raise ConfigError(
                    f"{where}: callback {position} ({type(callback).__name__}) "
                    f"cannot load its state: {type(error).__name__}: {error}; "
                    "nothing was changed"
                ) from error
