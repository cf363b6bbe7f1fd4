"""The run directory: layout, config, manifest, tables, checkpoints and exports."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess

import numpy as np
import pandas as pd
import pytest

from annlens.errors import ConfigError
from annlens.io import STATISTICS_COLUMNS, RunDir, export, git_state
from annlens.layers import Dense
from annlens.model import Sequential

WHEN = dt.datetime(2024, 5, 1, 12, 30, 15)


@pytest.fixture
def run(tmp_path):
    return RunDir.create(tmp_path, "digits mlp", when=WHEN)


def statistics_rows():
    return pd.DataFrame(
        {
            "step": [1, 1, 2],
            "epoch": [0, 0, 0],
            "variant": ["lr=0.1"] * 3,
            "layer": ["dense_0", "dense_1", "dense_0"],
            "stage": ["gradient"] * 3,
            "quantity": ["norm"] * 3,
            "value": [0.5, 0.25, np.nan],
        }
    )


def test_create_makes_a_timestamped_folder_with_its_subfolders(run, tmp_path):
    assert run.path == tmp_path / "20240501-123015-digits_mlp"
    assert run.checkpoints_dir.is_dir() and run.figures_dir.is_dir()
    assert run.report_path == run.path / "report.html"


def test_create_never_reuses_a_folder(tmp_path, run):
    again = RunDir.create(tmp_path, "digits mlp", when=WHEN)
    third = RunDir.create(tmp_path, "digits mlp", when=WHEN)

    assert again.name == "20240501-123015-digits_mlp-2"
    assert third.name == "20240501-123015-digits_mlp-3"


def test_a_long_experiment_name_is_cut_to_100_characters_in_the_folder(tmp_path):
    run = RunDir.create(tmp_path, "x" * 300, when=WHEN)

    assert run.path.name == "20240501-123015-" + "x" * 100
    assert run.checkpoints_dir.is_dir()


def test_config_is_written_as_toml_and_reads_back(run):
    config = {
        "seed": 3,
        "data": {"name": "digits", "path": None, "val_fraction": 0.2},
        "model": {"hidden": (64, 32), "activation": "relu"},
        "out": run.path,
    }

    path = run.write_config(config)

    assert path.name == "config.toml"
    assert run.read_config() == {
        "seed": 3,
        "data": {"name": "digits", "val_fraction": 0.2},
        "model": {"hidden": [64, 32], "activation": "relu"},
        "out": str(run.path),
    }


def test_config_from_a_pydantic_model_is_dumped_first(run):
    pydantic = pytest.importorskip("pydantic")

    class Settings(pydantic.BaseModel):
        lr: float = 0.1
        layers: list[int] = [8, 8]

    run.write_config(Settings())

    assert run.read_config() == {"lr": 0.1, "layers": [8, 8]}


def test_config_holding_an_object_is_refused_by_name(run):
    with pytest.raises(ConfigError, match="cannot write object"):
        run.write_config({"hook": object()})


def test_manifest_records_versions_seed_command_and_times(run):
    started = run.start(seed=7, command=["annlens", "run", "x.toml"])

    finished = run.finish("completed")

    stored = run.read_manifest()
    assert stored == finished
    assert stored["seed"] == 7 and stored["command"] == ["annlens", "run", "x.toml"]
    assert stored["numpy"] == np.__version__ and stored["annlens"]
    assert stored["python"].count(".") == 2 and stored["host"] and stored["platform"]
    assert started["status"] == "running" and stored["status"] == "completed"
    begin = dt.datetime.fromisoformat(stored["started"])
    end = dt.datetime.fromisoformat(stored["finished"])
    assert stored["duration_s"] == pytest.approx(
        (end - begin).total_seconds(), abs=1e-3
    )


def test_manifest_records_the_git_commit_of_a_repository(run, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    try:
        for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
            subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()

    manifest = run.start(seed=0, source_dir=repo)

    assert manifest["git"] == {"commit": head, "dirty": False}


def test_git_state_is_none_outside_a_repository(tmp_path):
    assert git_state(tmp_path) is None
    assert git_state(None) is None


def test_open_refuses_a_folder_without_a_manifest(tmp_path):
    with pytest.raises(ConfigError, match="not an annlens run directory"):
        RunDir.open(tmp_path)


def test_metrics_table_round_trips(run):
    rows = [{"epoch": 0, "loss": 1.5, "val_loss": 1.7}, {"epoch": 1, "loss": 0.9}]

    run.write_metrics(rows)

    frame = run.read_metrics()
    assert frame["epoch"].tolist() == [0, 1] and frame["loss"].tolist() == [1.5, 0.9]
    assert np.isnan(frame["val_loss"][1])


def test_statistics_table_keeps_its_columns_and_types(run):
    run.write_statistics(statistics_rows())

    frame = run.read_statistics()
    assert tuple(frame.columns) == STATISTICS_COLUMNS
    assert frame["step"].dtype == np.int64 and frame["value"].dtype == np.float64
    assert frame["layer"].tolist() == ["dense_0", "dense_1", "dense_0"]


def test_statistics_without_variant_get_the_default_one(run):
    run.write_statistics(statistics_rows().drop(columns="variant"))

    assert set(run.read_statistics()["variant"]) == {"default"}


def test_statistics_with_a_missing_column_are_refused(run):
    with pytest.raises(ConfigError, match=r"missing \['quantity'\]"):
        run.write_statistics(statistics_rows().drop(columns="quantity"))


def test_statistics_stream_in_chunks_and_appear_on_close(run):
    rows = statistics_rows()
    with run.statistics_writer() as writer:
        writer.write(rows.iloc[:2])
        assert not run.statistics_path.exists()
        writer.write(rows.iloc[2:])

    frame = run.read_statistics()
    assert len(frame) == 3 and frame["step"].tolist() == [1, 1, 2]
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".")] == []


def test_a_failed_stream_leaves_no_table(run):
    with pytest.raises(RuntimeError), run.statistics_writer() as writer:
        writer.write(statistics_rows())
        raise RuntimeError("collector failed")

    assert not run.statistics_path.exists()
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".")] == []


def test_checkpoints_live_under_last_and_best(run):
    model = Sequential([Dense(2, 2)], seed=0, dtype="float64")

    run.save_checkpoint(model, "last")
    run.save_checkpoint(model, "best")

    assert sorted(p.name for p in run.checkpoints_dir.iterdir()) == ["best", "last"]
    assert run.load_checkpoint("best").architecture["layers"][0]["type"] == "Dense"


def test_figure_paths_stay_inside_figures(run):
    assert run.figure_path("loss.png") == run.figures_dir / "loss.png"
    with pytest.raises(ConfigError, match="plain file name"):
        run.figure_path("../escape.png")


def test_report_is_written(run):
    run.write_report("<html>ok</html>")

    assert run.report_path.read_text() == "<html>ok</html>"


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export_converts_every_table(run, fmt):
    run.write_metrics([{"epoch": 0, "loss": 1.0}, {"epoch": 1, "loss": 0.5}])
    run.write_statistics(statistics_rows())

    paths = export(run.path, format=fmt)

    assert sorted(p.name for p in paths) == [f"metrics.{fmt}", f"statistics.{fmt}"]
    statistics = run.export_dir / f"statistics.{fmt}"
    if fmt == "csv":
        frame = pd.read_csv(statistics)
    elif fmt == "json":
        frame = pd.DataFrame(json.loads(statistics.read_text()))
    else:
        frame = pd.read_parquet(statistics)
    assert tuple(frame.columns) == STATISTICS_COLUMNS
    assert frame["value"].tolist()[:2] == [0.5, 0.25] and pd.isna(frame["value"][2])


def test_export_refuses_an_unknown_format(run):
    run.write_metrics([{"epoch": 0, "loss": 1.0}])

    with pytest.raises(ConfigError, match="csv.*parquet.*json"):
        export(run, format="xlsx")


def test_export_of_a_run_without_tables_says_so(run):
    with pytest.raises(ConfigError, match=r"holds tables \[\]"):
        export(run)


def test_no_temporary_files_are_left_behind(run):
    run.write_config({"a": 1})
    run.start(seed=0)
    run.write_metrics([{"epoch": 0, "loss": 1.0}])
    run.finish()

    assert sorted(p.name for p in run.path.iterdir()) == [
        "checkpoints",
        "config.toml",
        "figures",
        "manifest.json",
        "metrics.parquet",
    ]


def test_a_damaged_manifest_is_refused_naming_the_file(run):
    run.start(seed=0)
    run.manifest_path.write_text("{")

    with pytest.raises(ConfigError) as caught:
        run.read_manifest()

    message = str(caught.value)
    assert message.startswith(f"{str(run.manifest_path)!r} is not valid JSON")
    assert "help: the file is damaged" in message


def test_a_damaged_config_is_refused_naming_the_file(run):
    run.write_config({"name": "x"})
    run.config_path.write_text("x =")

    with pytest.raises(ConfigError, match=r"config.toml' is not valid TOML"):
        run.read_config()


def test_a_missing_or_damaged_table_is_refused_naming_the_file(run):
    with pytest.raises(ConfigError, match=r"metrics.parquet' is missing"):
        run.read_metrics()

    run.metrics_path.write_bytes(b"junk")
    with pytest.raises(ConfigError, match=r"cannot read the table .*metrics.parquet"):
        run.read_metrics()


def test_export_refuses_a_damaged_table_before_writing_any(run):
    run.write_metrics([{"epoch": 0, "loss": 1.0}])
    run.write_statistics(statistics_rows())
    run.table_path("statistics").write_bytes(b"junk")

    with pytest.raises(ConfigError, match=r"cannot read the table .*statistics"):
        export(run)

    assert not run.export_dir.exists()


def test_export_of_a_folder_without_a_manifest_leaves_no_lock_file(run):
    run.write_metrics([{"epoch": 0, "loss": 1.0}])
    assert not run.manifest_path.exists()

    export(run, format="json")

    assert not (run.path / ".lock").exists()
    assert not (run.path / ".lock.json").exists()
    assert (run.export_dir / "metrics.json").exists()


def test_a_failed_export_leaves_no_lock_file(run):
    run.write_metrics([{"epoch": 0, "loss": 1.0}])

    with pytest.raises(ConfigError, match="cannot export"):
        export(run, tables=["nothing"])

    assert sorted(p.name for p in run.path.iterdir()) == [
        "checkpoints",
        "figures",
        "metrics.parquet",
    ]


def test_export_keeps_a_lock_file_it_did_not_make(run):
    run.write_metrics([{"epoch": 0, "loss": 1.0}])
    with run.lock():
        pass
    assert (run.path / ".lock").exists()

    export(run)

    assert (run.path / ".lock").exists()
    with run.lock():  # free again
        pass


def test_export_refuses_one_table_name_given_as_a_string(run):
    run.write_metrics([{"epoch": 0, "loss": 1.0}])

    with pytest.raises(ConfigError, match=r"help: tables=\['metrics'\]"):
        export(run, tables="metrics")  # type: ignore[arg-type]


def test_a_run_directory_under_a_file_is_refused(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")

    with pytest.raises(ConfigError, match="cannot make a run directory under"):
        RunDir.create(blocker / "runs", "r")


def test_json_export_keeps_every_float_exactly(run):
    values = [2.3283064365386963e-11, -1.0 / 3.0, 1e-300, 123456.789012345678, np.inf]
    frame = (
        statistics_rows()
        .iloc[[0] * len(values)]
        .assign(step=range(len(values)), value=values)
    )
    run.write_statistics(frame)

    export(run, format="json")

    rows = json.loads((run.export_dir / "statistics.json").read_text())
    assert [row["value"] for row in rows] == [*values[:4], None]
    assert [row["step"] for row in rows] == list(range(len(values)))
    assert list(rows[0]) == list(STATISTICS_COLUMNS)
