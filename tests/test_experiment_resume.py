"""Stopping a run and resuming it: the same weights, metrics and statistics.

A run is stopped at some step (a child process killed with ``os._exit``, or
an exception raised in-process), resumed from its last checkpoints, and
compared with the same experiment run without a stop: every checkpoint
tensor bit for bit, the metrics and the statistics exactly.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from annlens.cli.main import app
from annlens.errors import CheckpointError, ConfigError
from annlens.experiment import callbacks, resume_experiment, run_experiment, runner
from annlens.io import RunDir
from experiment_support import (
    STEPS_PER_EPOCH,
    assert_same_run,
    manifest,
    only_run_dir,
    run_and_die,
    tiny,
    two_variants,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The two-variant run without a stop."""
    out = tmp_path_factory.mktemp("reference")
    return run_experiment(two_variants(), out=out).directory


class Stop(Exception):
    """Raised in place of a kill."""


def stop_at(monkeypatch, variant: str, after: int, error: type = Stop) -> None:
    """Raise ``error`` once ``variant`` has taken ``after`` optimizer steps."""

    def raising(self, trainer, logs):
        if self.recorder.variant == variant and trainer.optimizer.t >= after:
            raise error()

    monkeypatch.setattr(callbacks.EndEpoch, "on_batch_end", raising, raising=False)


def test_a_run_killed_in_its_second_variant_resumes_to_identical_results(
    tmp_path, reference
):
    out = tmp_path / "runs"
    # dies in the middle of the second epoch of "drop" (Dropout, Adam, early
    # stopping), after its checkpoint of the first epoch
    child = run_and_die(tmp_path, two_variants(), out, "drop", STEPS_PER_EPOCH + 3)
    assert child.returncode == 17, child.stderr
    stopped = only_run_dir(out)
    assert manifest(stopped)["status"] == "running"
    checkpoints = {p.name for p in (stopped / "checkpoints").iterdir()}
    assert {"plain-done.json", "plain-last", "drop-last"} <= checkpoints
    assert "drop-done.json" not in checkpoints

    result = CliRunner().invoke(app, ["resume", str(stopped), "--quiet"])
    assert result.exit_code == 0, result.output
    assert manifest(stopped)["status"] == "completed"
    assert len(manifest(stopped)["resumed"]) == 1
    assert_same_run(reference, stopped, ["plain", "drop"])


def test_resume_on_the_command_line_names_the_report_it_wrote(tmp_path, monkeypatch):
    config = tiny(output={"figures": False, "report": True})
    stop_at(monkeypatch, "base", 2)
    with pytest.raises(Stop):
        run_experiment(config, out=tmp_path)
    monkeypatch.undo()
    stopped = only_run_dir(tmp_path)

    result = CliRunner().invoke(app, ["resume", str(stopped), "--quiet"])

    assert result.exit_code == 0, result.output
    assert f"report: {stopped / 'report.html'}" in " ".join(result.output.split())
    assert (stopped / "report.html").is_file()


def test_a_run_stopped_before_its_first_checkpoint_starts_that_variant_again(
    tmp_path, monkeypatch, reference
):
    stop_at(monkeypatch, "plain", 2)
    with pytest.raises(Stop):
        run_experiment(two_variants(), out=tmp_path)
    stopped = only_run_dir(tmp_path)
    assert manifest(stopped)["status"] == "failed"
    assert not (stopped / "checkpoints" / "plain-last").exists()

    monkeypatch.undo()
    resumed = resume_experiment(stopped)
    assert_same_run(reference, stopped, ["plain", "drop"])
    assert list(resumed.variants) == ["plain", "drop"]


def test_a_run_stopped_in_its_first_variant_resumes_to_identical_results(
    tmp_path, monkeypatch, reference
):
    stop_at(monkeypatch, "plain", 2 * STEPS_PER_EPOCH + 1)
    with pytest.raises(Stop):
        run_experiment(two_variants(), out=tmp_path)
    monkeypatch.undo()
    resumed = resume_experiment(only_run_dir(tmp_path))
    assert_same_run(reference, resumed.directory, ["plain", "drop"])
    # the Run returned holds the whole histories and tables
    pd.testing.assert_frame_equal(
        resumed.metrics, pd.read_parquet(reference / "metrics.parquet")
    )
    pd.testing.assert_frame_equal(
        resumed.statistics, pd.read_parquet(reference / "statistics.parquet")
    )
    for variant in ("plain", "drop"):
        epochs = [row["epoch"] for row in resumed.variants[variant].history.rows]
        assert epochs == [0, 1, 2]


def test_an_interrupted_run_says_so_and_resumes(tmp_path, monkeypatch):
    stop_at(monkeypatch, "base", 3, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(tiny(), out=tmp_path)
    stopped = only_run_dir(tmp_path)
    assert manifest(stopped)["status"] == "interrupted"
    monkeypatch.undo()
    resume_experiment(stopped)
    record = manifest(stopped)
    assert record["status"] == "completed"
    assert len(record["resumed"]) == 1
    assert record["finished"] >= record["resumed"][0]


def test_a_run_interrupted_while_its_tables_are_written_says_so_and_resumes(
    tmp_path, monkeypatch, reference
):
    def interrupted(self, table):
        raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "write_statistics", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(two_variants(), out=tmp_path)
    stopped = only_run_dir(tmp_path)
    assert manifest(stopped)["status"] == "interrupted"
    monkeypatch.undo()
    resume_experiment(stopped)
    assert manifest(stopped)["status"] == "completed"
    assert_same_run(reference, stopped, ["plain", "drop"])


def test_a_resumption_interrupted_while_it_writes_the_report_says_how_to_finish(
    tmp_path, monkeypatch, caplog
):
    def interrupted(run, run_dir):
        raise KeyboardInterrupt

    first = run_experiment(tiny(), out=tmp_path)
    (first.directory / "findings.json").unlink()
    monkeypatch.setattr(runner, "write_outputs", interrupted)
    with pytest.raises(KeyboardInterrupt):
        resume_experiment(first.directory)
    assert "interrupted before the report was written" in caplog.text
    assert f"annlens resume {first.directory}" in caplog.text
    monkeypatch.undo()
    resume_experiment(first.directory)
    assert (first.directory / "findings.json").exists()


def test_a_run_interrupted_before_its_manifest_leaves_no_run_directory(
    tmp_path, monkeypatch
):
    def interrupted(run_dir, parts):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "write_scaling", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(tiny(), out=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_variant_stopped_by_nan_resumes_to_the_model_it_stopped_with(tmp_path):
    # the learning rate grows a trillionfold after the first epoch, so the
    # second epoch overflows, after the checkpoint of the first
    wild = {"name": "wild", "schedule": {"name": "exponential", "gamma": 1e12}}
    config = tiny(variants=[{"name": "ok"}, wild])
    first = run_experiment(config, out=tmp_path)
    wild = first.variants["wild"]
    assert wild.stopped is not None and wild.stopped["rule"] == "non_finite"
    assert wild.model.state.step > STEPS_PER_EPOCH
    weights = wild.model.layer("dense_0").params["W"].copy()
    resumed = resume_experiment(first.directory)
    again = resumed.variants["wild"]
    assert again.stopped["message"] == wild.stopped["message"]
    assert again.model.state.step == wild.model.state.step
    assert again.model.layer("dense_0").params["W"].tobytes() == weights.tobytes()


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    first = run_experiment(tiny(), out=tmp_path / "a")
    copy = run_experiment(tiny(), out=tmp_path / "b")
    resume_experiment(copy.directory)
    assert_same_run(first.directory, copy.directory, ["base"])


def test_resume_refuses_a_config_edited_after_the_run_started(tmp_path, monkeypatch):
    stop_at(monkeypatch, "base", 3, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(tiny(), out=tmp_path)
    monkeypatch.undo()
    stopped = only_run_dir(tmp_path)
    config = stopped / "config.toml"
    config.write_text(config.read_text().replace("lr = 0.1", "lr = 0.5"))
    before = {p: p.read_bytes() for p in stopped.rglob("*") if p.is_file()}

    result = CliRunner().invoke(app, ["resume", str(stopped)])

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert f"{str(config)!r} was edited after the run started" in message
    assert "start a new run: `annlens run" in message
    after = {p: p.read_bytes() for p in stopped.rglob("*") if p.is_file()}
    assert after == before
    assert manifest(stopped)["status"] == "interrupted"


def test_the_manifest_records_the_sha256_of_the_config(tmp_path):
    import hashlib

    directory = run_experiment(tiny(), out=tmp_path).directory
    digest = hashlib.sha256((directory / "config.toml").read_bytes()).hexdigest()
    assert manifest(directory)["config_sha256"] == digest


def test_resume_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match="is not an annlens run directory"):
        resume_experiment(tmp_path)


def test_statistics_match_when_a_recorded_step_follows_the_checkpoint(
    tmp_path, monkeypatch
):
    config = tiny(collect={"every": 3}, training={"epochs": 3})  # records step 6
    reference = run_experiment(config, out=tmp_path / "reference")
    stop_at(monkeypatch, "base", STEPS_PER_EPOCH + 2)
    with pytest.raises(Stop):
        run_experiment(config, out=tmp_path / "stopped")
    monkeypatch.undo()
    resumed = resume_experiment(only_run_dir(tmp_path / "stopped"))
    pd.testing.assert_frame_equal(resumed.statistics, reference.statistics)


def _stopped_with_truncated_checkpoint(tmp_path, monkeypatch) -> Path:
    """A run stopped in its second epoch, its last checkpoint then cut short."""
    stop_at(monkeypatch, "base", STEPS_PER_EPOCH + 2)
    with pytest.raises(Stop):
        run_experiment(tiny(), out=tmp_path)
    monkeypatch.undo()
    stopped = only_run_dir(tmp_path)
    tensors = stopped / "checkpoints" / "base-last" / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-40])
    return stopped


def test_a_damaged_checkpoint_says_to_start_again_not_to_resume(
    tmp_path, monkeypatch, caplog
):
    stopped = _stopped_with_truncated_checkpoint(tmp_path, monkeypatch)
    caplog.clear()

    with caplog.at_level("WARNING", logger="annlens"), pytest.raises(CheckpointError):
        resume_experiment(stopped)

    assert manifest(stopped)["status"] == "failed"
    advice = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(advice) == 1
    assert str(stopped / "checkpoints" / "base-last") in advice[0]
    assert "is damaged" in advice[0] and "cannot be resumed" in advice[0]
    assert f"annlens run {stopped / 'config.toml'}" in advice[0]
    assert "once the cause is fixed" not in advice[0]


def test_a_failure_of_another_cause_still_says_to_resume(tmp_path, monkeypatch, caplog):
    stop_at(monkeypatch, "base", 3)
    with caplog.at_level("WARNING", logger="annlens"), pytest.raises(Stop):
        run_experiment(tiny(), out=tmp_path)

    stopped = only_run_dir(tmp_path)
    advice = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert advice == [
        f"failed; once the cause is fixed, continue the run with: "
        f"annlens resume {stopped}"
    ]
