"""The ``annlens`` command line: every command, its messages and exit codes.

Commands: run, report, resume, inspect, datasets, export and compare.
Most tests call the typer app in-process (CliRunner); two start the installed
``annlens`` script and ``python -m annlens.cli.main`` in a child process. An
error annlens raises on purpose exits with status 2 and one message, no
traceback, and leaves no run directory behind.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from annlens.cli.main import app
from annlens.errors import ConfigError
from annlens.experiment import run_experiment
from annlens.io import RunDir
from annlens.io.atomic import write_json
from experiment_support import (
    manifest,
    only_run_dir,
    run_dirs,
    tiny,
    write_experiment,
)

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished tiny run (no figures, no report)."""
    return run_experiment(tiny(), out=tmp_path_factory.mktemp("cli")).directory


def csv_file(folder: Path, name: str, rows: list[str]) -> Path:
    path = folder / name
    path.write_text("\n".join(["a,b,y", *rows]) + "\n")
    return path


# -- run -------------------------------------------------------------------------------


def test_run_with_set_seed_out_and_quiet(tmp_path):
    path = write_experiment(tmp_path / "e.toml", tiny())
    out = tmp_path / "runs"
    result = invoke(
        "run",
        path,
        "--set",
        "training.epochs=1",
        "--set",
        "model.hidden=[8]",
        "--seed",
        "5",
        "--out",
        out,
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(out)
    assert f"run directory: {run_dir}" in result.stdout
    assert "tiny: summary" in result.stdout
    config = RunDir(run_dir).read_config()
    assert (config["seed"], config["training"]["epochs"]) == (5, 1)
    assert config["model"]["hidden"] == [8]
    assert manifest(run_dir)["seed"] == 5
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    assert list(metrics["epoch"]) == [0]


def test_a_bad_experiment_file_exits_2_naming_the_key(tmp_path):
    config = tiny(training={"epoch": 3})
    path = write_experiment(tmp_path / "e.toml", config)
    result = invoke("run", path, "--out", tmp_path / "runs", "--quiet")
    assert result.exit_code == 2
    assert "training.epoch: unknown key (did you mean 'epochs'?)" in result.stderr
    assert "Traceback" not in result.output
    assert run_dirs(tmp_path / "runs") == []


def test_a_bad_set_value_exits_2_naming_the_key_and_value(tmp_path):
    path = write_experiment(tmp_path / "e.toml", tiny())
    result = invoke("run", path, "--set", "training.batch_size=0", "--quiet")
    assert result.exit_code == 2
    assert "training.batch_size: Input should be greater than or equal to 1" in (
        result.stderr
    )
    assert "(got 0)" in result.stderr


def test_a_bad_name_in_a_variant_exits_2_before_anything_runs(tmp_path):
    config = tiny(variants=[{"name": "a"}, {"name": "b", "optimizer": {"name": "x"}}])
    path = write_experiment(tmp_path / "e.toml", config)
    result = invoke("run", path, "--out", tmp_path / "runs", "--quiet")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: variant 'b': unknown optimizer 'x'")
    assert run_dirs(tmp_path / "runs") == []


def test_a_missing_experiment_file_exits_2(tmp_path):
    result = invoke("run", tmp_path / "nowhere.toml", "--quiet")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


# -- bad data through the runner -------------------------------------------------------


def _missing(folder: Path) -> dict:
    return {"path": str(folder / "missing.csv")}


def _no_target(folder: Path) -> dict:
    rows = [f"{i},{i},{i % 2}" for i in range(60)]
    return {"path": str(csv_file(folder, "d.csv", rows)), "target": "z"}


def _text(folder: Path) -> dict:
    rows = [f"{i},{'x' if i == 3 else i},{i % 2}" for i in range(60)]
    return {"path": str(csv_file(folder, "d.csv", rows))}


def _nan(folder: Path) -> dict:
    rows = [f"{i},{'' if i % 7 == 0 else i},{i % 2}" for i in range(60)]
    return {"path": str(csv_file(folder, "d.csv", rows))}


def _one_class(folder: Path) -> dict:
    rows = [f"{i},{i},0" for i in range(60)]
    return {"path": str(csv_file(folder, "d.csv", rows))}


def _few(folder: Path) -> dict:
    rows = [f"{i},{i},{i % 2}" for i in range(30)]  # 18 training samples
    return {"path": str(csv_file(folder, "d.csv", rows))}


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_missing, "data file '{folder}/missing.csv' does not exist"),
        (_no_target, "no target column 'z'; columns: 'a', 'b', 'y'"),
        (
            _text,
            "feature column 'b' is not numeric (value 'x' at data row 3 "
            "(line 5 of d.csv))",
        ),
        (_nan, "9 of 60 rows hold NaN"),
        (_one_class, "target 'y' holds a single class"),
        (_few, "training.batch_size: 18 samples are fewer than one batch of 32"),
    ],
)
def test_bad_data_exits_2_with_one_line_before_training(tmp_path, make, expected):
    data = {"name": "csv", "target": "y", **make(tmp_path)}
    config = tiny(data=data, training={"batch_size": 32})
    path = write_experiment(tmp_path / "e.toml", config)
    result = invoke("run", path, "--out", tmp_path / "runs", "--quiet")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1  # one line
    assert expected.format(folder=tmp_path) in result.stderr
    assert "Traceback" not in result.output
    assert run_dirs(tmp_path / "runs") == []


def test_nan_rows_are_dropped_with_drop_nan(tmp_path):
    data = {"name": "csv", "target": "y", "drop_nan": True, **_nan(tmp_path)}
    path = write_experiment(tmp_path / "e.toml", tiny(data=data))
    result = invoke("run", path, "--out", tmp_path / "runs", "--quiet")
    assert result.exit_code == 0, result.output
    assert len(run_dirs(tmp_path / "runs")) == 1


# -- report, resume, inspect -----------------------------------------------------------


@pytest.mark.slow
def test_report_rebuilds_report_html(tmp_path):
    run_dir = run_experiment(tiny(), out=tmp_path).directory
    assert not (run_dir / "report.html").exists()
    result = invoke("report", run_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"report: {run_dir / 'report.html'}"
    assert "<html" in (run_dir / "report.html").read_text().lower()
    assert list((run_dir / "figures").iterdir()) == []  # output.figures = false


def test_report_on_a_folder_that_is_not_a_run_exits_2(tmp_path):
    result = invoke("report", tmp_path)
    assert result.exit_code == 2
    assert "is not an annlens run directory" in result.stderr


def test_resume_of_a_finished_run_prints_its_summary(finished):
    result = invoke("resume", finished, "--quiet")
    assert result.exit_code == 0, result.output
    assert f"run directory: {finished}" in result.stdout


def test_inspect_a_checkpoint_shows_layers_step_optimizer_and_metrics(finished):
    result = invoke("inspect", finished / "checkpoints" / "base-last")
    assert result.exit_code == 0, result.output
    text = result.stdout
    # two epochs of 6 steps: stored as epoch 1, shown from 1 as epoch 2
    for expected in ("dense_0", "dense_1", "step 12, epoch 2", "optimizer SGD"):
        assert expected in text
    assert "last epoch: loss=" in text


def test_inspect_a_run_shows_status_metrics_and_checkpoints(finished):
    result = invoke("inspect", finished)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "status: completed" in text
    assert "seed: 7" in text
    assert "checkpoints: base-best, base-last" in text
    last = text.split("last epoch of each variant:")[1].splitlines()
    assert last[3].split()[:2] == ["base", "2"]  # epoch 2 of 2, shown from 1
    assert "val_accuracy" in text
    assert "training time (s): " in text  # figures and the report come after


def test_inspect_a_run_leaves_out_what_the_manifest_does_not_know(finished, tmp_path):
    copy = Path(shutil.copytree(finished, tmp_path / "run"))
    manifest = RunDir(copy).read_manifest()
    write_json(RunDir(copy).manifest_path, {**manifest, "git": None})

    text = invoke("inspect", copy).stdout

    assert "git:" not in text
    assert "None" not in text


def test_inspect_of_a_run_that_stopped_early_says_stopped_not_finished(
    finished, tmp_path
):
    copy = Path(shutil.copytree(finished, tmp_path / "run"))
    manifest = RunDir(copy).read_manifest()
    assert "training finished: " in invoke("inspect", copy).stdout
    write_json(RunDir(copy).manifest_path, {**manifest, "status": "interrupted"})

    text = invoke("inspect", copy).stdout

    assert "status: interrupted" in text
    assert "training stopped: " in text and "training finished" not in text


def test_inspect_of_a_running_run_no_process_holds_says_so(finished, tmp_path):
    copy = Path(shutil.copytree(finished, tmp_path / "run"))
    manifest = RunDir(copy).read_manifest()
    write_json(RunDir(copy).manifest_path, {**manifest, "status": "running"})

    killed = invoke("inspect", copy).stdout
    with RunDir(copy).lock():
        alive = invoke("inspect", copy).stdout

    assert "status: running" in killed and "status: running" in alive
    assert "no process holds its lock" in " ".join(killed.split())
    assert f"annlens resume {copy}" in " ".join(killed.split())
    assert "no process holds its lock" not in alive
    assert not (copy / ".lock.json").exists()


def test_inspect_a_missing_path_exits_2(tmp_path):
    result = invoke("inspect", tmp_path / "nothing")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_inspect_a_file_of_a_checkpoint_shows_that_checkpoint(finished):
    result = invoke("inspect", finished / "checkpoints" / "base-last" / "meta.json")
    assert result.exit_code == 0, result.output
    assert "step " in result.stdout
    assert "optimizer " in result.stdout


def test_inspect_a_file_that_is_no_run_says_what_inspect_expects(finished):
    result = invoke("inspect", finished / "config.toml")
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "config.toml' is a file; annlens inspect expects a run directory" in message
    assert "or a checkpoint" in message


# -- datasets and export ---------------------------------------------------------------


def test_datasets_lists_the_builtin_sets():
    result = invoke("datasets")
    assert result.exit_code == 0, result.output
    for name in ("iris", "digits", "moons", "mnist1d", "breast_cancer"):
        assert name in result.stdout


@pytest.mark.parametrize("kind", ["csv", "parquet", "json"])
def test_export_writes_every_table_in_the_format(finished, kind):
    result = invoke("export", finished, "--format", kind)
    assert result.exit_code == 0, result.output
    written = [Path(line) for line in result.stdout.split()]
    assert {p.name for p in written} >= {f"metrics.{kind}", f"statistics.{kind}"}
    metrics = pd.read_parquet(finished / "metrics.parquet")
    path = finished / "export" / f"metrics.{kind}"
    reader = {"csv": pd.read_csv, "parquet": pd.read_parquet, "json": pd.read_json}
    back = reader[kind](path)
    assert list(back.columns) == list(metrics.columns)
    pd.testing.assert_series_equal(back["train_loss"], metrics["train_loss"])


def test_export_refuses_an_unknown_format(finished):
    result = invoke("export", finished, "--format", "xml")
    assert result.exit_code == 2
    message = "--format must be one of csv, parquet, json; got 'xml'"
    assert message in result.stderr


# -- compare ---------------------------------------------------------------------------


@pytest.mark.torch
def test_compare_runs_the_experiment_against_pytorch(tmp_path):
    pytest.importorskip("torch")
    path = write_experiment(tmp_path / "e.toml", tiny())
    result = invoke("compare", path, "--steps", "2")
    assert result.exit_code == 0, result.output
    assert "base: one batch, annlens against PyTorch" in result.stdout
    assert "base: 2 training steps side by side" in result.stdout


# -- real processes --------------------------------------------------------------------


def test_the_installed_script_runs_an_experiment_in_a_git_folder(tmp_path):
    repo = tmp_path / "study"
    repo.mkdir()
    path = write_experiment(repo / "e.toml", tiny(training={"epochs": 1}))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "e.toml"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "study"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()

    script = Path(sys.executable).parent / "annlens"
    out = tmp_path / "runs"
    command = [str(script), "run", str(path), "--out", str(out), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    record = manifest(only_run_dir(out))
    assert record["command"][1:] == command[1:]
    assert record["git"] == {"commit": commit, "dirty": False}
    assert record["status"] == "completed"


def test_the_module_exits_2_with_one_line_on_bad_data(tmp_path):
    data = {"name": "csv", "target": "y", **_nan(tmp_path)}
    path = write_experiment(tmp_path / "e.toml", tiny(data=data))
    command = [sys.executable, "-m", "annlens.cli.main", "run", str(path), "--quiet"]
    done = subprocess.run(
        [*command, "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: d.csv: 9 of 60 rows hold NaN")
    assert "data.drop_nan = true" in lines[0]


@pytest.mark.parametrize(
    "content, words",
    [
        (b'name = "x"\n[training\n', ["not valid TOML", "line 2"]),
        (b"\xff\xfe\x00n", ["not UTF-8", "save it as UTF-8"]),
        (b"seed = -1\n", ["seed", "greater than or equal to 0"]),
    ],
)
def test_a_broken_experiment_file_is_one_line_without_traceback(
    tmp_path, content, words
):
    path = tmp_path / "broken.toml"
    path.write_bytes(content)
    result = invoke("run", str(path), "--out", str(tmp_path / "runs"))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output
    assert not (tmp_path / "runs").exists()


def test_a_run_directory_with_a_damaged_manifest_is_refused_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text("{ not json")
    result = invoke("inspect", str(run_dir))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "manifest.json' is not valid JSON" in " ".join(result.output.split())


def test_export_into_a_file_is_refused_naming_it(finished, tmp_path):
    from annlens.io import export as export_tables

    blocker = tmp_path / "export"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError) as caught:
        export_tables(finished, format="csv", out_dir=blocker)
    assert str(caught.value).startswith(f"cannot export into {str(blocker)!r}")
