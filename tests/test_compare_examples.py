"""``annlens compare`` runs on every example experiment and finds it agrees.

One test per file in examples/ (a new example is covered by being there),
each shortened to two side-by-side training steps so that all of them take
well under a minute. The command must exit with status 0 and end with a PASS
verdict; every hook-point quantity of every variant must be within the
documented tolerance, and every variant's trajectory must be reported.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import annlens.experiment
from annlens.cli.main import app

pytest.importorskip("torch")
pytestmark = pytest.mark.torch

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml"))
STEPS = 2


def test_there_are_examples_to_compare() -> None:
    assert len(EXAMPLES) >= 9


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_compare_passes_on_the_example(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found: list[Any] = []
    compare = annlens.experiment.compare_experiment

    def keeping(*args: Any, **kwargs: Any) -> list[Any]:
        found.extend(compare(*args, **kwargs))
        return found

    monkeypatch.setattr(annlens.experiment, "compare_experiment", keeping)
    result = CliRunner().invoke(app, ["compare", str(example), "--steps", str(STEPS)])

    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("PASS: all "), last
    assert "drift over" in last
    assert found, "the command compared nothing"
    for comparison in found:
        parity = comparison.parity
        assert parity.tolerance == (1e-4 if parity.dtype == "float32" else 1e-10)
        assert parity.failures() == [], comparison.name
        assert all(parity.excess(row) <= 1 for row in parity.rows)
        points = {row.point for row in parity.rows}
        assert {"loss"} | {f"{layer}.forward" for layer in _layers(parity)} <= points

        trajectory = comparison.trajectory
        assert trajectory is not None
        assert (
            f"{comparison.name}: {STEPS} training steps side by side" in result.stdout
        )
        if trajectory.stopped is None:
            assert [step.step for step in trajectory.steps] == list(range(1, STEPS + 1))
        else:
            assert "NaN guard" in last and comparison.name in last
        for step in trajectory.steps:
            assert math.isfinite(step.loss_annlens) and math.isfinite(step.loss_torch)
            assert step.worst and step.differences


def _layers(parity: Any) -> set[str]:
    return {row.layer for row in parity.rows if row.layer != "loss"}
