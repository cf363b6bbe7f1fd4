"""``annlens compare``: every variant of an experiment against its PyTorch twin.

For each variant: one batch through both frameworks with every hook-point
quantity compared, then both trained side by side with the experiment's
optimizer and batch size, reporting how far the trajectories drift.
"""

from __future__ import annotations

from typing import Any

from annlens.experiment.build import build_all
from annlens.experiment.schema import Experiment


def compare_experiment(experiment: Experiment, steps: int = 20) -> list[Any]:
    """Rich tables of parity and trajectory drift, two per variant."""
    from annlens.analysis.compare import (
        compare_models,
        compare_training,
        parity_table,
        trajectory_table,
    )

    tables = []
    for parts in build_all(experiment):  # every variant built before any compares
        name, resolved = parts.name, parts.experiment
        data = parts.data
        batch = resolved.training.batch_size
        x, y = data.x_train[:batch], data.y_train[:batch]
        parity = compare_models(parts.model, x, y, parts.loss)
        table = parity_table(parity)
        table.title = f"{name}: one batch, annlens against PyTorch"
        tables.append(table)
        trajectory = compare_training(
            parts.model,
            resolved.optimizer.name,
            resolved.optimizer.settings(),
            data.x_train,
            data.y_train,
            parts.loss,
            steps=steps,
            batch_size=batch,
            seed=resolved.seed,
        )
        table = trajectory_table(trajectory)
        table.title = f"{name}: {steps} training steps side by side"
        tables.append(table)
    return tables
