"""Running an experiment: every variant trained, observed, checkpointed, reported.

``run_experiment(config)`` builds every variant first (so a bad setting
anywhere is refused before anything trains), makes a run directory, trains
each variant with a statistics recorder attached, checkpoints as it goes,
then writes the metrics and statistics tables, the diagnoses, the figures and
the report. ``resume_experiment(run_dir)`` continues a run that was stopped,
from each unfinished variant's last checkpoint, to the same final weights; a
completed run is read back as it is, and nothing in it is written again.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from threadpoolctl import threadpool_limits

from annlens.analysis.collectors import Recorder
from annlens.errors import CheckpointError, ConfigError, NonFiniteError
from annlens.experiment.build import Parts, build_all, schedule_monitor
from annlens.experiment.callbacks import Checkpoints, EndEpoch, StepLimit
from annlens.experiment.config import validate
from annlens.experiment.output_folder import check_output_folder, unwritable
from annlens.experiment.progress import ProgressBar
from annlens.experiment.record import recorded_config
from annlens.experiment.reporting import write_outputs
from annlens.experiment.results import Run, VariantResult
from annlens.experiment.schema import Experiment
from annlens.experiment.targets import (
    check_scaling,
    regression_metrics,
    scaling_record,
    write_scaling,
)
from annlens.io import RunDir, restore
from annlens.io.atomic import write_json
from annlens.io.manifest import now_utc, project_root
from annlens.io.rundir import read_json
from annlens.training import EarlyStopping, Trainer

logger = logging.getLogger("annlens")


def _trainer(
    parts: Parts, recorder: Recorder, run_dir: RunDir, progress: bool
) -> Trainer:
    experiment = parts.experiment
    training = experiment.training
    epochs = training.epochs
    if training.steps is not None:
        steps_per_epoch = -(-len(parts.data.y_train) // training.batch_size)
        epochs = -(-training.steps // steps_per_epoch)

    callbacks: list[Any] = [EndEpoch(recorder)]
    if training.steps is not None:
        callbacks.append(StepLimit(training.steps))
    stopping = training.early_stopping
    if stopping is not None:
        callbacks.append(
            EarlyStopping(
                monitor=stopping.monitor,
                patience=stopping.patience,
                min_delta=stopping.min_delta,
                restore_best=stopping.restore_best,
            )
        )
    monitor = stopping.monitor if stopping is not None else "val_loss"
    every = experiment.output.checkpoint_every
    scaling = scaling_record(parts.data)
    callbacks.append(
        Checkpoints(run_dir, parts.name, recorder, every, monitor, scaling)
    )
    callbacks.append(ProgressBar(parts.name, epochs, enabled=progress))

    metrics: list[Any] = ["loss"]
    if parts.data.task == "classification":
        metrics.append("accuracy")
    else:
        metrics += regression_metrics(parts.data, parts.loss)
    return Trainer(
        parts.model,
        parts.loss,
        parts.optimizer,
        batch_size=training.batch_size,
        epochs=epochs,
        schedule=parts.schedule,
        schedule_monitor=schedule_monitor(parts),
        penalties=parts.penalties,
        constraints=parts.constraints,
        clip_norm=experiment.regularization.clip_norm,
        clip_value=experiment.regularization.clip_value,
        metrics=metrics,
        callbacks=callbacks,
        seed=experiment.seed,
        nan_guard=training.nan_guard,
    )


def _train_variant(
    parts: Parts, run_dir: RunDir, progress: bool, resume: bool = False
) -> VariantResult:
    """Train one variant (from its last checkpoint when ``resume``)."""
    recorder = parts.recorder
    trainer = _trainer(parts, recorder, run_dir, progress)
    last = run_dir.checkpoint_path(f"{parts.name}-last")
    done = run_dir.checkpoints_dir / f"{parts.name}-done.json"
    if resume and last.exists():
        try:
            _restore_last(parts, trainer, last)
        except CheckpointError as error:
            raise DamagedCheckpointError(str(error), last) from error
        logger.info("%s: resuming after epoch %d", parts.name, trainer.epochs_done)
        if done.exists():
            return _finished_variant(parts, trainer, done)

    data = parts.data
    validation = (data.x_val, data.y_val) if len(data.y_val) else None
    stopped = None
    try:
        with recorder, threadpool_limits(limits=blas_threads(parts.model)):
            trainer.fit(
                data.x_train, data.y_train, validation_data=validation, resume=resume
            )
    except NonFiniteError as error:
        # A diverging variant is a result of the study, not a failure of the
        # run: keep its last good parameters and statistics, report it, go on.
        logger.warning("variant %s stopped: %s", parts.name, error)
        stopped = non_finite_finding(parts.name, error)
        # on_fit_end did not come: keep the state it stopped in as the last
        # checkpoint, so that a resumed run restores this very model
        for callback in trainer.callbacks:
            if isinstance(callback, Checkpoints):
                callback.save(trainer, "last")
    test = _test_scores(trainer, data)
    record = {"variant": parts.name, "test": test, "epochs": trainer.epochs_done}
    write_json(done, {**record, "stopped": stopped})
    return VariantResult(parts.name, parts, trainer.history, test, recorder, stopped)


class DamagedCheckpointError(CheckpointError):
    """A checkpoint a resumed run needs cannot be loaded (truncated, damaged).

    ``path`` is the checkpoint; the message is the loader's.
    """

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


def _restore_last(parts: Parts, trainer: Trainer, last: Path) -> None:
    """Load a variant's last checkpoint into its model, trainer and recorder."""
    checkpoint = restore(last, parts.model, parts.optimizer, parts.schedule)
    trainer.load_state_dict(checkpoint.extra["trainer"])
    parts.recorder.load_state_dict(checkpoint.extra["recorder"])


def _finished_variant(parts: Parts, trainer: Trainer, done: Path) -> VariantResult:
    """The result of a variant that finished, from its restored state and record."""
    record = read_json(done)
    test, stopped = record["test"], record.get("stopped")
    return VariantResult(
        parts.name, parts, trainer.history, test, parts.recorder, stopped
    )


NARROW = 256


def blas_threads(model: Any) -> int | None:
    """One BLAS thread for narrow networks, the library's default otherwise.

    For layers narrower than about 256 units a second BLAS thread costs more
    in hand-over than it gains in arithmetic (measured on two cores with the
    benchmarks); wide layers keep every thread.
    """
    widths = [
        layer.params["W"].shape[1] for layer in model.layers if "W" in layer.params
    ]
    return 1 if widths and max(widths) < NARROW else None


def _test_scores(trainer: Trainer, data: Any) -> dict[str, float]:
    """Loss and metrics on the test part; none when it is empty or overflows."""
    if not len(data.y_test):
        return {}
    try:
        return trainer.evaluate(data.x_test, data.y_test)
    except NonFiniteError as error:
        logger.warning("no test scores: %s", error)
        return {}


def non_finite_finding(variant: str, error: NonFiniteError) -> dict[str, Any]:
    """The finding that records where a variant's training hit NaN or Inf.

    Like the ``non_finite`` finding of the diagnostics, it measures a count
    against a threshold of 0: the NaN and Inf in the array the NaN guard
    refused, where training stopped (1, at least one, where the error did not
    count them).
    """
    step = error.step if error.step is not None else -1
    count = error.count if error.count is not None else 1
    return {
        "rule": "non_finite",
        "severity": "critical",
        "variant": variant,
        "layers": [error.layer or "model"],
        "step_range": [step, step],
        "measured": float(count),
        "threshold": 0.0,
        "definition": (
            "count of NaN or Inf in the array the trainer's NaN guard refused, "
            f"at stage {error.stage!r} of step {step}, where training stopped"
        ),
        "message": str(error),
        "suggestion": "Lower the learning rate, clip gradients or normalise; "
        "training of this variant stopped at the last good parameters.",
        "source": "the trainer's NaN guard",
        "evidence": {},
    }


def _metrics_table(results: Sequence[VariantResult]) -> pd.DataFrame:
    """Per-epoch metrics of every variant, one row per variant and epoch."""
    frames = []
    for result in results:
        frame = pd.DataFrame(result.history.rows)
        frame = frame.rename(
            columns={
                column: f"train_{column}"
                for column in frame.columns
                if column not in ("epoch", "lr") and not column.startswith("val_")
            }
        )
        for key, value in result.test.items():
            frame.loc[frame.index[-1], f"test_{key}"] = value
        frames.append(frame.assign(variant=result.name))
    return pd.concat(frames, ignore_index=True)


def _finish(
    experiment: Experiment, run_dir: RunDir, results: list[VariantResult]
) -> Run:
    # a stop while the tables are written leaves a run that is not completed:
    # the manifest says so, as for a stop in training, and resume writes them
    with _stopping(run_dir):
        metrics = _metrics_table(results)
        statistics = pd.concat(
            [result.recorder.to_dataframe() for result in results], ignore_index=True
        )
        run_dir.write_metrics(metrics)
        run_dir.write_statistics(statistics)
        histograms = pd.concat(
            [result.recorder.histograms() for result in results], ignore_index=True
        )
        spectra = pd.concat(
            [result.recorder.spectra() for result in results], ignore_index=True
        )
        run_dir.write_table("histograms", histograms)
        run_dir.write_table("spectra", spectra)
    run = Run(
        run_dir.path, experiment, {r.name: r for r in results}, metrics, statistics
    )
    run_dir.finish("completed")  # before the report, which shows the manifest
    _write_outputs(run, run_dir)
    return run


def _write_outputs(run: Run, run_dir: RunDir) -> None:
    """Write the findings, figures and report; say how to finish when stopped."""
    try:
        write_outputs(run, run_dir)
    except KeyboardInterrupt:
        logger.warning(
            "interrupted before the report was written; write it with: "
            "annlens resume %s",
            run_dir.path,
        )
        raise


def run_experiment(
    config: Experiment | dict[str, Any],
    out: str | Path | None = None,
    progress: bool = False,
    command: Sequence[str] | None = None,
    source: str | Path | None = None,
) -> Run:
    """Run every variant of an experiment and write its run directory.

    Parameters
    ----------
    config : Experiment or dict
        A validated experiment (see :func:`annlens.experiment.load_config`),
        or a dict in the same shape as the TOML file.
    out : path, optional
        Where run directories go (default: the config's ``output.dir``).
    progress : bool
        Show a progress bar per variant.
    command : sequence of str, optional
        The command line, kept in the manifest.
    source : path, optional
        The experiment file, whose folder's git commit goes into the manifest.

    Returns
    -------
    Run
        The models, histories, statistics, findings and the run directory.

    Notes
    -----
    The new run directory is locked while the run writes it (see
    :meth:`annlens.io.RunDir.lock`), so that no other process resumes it
    meanwhile.
    """
    experiment = config if isinstance(config, Experiment) else validate(config)
    root = Path(out if out is not None else experiment.output.dir)
    check_output_folder(root)
    parts = build_all(experiment)
    try:
        run_dir = RunDir.create(root, experiment.name)
    except OSError as error:
        raise ConfigError(unwritable(root, error)) from None
    with run_dir.lock():
        try:
            run_dir.write_config(recorded_config(experiment))
            write_scaling(run_dir, parts)
            source_dir = (
                Path(source).resolve().parent if source is not None else project_root()
            )
            run_dir.start(experiment.seed, command, source_dir)
        except BaseException:
            # stopped before the manifest: nothing trained, nothing to resume,
            # so no half-made run directory is left behind
            if not run_dir.manifest_path.exists():
                shutil.rmtree(run_dir.path, ignore_errors=True)
            raise
        with _stopping(run_dir):
            results = [_train_variant(p, run_dir, progress) for p in parts]
        return _finish(experiment, run_dir, results)


@contextlib.contextmanager
def _stopping(run_dir: RunDir) -> Iterator[None]:
    """Record in the manifest a run that stops early, with how to continue it."""
    try:
        yield
    except KeyboardInterrupt:
        run_dir.finish("interrupted")
        logger.warning(
            "interrupted; continue the run with: annlens resume %s", run_dir.path
        )
        raise
    except DamagedCheckpointError as error:
        # resume continues only from a variant's last checkpoint, so no fix
        # of the cause lets this run go on
        run_dir.finish("failed")
        logger.warning(
            "failed; the checkpoint %s is damaged and annlens resume continues "
            "only from it, so this run cannot be resumed; start it again with: "
            "annlens run %s",
            error.path,
            run_dir.config_path,
        )
        raise
    except BaseException:
        run_dir.finish("failed")
        logger.warning(
            "failed; once the cause is fixed, continue the run with: annlens resume %s",
            run_dir.path,
        )
        raise


def resume_experiment(path: str | Path, progress: bool = False) -> Run:
    """Continue a stopped run to the same final weights as an uninterrupted one.

    A finished variant is restored from its final checkpoint without training;
    an unfinished one continues from its last checkpoint (or from the start
    when it has none). The tables and the report are then written anew, and
    the time of the resumption is added to the manifest's ``resumed`` list.

    A run whose manifest says ``completed`` has nothing to continue: it is
    read back (models from the last checkpoints, the stored tables and
    findings) and nothing in the directory is written, except the findings
    and report.html when a stop after training left them unwritten; see
    :func:`run_is_complete` and :func:`run_lacks_outputs`.

    The run directory is locked from first to last (see
    :meth:`annlens.io.RunDir.lock`): while another process runs or resumes
    it, the resumption is refused before anything is read or written.

    Raises
    ------
    RunLockedError
        Another process runs or resumes this run directory.
    ConfigError
        The run directory's config file was edited since the run started
        (its sha256 differs from the manifest's ``config_sha256``), the data
        no longer gives the scaling stored in ``scaling.json`` or the
        fingerprint of a split's features or targets stored there (it changed
        since the run started), or a completed run lacks a variant's final
        checkpoint.
    """
    run_dir = RunDir.open(path)
    with run_dir.lock():
        return _resume(run_dir, path, progress)


def _resume(run_dir: RunDir, path: str | Path, progress: bool) -> Run:
    """The body of :func:`resume_experiment`, with the run directory locked."""
    run_dir.check_config_unchanged()
    experiment = validate(run_dir.read_config(), f"the config of {str(path)!r}")
    parts = build_all(experiment)
    check_scaling(run_dir, parts)
    manifest = run_dir.read_manifest()
    if manifest.get("status") == "completed":
        run = _stored_run(experiment, run_dir, parts)
        if _outputs_missing(run_dir, experiment):
            _write_outputs(run, run_dir)
        return run
    resumed = [*manifest.get("resumed", []), now_utc().isoformat()]
    write_json(run_dir.manifest_path, {**manifest, "resumed": resumed})
    with _stopping(run_dir):
        results = [_train_variant(p, run_dir, progress, resume=True) for p in parts]
    return _finish(experiment, run_dir, results)


def run_is_complete(path: str | Path) -> bool:
    """Whether the run directory's manifest says the run completed."""
    return RunDir.open(path).read_manifest().get("status") == "completed"


def run_lacks_outputs(path: str | Path) -> bool:
    """Whether a completed run lacks findings.json, or report.html it asks for.

    The manifest says ``completed`` before the findings and the report are
    written (the report shows the manifest), so a run stopped meanwhile
    lacks them; :func:`resume_experiment` writes them.
    """
    run_dir = RunDir.open(path)
    if run_dir.read_manifest().get("status") != "completed":
        return False
    run_dir.check_config_unchanged()
    experiment = validate(run_dir.read_config(), f"the config of {str(path)!r}")
    return _outputs_missing(run_dir, experiment)


def _outputs_missing(run_dir: RunDir, experiment: Experiment) -> bool:
    if not (run_dir.path / "findings.json").exists():
        return True
    return experiment.output.report and not run_dir.report_path.exists()


def _stored_run(experiment: Experiment, run_dir: RunDir, parts: list[Parts]) -> Run:
    """A completed run read back from its directory, writing nothing."""
    results = []
    for variant in parts:
        last = run_dir.checkpoint_path(f"{variant.name}-last")
        done = run_dir.checkpoints_dir / f"{variant.name}-done.json"
        if not (last.exists() and done.exists()):
            raise ConfigError(
                f"{str(run_dir.path)!r} is marked completed, but variant "
                f"{variant.name!r} has no final checkpoint ({last.name} and "
                f"{done.name} in {run_dir.checkpoints_dir.name}/)"
            )
        trainer = _trainer(variant, variant.recorder, run_dir, progress=False)
        _restore_last(variant, trainer, last)
        results.append(_finished_variant(variant, trainer, done))
    findings_file = run_dir.path / "findings.json"
    return Run(
        run_dir.path,
        experiment,
        {result.name: result for result in results},
        run_dir.read_metrics(),
        run_dir.read_statistics(),
        read_json(findings_file) if findings_file.exists() else [],
        run_dir.report_path if run_dir.report_path.exists() else None,
    )
