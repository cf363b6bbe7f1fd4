"""History: what a training run returns, one row per epoch and one per step.

A row is a plain dict: ``epoch``, ``loss`` and the training metrics,
``penalty`` when regularisers are in use, ``val_loss`` and the validation
metrics when there is validation data, and ``lr``. Per-step values (step,
epoch, loss, lr) are kept in columns. History is data: nothing here prints.
"""

from __future__ import annotations

from typing import Any


class History:
    """Per-epoch rows and per-step columns of one :meth:`Trainer.fit`.

    Attributes
    ----------
    rows : list of dict
        One dict per epoch run, in order.
    steps : dict of str to list
        Columns ``step``, ``epoch``, ``loss``, ``lr``, one entry per optimizer
        step (empty when the trainer was built with ``record_steps=False``).

    Examples
    --------
    >>> history = History()
    >>> history.append({"epoch": 0, "loss": 0.9, "lr": 0.1})
    >>> history["loss"]
    [0.9]
    """

    STEP_COLUMNS = ("step", "epoch", "loss", "lr")

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.steps: dict[str, list[Any]] = {key: [] for key in self.STEP_COLUMNS}

    def append(self, row: dict[str, Any]) -> None:
        """Add one epoch's row (a copy)."""
        self.rows.append(dict(row))

    def record_step(self, step: int, epoch: int, loss: float, lr: float) -> None:
        """Add one optimizer step to the per-step columns."""
        for key, value in zip(self.STEP_COLUMNS, (step, epoch, loss, lr), strict=True):
            self.steps[key].append(value)

    @property
    def keys(self) -> list[str]:
        """Every column name that appears in some row, in first-seen order."""
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row))
        return list(seen)

    def __getitem__(self, key: str) -> list[Any]:
        """The column ``key`` over epochs (None where a row lacks it)."""
        if key not in self.keys:
            raise KeyError(f"history has no column {key!r}; columns: {self.keys}")
        return [row.get(key) for row in self.rows]

    def to_dict(self) -> dict[str, list[Any]]:
        """Columns over epochs, ready for ``pandas.DataFrame(history.to_dict())``."""
        return {key: self[key] for key in self.keys}

    @property
    def last(self) -> dict[str, Any]:
        """The last epoch's row."""
        if not self.rows:
            raise IndexError("history is empty: no epoch has run")
        return self.rows[-1]

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        if not self.rows:
            return "History(0 epochs)"
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in self.last.items()
        )
        return f"History({len(self)} epochs; last: {shown})"
