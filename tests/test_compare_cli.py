"""``annlens compare``: the verdict line, the exit status, the stored comparison.

The command ends with one verdict line and exits with status 1 when a
quantity differs beyond the tolerance, 2 for a bad option; given a run
directory it stores ``compare.json`` there and the rebuilt report has an
"Against PyTorch" section.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annlens.cli.main import app
from annlens.experiment import run_experiment
from experiment_support import tiny, two_variants, write_experiment

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(arg) for arg in args])


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    return write_experiment(tmp_path / "e.toml", tiny())


def test_output_ends_with_a_pass_verdict_naming_the_worst_difference(
    experiment: Path,
) -> None:
    result = invoke("compare", experiment, "--steps", "2")
    assert result.exit_code == 0, result.output
    line = last_line(result.stdout)
    assert line.startswith("PASS: all ")
    assert "worst |Δ|" in line and " at base " in line
    assert "of the tolerance (0.0001 relative or 1e-06 absolute" in line
    assert "drift over 2 step(s)" in line


def test_a_tolerance_of_zero_fails_with_status_1(experiment: Path) -> None:
    result = invoke(
        "compare",
        experiment,
        "--steps",
        "1",
        "--tolerance",
        "0",
        "--atol",
        "0",
        "--rounding",
        "0",
    )
    assert result.exit_code == 1, result.output
    line = last_line(result.stdout)
    assert line.startswith("FAIL: ")
    assert "beyond the tolerance (0 relative or 0 absolute or 0x" in line


def test_a_perturbed_twin_fails_at_the_default_tolerance(
    experiment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annlens.analysis.compare.twin import Twin

    load = Twin.load_from_model

    def perturbed(self: Twin) -> None:
        load(self)
        first = self.pairs[0].tensor
        with torch.no_grad():
            first.mul_(1.001)

    monkeypatch.setattr(Twin, "load_from_model", perturbed)
    result = invoke("compare", experiment, "--steps", "1")
    assert result.exit_code == 1, result.output
    line = last_line(result.stdout)
    assert line.startswith("FAIL: ")
    assert "of 16 quantities of 1 variant(s) differ" in line
    assert "times the tolerance (0.0001 relative or 1e-06 absolute" in line


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--tolerance", "-1", "--tolerance must be a finite number >= 0, got -1.0"),
        ("--atol", "inf", "--atol must be a finite number >= 0, got inf"),
        ("--rounding", "-2", "--rounding must be a finite number >= 0, got -2.0"),
        ("--steps", "0", "--steps must be a whole number >= 1, got 0"),
    ],
)
def test_a_bad_option_is_one_error_with_status_2(
    experiment: Path, option: str, value: str, message: str
) -> None:
    result = invoke("compare", experiment, option, value)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_a_run_directory_gets_the_comparison_and_a_report_section(
    tmp_path: Path,
) -> None:
    config = two_variants(output={"report": True, "figures": False})
    run_dir = run_experiment(config, out=tmp_path / "runs").directory
    result = invoke("compare", run_dir, "--steps", "12")
    assert result.exit_code == 0, result.output
    assert f"report: {run_dir / 'report.html'}" in result.stdout
    assert last_line(result.stdout).startswith("PASS: ")

    stored = json.loads((run_dir / "compare.json").read_text())
    assert [entry["name"] for entry in stored] == ["plain", "drop"]
    assert len(stored[0]["trajectory"]["steps"]) == 12
    assert "StepDecay" in stored[0]["trajectory"]["recipe"]
    page = (run_dir / "report.html").read_text()
    assert '<section id="pytorch">' in page and 'href="#pytorch"' in page
    assert page.count('<table class="annlens-parity">') == 2
    assert page.count('<table class="annlens-trajectory">') == 2


def test_set_is_refused_for_a_run_directory(tmp_path: Path) -> None:
    run_dir = run_experiment(tiny(), out=tmp_path / "runs").directory
    result = invoke("compare", run_dir, "--set", "optimizer.lr=1")
    assert result.exit_code == 2
    assert "--set changes an experiment file" in result.stderr
    assert not (run_dir / "compare.json").exists()


def test_a_folder_that_is_not_a_run_directory_is_refused(tmp_path: Path) -> None:
    result = invoke("compare", tmp_path)
    assert result.exit_code == 2
    assert "is not an annlens run directory" in result.stderr


def test_an_experiment_file_is_compared_without_writing_anything(
    experiment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("compare", experiment, "--steps", "1").exit_code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["e.toml"]
