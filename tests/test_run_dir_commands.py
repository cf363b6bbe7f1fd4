"""compare, report and export on an existing run directory: the lock and the status.

These commands write into a run directory (compare.json, report.html,
export/), so they take its lock as run and resume do, and refuse a run that
has not completed, whose tables are not written yet, before writing anything.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annlens.cli.main import app
from annlens.errors import ConfigError, RunLockedError
from annlens.experiment import rebuild_report, run_experiment
from annlens.experiment.compare import compare_run
from annlens.io import RunDir, export
from experiment_support import tiny

runner = CliRunner()

COMMANDS = [["compare", "--steps", "1"], ["report"], ["export"]]


@pytest.fixture(scope="module")
def completed(tmp_path_factory) -> Path:
    config = tiny(output={"report": True, "figures": False})
    return run_experiment(config, out=tmp_path_factory.mktemp("runs")).directory


@pytest.fixture
def copy(completed, tmp_path) -> Path:
    """A copy of the completed run, free to change."""
    return Path(shutil.copytree(completed, tmp_path / completed.name))


def interrupted(path: Path) -> Path:
    """Make ``path`` look like a run stopped in training: no tables, status set."""
    manifest = path / "manifest.json"
    record = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**record, "status": "interrupted"}))
    for table in path.glob("*.parquet"):
        table.unlink()
    (path / "report.html").unlink()
    (path / "findings.json").unlink()
    return path


def files(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_locked_run_is_refused_naming_the_holder(copy, command):
    before = files(copy)
    with RunDir(copy).lock():
        result = runner.invoke(app, [command[0], str(copy), *command[1:]])
        assert set(files(copy)) == {*before, ".lock.json"}

    assert result.exit_code == 2, result.output
    assert "is in use by process" in result.stderr
    assert str(copy) in result.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_an_interrupted_run_is_refused_before_anything_is_written(copy, command):
    before = files(interrupted(copy))

    result = runner.invoke(app, [command[0], str(copy), *command[1:]])

    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert "it was interrupted" in message
    assert "status 'interrupted', expected 'completed'" in message
    assert "annlens resume" in message
    assert files(copy) == before


def test_compare_run_refuses_a_running_run_without_writing_compare_json(copy):
    interrupted(copy)
    manifest = copy / "manifest.json"
    manifest.write_text(
        json.dumps({**json.loads(manifest.read_text()), "status": "running"})
    )

    with pytest.raises(ConfigError, match="it is still running"):
        compare_run(copy, steps=1)
    assert not (copy / "compare.json").exists()


def test_the_api_takes_the_lock_too(copy):
    with RunDir(copy).lock():
        with pytest.raises(RunLockedError):
            rebuild_report(copy)
        with pytest.raises(RunLockedError):
            export(copy)
        with pytest.raises(RunLockedError):
            compare_run(copy, steps=1)


def test_the_lock_is_given_back_after_report_and_export(copy):
    rebuild_report(copy)
    export(copy, format="json")

    with RunDir(copy).lock():  # free again
        pass
    assert (copy / "export" / "metrics.json").exists()


def test_compare_refuses_a_run_whose_config_was_edited(copy):
    config = copy / "config.toml"
    config.write_text(config.read_text().replace("lr = 0.1", "lr = 0.5"))

    result = runner.invoke(app, ["compare", str(copy), "--steps", "1"])

    assert result.exit_code == 2, result.output
    assert "was edited after the run started" in " ".join(result.stderr.split())
    assert not (copy / "compare.json").exists()


def test_export_of_a_folder_without_a_manifest_leaves_no_lock_file(copy, tmp_path):
    folder = tmp_path / "tables"
    folder.mkdir()
    shutil.copy(copy / "metrics.parquet", folder)

    result = runner.invoke(app, ["export", str(folder)])

    assert result.exit_code == 0, result.output
    assert files(folder) == ["export", "export/metrics.csv", "metrics.parquet"]
