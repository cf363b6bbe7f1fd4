"""Command-line edges: ``--set`` with a table or a value that is not TOML,
``--out`` that is a file or cannot be made, an empty experiment file,
regression sets in ``annlens datasets``, and ``annlens resume`` of a run that
already completed."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from annlens.cli.main import app
from annlens.errors import ConfigError
from annlens.experiment import load_config, resume_experiment, run_experiment
from annlens.io import RunDir
from experiment_support import only_run_dir, run_dirs, tiny, write_experiment

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args])


@pytest.fixture
def experiment_file(tmp_path) -> Path:
    config = tiny(
        model={"hidden": [16], "activation": "tanh"},
        training={"epochs": 1, "early_stopping": {"monitor": "val_accuracy"}},
    )
    return write_experiment(tmp_path / "e.toml", config)


# -- --set with a table ----------------------------------------------------------------


def test_set_with_a_table_merges_it_into_the_files_table(experiment_file):
    config = load_config(experiment_file, ["model={dropout=0.1}"])
    assert config.model.dropout == 0.1
    assert config.model.hidden == [16] and config.model.activation == "tanh"


def test_set_with_a_nested_table_keeps_the_keys_it_does_not_name(experiment_file):
    config = load_config(experiment_file, ["training={early_stopping={patience=2}}"])
    stopping = config.training.early_stopping
    assert stopping.patience == 2 and stopping.monitor == "val_accuracy"
    assert config.training.epochs == 1


def test_set_with_settings_of_the_same_optimizer_keeps_the_others(experiment_file):
    config = load_config(experiment_file, ["optimizer={lr=0.5}"])
    assert config.optimizer.name == "sgd"
    assert config.optimizer.settings() == {"lr": 0.5, "momentum": 0.9}


def test_set_with_a_table_naming_another_optimizer_replaces_the_table(
    experiment_file,
):
    config = load_config(experiment_file, ['optimizer={name="adam", lr=0.01}'])
    assert config.optimizer.name == "adam"
    assert config.optimizer.settings() == {"lr": 0.01}  # sgd's momentum is gone


def test_run_with_set_table_keeps_the_rest_of_the_section(tmp_path, experiment_file):
    out = tmp_path / "runs"
    result = invoke(
        "run", experiment_file, "--set", "model={hidden=[8]}", "--out", out, "--quiet"
    )
    assert result.exit_code == 0, result.output
    saved = RunDir(only_run_dir(out)).read_config()["model"]
    assert saved["hidden"] == [8] and saved["activation"] == "tanh"


# -- --out that is a file --------------------------------------------------------------


def test_out_naming_an_existing_file_is_refused_naming_it(tmp_path, experiment_file):
    target = tmp_path / "results.txt"
    target.write_text("keep me\n")

    result = invoke("run", experiment_file, "--out", target, "--quiet")

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert f"the output folder '{target}'" in message
    assert "is an existing file, not a folder" in message
    assert "expected a folder to hold run directories" in message
    assert "Traceback" not in result.output
    assert target.read_text() == "keep me\n"


def test_out_inside_a_file_is_refused_naming_the_file(tmp_path, experiment_file):
    blocker = tmp_path / "results.txt"
    blocker.write_text("")

    with pytest.raises(ConfigError) as caught:
        run_experiment(load_config(experiment_file), out=blocker / "runs")

    assert f"inside '{blocker}', which is an existing file" in str(caught.value)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_out_where_no_folder_can_be_made_is_one_line_naming_it(experiment_file):
    result = invoke("run", experiment_file, "--out", "/proc/x", "--quiet")

    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    message = " ".join(result.stderr.split())
    assert len(lines) == 1, result.stderr
    assert "cannot write a run directory into the output folder '/proc/x'" in message
    assert "No such file or directory" in message
    assert "help: choose another --out" in message


def test_out_under_a_read_only_folder_is_refused_before_anything_is_built(
    tmp_path, experiment_file, monkeypatch
):
    # os.access stands in for a read-only folder: root may write anywhere
    monkeypatch.setattr(
        "annlens.experiment.output_folder.os.access", lambda path, mode: False
    )
    with pytest.raises(ConfigError) as caught:
        run_experiment(load_config(experiment_file), out=tmp_path / "runs")

    message = str(caught.value)
    assert f"output folder '{tmp_path / 'runs'}'" in message
    assert f"Permission denied at '{tmp_path}'" in message
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(not hasattr(os, "ST_RDONLY"), reason="POSIX mount flags")
def test_out_on_a_read_only_file_system_is_refused_naming_it(
    tmp_path, experiment_file, monkeypatch
):
    # os.access and statvfs stand in for a read-only mount: root may write anywhere
    class Mount:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(
        "annlens.experiment.output_folder.os.access", lambda path, mode: False
    )
    monkeypatch.setattr(
        "annlens.experiment.output_folder.os.statvfs", lambda path: Mount()
    )
    with pytest.raises(ConfigError) as caught:
        run_experiment(load_config(experiment_file), out=tmp_path / "runs")

    assert f"Read-only file system at '{tmp_path}'" in str(caught.value)
    assert not (tmp_path / "runs").exists()


# -- --set with a value that is not TOML -----------------------------------------------


@pytest.mark.parametrize(
    ("value", "expects"),
    [
        ("training.epochs=5x", "training.epochs expects an integer"),
        ("regularization.l2=1e-3.", "regularization.l2 expects a number"),
        ("output.report=True", "output.report expects true or false"),
        ("model.hidden=[8,", "model.hidden expects a list"),
        ("optimizer.lr=.5", "it looks like a number or true or false"),
        ("model.init={name='normal'", "it looks like a table"),
    ],
)
def test_set_with_a_value_that_is_not_toml_is_refused_naming_what_the_key_expects(
    tmp_path, experiment_file, value, expects
):
    result = invoke("run", experiment_file, "--set", value, "--out", tmp_path / "r")

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    raw = value.split("=", 1)[1]
    assert f"{raw!r} is not a valid TOML value" in message
    assert expects in message
    assert "help: write it in TOML" in message
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("value", ["optimizer.name=sgd", "name=plain words"])
def test_set_with_bare_text_where_text_is_meant_still_works(value):
    from annlens.experiment.overrides import check_set_values

    check_set_values([value])  # no error: a name needs no quotes


# -- an empty experiment file ----------------------------------------------------------


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n# and another\n"])
def test_an_experiment_file_without_settings_is_refused(tmp_path, content):
    path = tmp_path / "empty.toml"
    path.write_text(content)

    result = invoke("run", path, "--out", tmp_path / "runs", "--quiet")

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert f"experiment file '{path}' holds no settings" in message
    assert "without a file runs the built-in experiment" in message
    assert run_dirs(tmp_path / "runs") == []


def test_a_file_with_only_a_name_is_the_default_experiment(tmp_path):
    path = tmp_path / "named.toml"
    path.write_text('name = "defaults"\n')

    config = load_config(path)

    assert config.name == "defaults" and config.data.name == "digits"


# -- datasets --------------------------------------------------------------------------


def test_datasets_shows_a_regression_set_without_classes_in_words():
    result = runner.invoke(app, ["datasets"], terminal_width=200)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "diabetes" in line)
    assert "none (regression)" in row
    assert "None" not in result.stdout


# -- resume of a completed run ------------------------------------------------------


def _contents(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def completed(tmp_path) -> Path:
    return run_experiment(tiny(), out=tmp_path).directory


def test_resume_of_a_completed_run_says_so_and_changes_no_file(completed):
    before = _contents(completed)

    result = invoke("resume", completed, "--quiet")

    assert result.exit_code == 0, result.output
    assert f"run {completed} is already complete; nothing was changed" in (
        " ".join(result.stdout.split())
    )
    assert "tiny: summary" in result.stdout
    assert _contents(completed) == before


def test_resume_experiment_reads_a_completed_run_back_as_it_is(completed):
    stored = pd.read_parquet(completed / "metrics.parquet")

    run = resume_experiment(completed)

    pd.testing.assert_frame_equal(run.metrics, stored)
    assert (
        run.variants["base"].history.rows[-1]["loss"] == stored["train_loss"].iloc[-1]
    )
    assert "resumed" not in RunDir(completed).read_manifest()


@pytest.mark.parametrize(
    "value", ["optimizer.lr=1e-3.", "model.hidden=[8,", "seed=True"]
)
def test_load_config_refuses_a_mistyped_override_as_the_command_line_does(value):
    with pytest.raises(ConfigError, match="is not a valid TOML value"):
        load_config(None, [value])


def test_data_too_large_for_memory_is_one_error_line(tmp_path):
    config = tiny(data={"name": "moons", "n_samples": 10**13})
    path = write_experiment(tmp_path / "huge.toml", config)

    result = invoke("run", path, "--quiet", "--out", tmp_path / "runs")

    assert result.exit_code == 2
    assert "Traceback" not in result.output
    message = " ".join(result.stderr.split())
    assert message.startswith("error: out of memory: Unable to allocate")
    assert "help: use less data (data.n_samples" in message


def test_a_negative_seed_is_refused_naming_the_option(tmp_path):
    result = invoke("run", "--seed", "-1", "--out", tmp_path, "--quiet")

    assert result.exit_code == 2
    assert "--seed" in result.output
    assert list(tmp_path.iterdir()) == []
