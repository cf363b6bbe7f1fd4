"""The progress bar of a variant: the epoch count is never cut in a narrow terminal."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from annlens.experiment.progress import ProgressBar

LOGS = {"loss": 0.30812, "accuracy": 0.8541, "val_loss": 0.27611, "val_accuracy": 0.875}


def drawn(width: int, epochs: int = 15) -> str:
    """The last frame of a bar that counted ``epochs`` epochs, ``width`` wide."""
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None)
    bar = ProgressBar("base", epochs, console=console)
    bar.on_fit_start(SimpleNamespace(epoch=0), {})
    for _ in range(epochs):
        bar.on_epoch_end(None, LOGS)
    bar.on_fit_end(None, {})
    return out.getvalue().strip().splitlines()[-1]


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_epoch_count_is_whole_at_every_width(width):
    line = drawn(width)

    assert "epoch 15/15" in line
    assert len(line) <= width


def test_the_losses_are_shown_when_there_is_room():
    assert "loss 0.308  acc 0.854  val loss 0.276  val acc 0.875" in drawn(120)


def test_a_resumed_bar_starts_at_the_epochs_done():
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=False, color_system=None)
    bar = ProgressBar("base", 5, console=console)
    bar.on_fit_start(SimpleNamespace(epoch=3), {})
    bar.on_epoch_end(None, LOGS)
    bar.on_fit_end(None, {})

    assert "epoch 4/5" in out.getvalue().strip().splitlines()[-1]
