"""A relative ``data.path`` is read against the experiment file's folder, and
the run stores it absolute, so that a run starts and resumes from anywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tomllib
from typer.testing import CliRunner

from annlens.cli.main import app
from annlens.experiment import load_config
from experiment_support import only_run_dir, tiny, write_experiment


def _csv(path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = ["a,b,label"] + [
        f"{x:.3f},{y:.3f},{int(x > y)}" for x, y in rng.normal(size=(60, 2))
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def _experiment(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _csv(folder / "big.csv")
    config = tiny(data={"name": "csv", "path": "big.csv", "target": "label"})
    return write_experiment(folder / "exp.toml", config)


def test_a_relative_data_path_is_read_against_the_experiment_files_folder(
    tmp_path, monkeypatch
):
    file = _experiment(tmp_path / "project")
    monkeypatch.chdir(tmp_path)
    config = load_config(file)
    assert config.data.path == str((tmp_path / "project" / "big.csv").resolve())


def test_a_relative_data_path_given_with_set_is_read_against_the_working_dir(
    tmp_path, monkeypatch
):
    file = _experiment(tmp_path / "project")
    monkeypatch.chdir(tmp_path)
    config = load_config(file, ["data.path='other.csv'"])
    assert config.data.path == str((tmp_path / "other.csv").resolve())


def test_a_variants_relative_data_path_is_read_against_the_files_folder(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    config = tiny(
        data={"name": "csv", "path": "big.csv", "target": "label"},
        variants=[{"name": "b", "data": {"path": "sub/b.csv"}}],
    )
    loaded = load_config(write_experiment(folder / "exp.toml", config))
    assert loaded.variants[0].data["path"] == str((folder / "sub" / "b.csv").resolve())


def test_a_run_started_and_resumed_elsewhere_finds_its_data(tmp_path, monkeypatch):
    file = _experiment(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(file), "--out", "runs", "--quiet"])
    assert result.exit_code == 0, result.output
    run = only_run_dir(elsewhere / "runs")
    stored = tomllib.loads((run / "config.toml").read_text())
    assert stored["data"]["path"] == str((file.parent / "big.csv").resolve())

    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output


def test_a_plain_npy_array_takes_its_target_column_by_index(tmp_path):
    from annlens.experiment.build import build_data

    rng = np.random.default_rng(0)
    table = np.column_stack([rng.normal(size=(40, 3)), np.arange(40) % 2])
    np.save(tmp_path / "xy.npy", table)
    config = {"data": {"name": "npy", "path": "xy.npy", "target": 3}}
    path = write_experiment(tmp_path / "e.toml", config)

    data = build_data(load_config(path))

    assert data.n_features == 3
    assert data.task == "classification"


def test_a_target_that_is_neither_text_nor_an_index_names_the_key(tmp_path):
    import pytest

    from annlens.errors import ConfigError

    config = {"data": {"name": "npy", "path": "xy.npy", "target": True}}
    path = write_experiment(tmp_path / "e.toml", config)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (
        "data.target: Input should be a valid string or a valid integer (got True)"
        in str(caught.value)
    )
