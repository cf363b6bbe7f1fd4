"""A progress bar per variant, as a training callback (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Column

from annlens.training import Callback


class ProgressBar(Callback):
    """Shows epochs done, the loss and the main metric of one variant.

    Parameters
    ----------
    variant : str
        The label in front of the bar.
    epochs : int
        The number of epochs the bar counts to.
    enabled : bool
        Show nothing when False (the callback stays, so that a checkpoint
        written with a bar resumes without one).
    console : rich.console.Console, optional
        Where the bar is drawn (default: the terminal).

    Notes
    -----
    The count reads ``epoch 3/15``: epochs done out of the total, the way
    the logs and ``annlens inspect`` number epochs (from 1). In a narrow
    terminal the bar and then the losses give way; the count is never cut.
    """

    def __init__(
        self,
        variant: str,
        epochs: int,
        enabled: bool = True,
        console: Console | None = None,
    ) -> None:
        self.variant = variant
        self.epochs = epochs
        self.enabled = enabled
        count = f"epoch {epochs}/{epochs}"
        self.progress = Progress(
            TextColumn(
                "[bold]{task.description:<18}", table_column=Column(no_wrap=True)
            ),
            BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=4)),
            TextColumn(
                "epoch {task.completed:.0f}/{task.total:.0f}",
                table_column=Column(no_wrap=True, min_width=len(count)),
            ),
            TextColumn(
                "{task.fields[status]}",
                table_column=Column(ratio=2, no_wrap=True, overflow="ellipsis"),
            ),
            transient=False,
            disable=not enabled,
            console=console,
            expand=True,
        )
        self.task = self.progress.add_task(variant, total=epochs, status="")

    def on_fit_start(self, trainer: Any, logs: dict[str, Any]) -> None:
        self.progress.update(self.task, completed=trainer.epoch)
        self.progress.start()

    def on_epoch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        shown = {"loss": "loss", "accuracy": "acc", "val_loss": "val loss"}
        shown["val_accuracy"] = "val acc"
        status = "  ".join(
            f"{label} {logs[key]:.3f}"
            for key, label in shown.items()
            if logs.get(key) is not None
        )
        self.progress.update(self.task, advance=1, status=status)

    def on_fit_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        self.progress.stop()

    def __repr__(self) -> str:
        return f"ProgressBar({self.variant!r}, epochs={self.epochs})"
