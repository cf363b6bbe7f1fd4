"""``annlens compare``: every variant of an experiment against its PyTorch twin.

For each variant: one batch through both frameworks with every hook-point
quantity compared, then both trained side by side as the experiment trains
(its optimizer with its groups, batch size, penalties, clipping, constraints
and schedule), reporting how far the trajectories drift.
:func:`compare_run` does the same for a finished run, stores the result in
its run directory (``compare.json``) and rebuilds its report, which then has
a section for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from annlens.errors import ConfigError
from annlens.experiment.build import build_all
from annlens.experiment.schema import Experiment

COMPARE_FILE = "compare.json"


def compare_experiment(
    experiment: Experiment,
    steps: int = 20,
    tolerance: float | None = None,
    atol: float | None = None,
    rounding: float | None = None,
) -> list[Any]:
    """One :class:`~annlens.analysis.compare.Comparison` per variant.

    Parameters
    ----------
    experiment : Experiment
        A validated experiment.
    steps : int
        Training steps side by side, >= 1.
    tolerance, atol : float, optional
        The relative and absolute difference counted as agreement (by each
        variant's dtype by default).
    rounding : float, optional
        In float32, how many times as far as PyTorch from the float64 values
        annlens may be and still agree (4 by default; 0 turns it off).

    Raises
    ------
    ConfigError
        For steps < 1 or a tolerance that is not a finite number >= 0, before
        anything is built.
    """
    from annlens.analysis.compare import Comparison, compare_models, compare_training
    from annlens.analysis.compare.measure import check_tolerance

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"compare steps must be an integer >= 1, got {steps!r}")
    for value, name in (
        (tolerance, "tolerance"),
        (atol, "atol"),
        (rounding, "rounding"),
    ):
        if value is not None:
            check_tolerance(value, name)
    comparisons = []
    for parts in build_all(experiment):  # every variant built before any compares
        resolved = parts.experiment
        data = parts.data
        batch = resolved.training.batch_size
        x, y = data.x_train[:batch], data.y_train[:batch]
        parity = compare_models(
            parts.model, x, y, parts.loss, tolerance, atol, rounding
        )
        regularization = resolved.regularization
        schedule = resolved.schedule if parts.schedule is not None else None
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
            penalties=parts.penalties,
            clip_value=regularization.clip_value,
            clip_norm=regularization.clip_norm,
            constraints=parts.constraints,
            schedule=None if schedule is None else schedule.name,
            schedule_settings=None if schedule is None else schedule.settings(),
            tolerance=tolerance,
            atol=atol,
        )
        comparisons.append(Comparison(parts.name, parity, trajectory))
    return comparisons


def compare_run(
    path: str | Path,
    steps: int = 20,
    tolerance: float | None = None,
    atol: float | None = None,
    rounding: float | None = None,
) -> tuple[list[Any], Path | None]:
    """Compare the experiment of a run directory, store it, rebuild the report.

    The arguments are those of :func:`compare_experiment`.

    The run directory is locked while the comparison runs and is stored
    (see :meth:`annlens.io.RunDir.lock`).

    Returns
    -------
    (list of Comparison, Path or None)
        The comparisons, and the rebuilt ``report.html`` (None when the run's
        config turns the report off).

    Raises
    ------
    RunLockedError
        Another process runs or resumes the run directory.
    ConfigError
        The run has not completed, or its config file was edited since it
        started; nothing is written then.
    """
    from annlens.experiment.config import validate
    from annlens.experiment.reporting import rebuild_locked
    from annlens.io import RunDir
    from annlens.io.atomic import write_json

    run_dir = RunDir.open(path)
    with run_dir.lock():
        run_dir.require_completed("compare")
        run_dir.check_config_unchanged()
        where = f"the config of {str(path)!r}"
        experiment = validate(run_dir.read_config(), where)
        comparisons = compare_experiment(experiment, steps, tolerance, atol, rounding)
        write_json(run_dir.path / COMPARE_FILE, [c.to_dict() for c in comparisons])
        if not experiment.output.report:
            return comparisons, None
        return comparisons, rebuild_locked(run_dir)
