"""What a finished run leaves besides its tables: diagnoses, figures and the report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from annlens.io import RunDir
from annlens.io.atomic import write_json
from annlens.io.rundir import read_json

logger = logging.getLogger("annlens")


def _plain(finding: Any) -> dict[str, Any]:
    return dict(finding) if isinstance(finding, dict) else finding.to_dict()


def _classes_of(model: Any) -> Any:
    """The model's predicted classes on points, as the accuracy metric reads them.

    Several outputs: the arg max. One output: the logit of class 1, which the
    binary cross-entropy squashes itself, so class 1 where it is above 0 (a
    logit of 0.3 is class 1, though it lies in [0, 1]).
    """

    def predict(points: Any) -> Any:
        output = model.predict(points)
        if output.shape[1] == 1:
            return (output[:, 0] > 0).astype(np.int64)
        return output.argmax(axis=1)

    return predict


def _boundaries(trained: list[tuple[str, Any, Any]]) -> list[Any]:
    """Decision-boundary figures of ``(variant, model, data)``, for 2-D classes."""
    from annlens.viz import plot_decision_boundary

    figures = []
    for name, model, data in trained:
        if data.task != "classification" or data.n_features != 2:
            continue
        figure = plot_decision_boundary(
            _classes_of(model),
            data.x_train,
            data.y_train,
            title=f"{name}: decision boundary",
        )
        figures.append(("Did it learn?", f"boundary-{name}", figure))
    return figures


def _stored_boundaries(run_dir: RunDir, experiment: Any) -> list[Any]:
    """The boundary figures again, from each variant's last checkpoint."""
    from annlens.experiment.build import build_data
    from annlens.experiment.config import resolve_variants
    from annlens.io import load_checkpoint

    trained = []
    for name, resolved in resolve_variants(experiment):
        last = run_dir.checkpoint_path(f"{name}-last")
        if not last.exists():
            continue
        data = build_data(resolved)
        if data.task == "classification" and data.n_features == 2:
            trained.append((name, load_checkpoint(last).build_model(), data))
    return _boundaries(trained)


def write_outputs(run: Any, run_dir: RunDir) -> None:
    """Diagnose the statistics, then draw the figures and write report.html."""
    from annlens.analysis.diagnostics import diagnose

    stopped = [r.stopped for r in run.variants.values() if r.stopped is not None]
    # The guard names the first NaN or Inf exactly (step, layer, stage); the
    # statistics rule would report the same event again from sampled rows.
    guarded = {finding["variant"] for finding in stopped}
    diagnosed = [
        finding
        for finding in diagnose(run.statistics, run.metrics)
        if not (finding.rule == "non_finite" and finding.variant in guarded)
    ]
    run.findings = [*stopped, *diagnosed]
    write_json(run_dir.path / "findings.json", [_plain(f) for f in run.findings])
    output = run.experiment.output
    if output.tensorboard:
        from annlens.io.tensorboard import write_tensorboard

        histograms = (
            run_dir.read_table("histograms")
            if "histograms" in run_dir.tables()
            else None
        )
        write_tensorboard(
            run_dir.path / "tensorboard", run.statistics, run.metrics, histograms
        )
    if not output.report:
        return
    trained = [(n, r.model, r.parts.data) for n, r in run.variants.items()]
    run.report_path = build(run_dir.path, _boundaries(trained), output.figures)


def build(path: Path, figures: list[Any], save_figures: bool = True) -> Path:
    """Write report.html (and the figures, when asked) for the run at ``path``."""
    from annlens.viz import build_report

    run_dir = RunDir.open(path)
    findings_file = run_dir.path / "findings.json"
    findings = read_json(findings_file) if findings_file.exists() else None
    figure_dir = run_dir.figures_dir if save_figures else None
    report = build_report(
        run_dir.path, findings=findings, figures=figures, figure_dir=figure_dir
    )
    logger.info("report %s", report)
    return report


def rebuild_report(path: str | Path) -> Path:
    """Draw the figures and write report.html again from a run's stored tables.

    The figures are saved in ``figures/`` when the run's config asks for them
    (``output.figures``); decision boundaries are drawn from each variant's
    last checkpoint. The run directory is locked meanwhile (see
    :meth:`annlens.io.RunDir.lock`).

    Raises
    ------
    RunLockedError
        Another process runs or resumes the run directory.
    ConfigError
        The run has not completed (its tables are not written yet).
    """
    run_dir = RunDir.open(path)
    with run_dir.lock():
        run_dir.require_completed("rebuild the report of")
        return rebuild_locked(run_dir)


def rebuild_locked(run_dir: RunDir) -> Path:
    """:func:`rebuild_report` for a completed run whose lock the caller holds."""
    from annlens.experiment.config import validate

    where = f"the config of {str(run_dir.path)!r}"
    experiment = validate(run_dir.read_config(), where)
    figures = _stored_boundaries(run_dir, experiment)
    return build(run_dir.path, figures, experiment.output.figures)
