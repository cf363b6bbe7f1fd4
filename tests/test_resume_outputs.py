"""A run stopped after training, before its report was written, gets the
report (and findings) from ``annlens resume``; nothing else changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from annlens.cli.main import app
from annlens.experiment import run_experiment, run_lacks_outputs
from annlens.io import RunDir
from experiment_support import tiny


@pytest.fixture
def completed(tmp_path) -> Path:
    config = tiny(output={"report": True, "figures": False})
    return run_experiment(config, out=tmp_path).directory


def _resume(path: Path) -> str:
    result = CliRunner().invoke(app, ["resume", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.split())


def test_a_completed_run_without_its_report_is_not_called_unchanged(completed):
    (completed / "report.html").unlink()

    assert run_lacks_outputs(completed)
    output = _resume(completed)

    assert "lacked its findings or report; they were written now" in output
    assert "nothing was changed" not in output
    assert (completed / "report.html").is_file()


def test_a_completed_run_without_its_findings_gets_them_and_the_report(completed):
    (completed / "report.html").unlink()
    (completed / "findings.json").unlink()

    _resume(completed)

    assert (completed / "findings.json").is_file()
    assert (completed / "report.html").is_file()


def test_rebuilding_the_report_leaves_the_manifest_and_tables_alone(completed):
    before = {
        name: (completed / name).read_bytes()
        for name in ("manifest.json", "metrics.parquet", "statistics.parquet")
    }
    (completed / "report.html").unlink()

    _resume(completed)

    for name, content in before.items():
        assert (completed / name).read_bytes() == content, name
    assert RunDir(completed).read_manifest()["status"] == "completed"


def test_a_complete_run_with_its_report_lacks_nothing(completed):
    assert not run_lacks_outputs(completed)
    assert "nothing was changed" in _resume(completed)
