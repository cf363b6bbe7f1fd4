"""A progress bar per variant, as a training callback (rich)."""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

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
    """

    def __init__(self, variant: str, epochs: int, enabled: bool = True) -> None:
        self.variant = variant
        self.epochs = epochs
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description:<18}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            transient=False,
            disable=not enabled,
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
