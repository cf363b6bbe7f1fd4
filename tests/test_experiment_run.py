"""run_experiment: the run directory, the Python API, reproducibility, checkpoints.

One tiny two-variant run is shared by the tests that only read it.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import annlens
from annlens.errors import ConfigError
from annlens.experiment import Run, run_experiment, validate
from annlens.experiment.build import build_all
from annlens.io import STATISTICS_COLUMNS, RunDir, load_checkpoint
from experiment_support import (
    STEPS_PER_EPOCH,
    assert_same_run,
    assert_same_tensors,
    checkpoint_tensors,
    manifest,
    only_run_dir,
    tiny,
    two_variants,
    write_experiment,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    """The two-variant run, from a dict config."""
    out = tmp_path_factory.mktemp("shared") / "runs"
    return run_experiment(two_variants(), out=out)


# -- the run directory -----------------------------------------------------------------


def test_the_run_directory_holds_config_manifest_tables_and_checkpoints(run):
    names = {p.name for p in run.directory.iterdir()}
    assert {
        "config.toml",
        "manifest.json",
        "metrics.parquet",
        "statistics.parquet",
        "findings.json",
        "checkpoints",
        "figures",
    } <= names
    checkpoints = {p.name for p in (run.directory / "checkpoints").iterdir()}
    for variant in ("plain", "drop"):
        assert {f"{variant}-last", f"{variant}-best"} <= checkpoints


def test_the_saved_config_has_every_default_and_reloads_to_the_same_experiment(run):
    stored = RunDir.open(run.directory).read_config()
    assert stored["collect"]["tensor_budget_mb"] == 64.0  # a default, filled in
    assert stored["training"]["nan_guard"] is True
    reloaded = validate(stored)
    assert reloaded.model_dump(exclude={"optimizer", "variants"}) == (
        run.experiment.model_dump(exclude={"optimizer", "variants"})
    )
    assert run.experiment == validate(two_variants())


def test_the_saved_config_records_the_optimizers_default_hyperparameters(run):
    stored = RunDir.open(run.directory).read_config()

    assert stored["optimizer"] == {
        "name": "sgd",
        "lr": 0.1,  # the file's
        "momentum": 0.9,  # the file's
        "dampening": 0.0,
        "nesterov": False,
        "weight_decay": 0.0,
    }
    adam = stored["variants"][1]["optimizer"]  # names another optimizer
    assert adam["lr"] == 0.01 and adam["betas"] == [0.9, 0.999]
    assert adam["eps"] == 1e-8
    assert "momentum" not in stored["variants"][0].get("optimizer", {})


def test_the_saved_config_records_the_schedules_and_the_losss_defaults(tmp_path):
    config = two_variants(loss={"name": "softmax_cross_entropy"})
    stored = RunDir.open(run_experiment(config, out=tmp_path).directory).read_config()

    assert stored["loss"] == {
        "name": "softmax_cross_entropy",
        "label_smoothing": 0.0,
        "reduction": "mean",
    }
    assert stored["schedule"] == {"name": "constant"}  # none is built
    step = stored["variants"][0]["schedule"]
    assert step == {"name": "step", "step_size": 1, "gamma": 0.5, "unit": "epoch"}


def test_the_saved_config_builds_the_same_objects(run):
    stored = RunDir.open(run.directory).read_config()

    def described(parts):
        return (parts.optimizer.base, repr(parts.schedule), repr(parts.loss))

    again = {parts.name: described(parts) for parts in build_all(validate(stored))}

    assert again == {
        name: described(result.parts) for name, result in run.variants.items()
    }


def test_a_variant_naming_the_base_optimizer_keeps_merging_into_it(tmp_path):
    config = tiny(variants=[{"name": "same", "optimizer": {"name": "sgd"}}])
    run = run_experiment(config, out=tmp_path)
    stored = RunDir.open(run.directory).read_config()

    assert stored["variants"][0]["optimizer"] == {"name": "sgd"}
    again = build_all(validate(stored))[0].optimizer.base
    assert again["lr"] == 0.1 and again["momentum"] == 0.9


def test_the_manifest_records_versions_seed_times_and_command(run):
    record = manifest(run.directory)
    assert record["annlens"] == annlens.__version__
    assert record["numpy"] == np.__version__
    assert record["python"] == platform.python_version()
    assert record["seed"] == 7
    assert record["status"] == "completed"
    assert record["command"] == list(sys.argv)
    assert record["git"] is not None  # no experiment file: annlens's own commit
    assert record["started"] <= record["finished"]
    assert record["duration_s"] >= 0


def test_metrics_hold_one_row_per_variant_and_epoch(run):
    metrics = pd.read_parquet(run.directory / "metrics.parquet")
    assert list(metrics["variant"]) == ["plain"] * 3 + ["drop"] * 3
    assert list(metrics["epoch"]) == [0, 1, 2] * 2
    for column in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
        assert metrics[column].notna().all(), column
    # the test scores sit on each variant's last row
    assert metrics["test_accuracy"].notna().tolist() == [False, False, True] * 2
    # the step schedule halved the learning rate after each epoch
    assert metrics[metrics.variant == "plain"]["lr"].tolist() == [0.1, 0.05, 0.025]


def test_statistics_are_the_long_table_in_parquet(run):
    statistics = pd.read_parquet(run.directory / "statistics.parquet")
    assert tuple(statistics.columns) == STATISTICS_COLUMNS
    assert set(statistics["variant"]) == {"plain", "drop"}
    assert set(statistics["layer"]) >= {"dense_0", "dense_1"}
    # per-step quantities every collect.every = 5 steps of each variant's 18
    loss = statistics[(statistics.stage == "model") & (statistics.quantity == "loss")]
    assert sorted(set(loss["step"])) == [0, 5, 10, 15]
    assert len(loss) == 4 * 2
    assert statistics["value"].dtype == np.float64


# -- the Python API --------------------------------------------------------------------


def test_run_experiment_returns_models_histories_and_statistics(run):
    assert list(run.variants) == ["plain", "drop"]
    drop = run.variants["drop"]
    assert [row["epoch"] for row in drop.history.rows] == [0, 1, 2]
    assert drop.model.state.step == 3 * STEPS_PER_EPOCH
    assert isinstance(run.statistics, pd.DataFrame)
    pd.testing.assert_frame_equal(
        run.statistics, pd.read_parquet(run.directory / "statistics.parquet")
    )
    pd.testing.assert_frame_equal(
        drop.statistics.reset_index(drop=True),
        run.statistics[run.statistics.variant == "drop"].reset_index(drop=True),
        check_dtype=False,
    )


def test_run_model_and_history_need_a_single_variant(run):
    with pytest.raises(ConfigError, match=r"variants \['plain', 'drop'\]"):
        run.model  # noqa: B018


def test_a_run_without_variants_has_one_model_and_history(tmp_path):
    result = annlens.run_experiment(tiny(), out=tmp_path)
    assert list(result.variants) == ["base"]
    assert result.model is result.variants["base"].model
    assert len(result.history.rows) == 2
    assert set(result.statistics["variant"]) == {"base"}


def test_the_last_checkpoint_holds_the_trained_model(run):
    data = run.variants["drop"].parts.data
    model = load_checkpoint(run.directory / "checkpoints" / "drop-last").build_model()
    expected = run.variants["drop"].model.predict(data.x_test)
    assert np.array_equal(model.predict(data.x_test), expected)


def test_without_validation_data_the_best_checkpoint_follows_the_loss(tmp_path):
    result = run_experiment(tiny(data={"val_fraction": 0.0}), out=tmp_path)
    assert (result.directory / "checkpoints" / "base-best").is_dir()


def test_a_step_limit_stops_training_mid_epoch(tmp_path):
    result = run_experiment(tiny(training={"steps": 8}), out=tmp_path)
    assert result.model.state.step == 8
    assert [row["epoch"] for row in result.history.rows] == [0, 1]


def test_a_one_cycle_schedule_may_end_at_the_step_limit(tmp_path):
    schedule = {"name": "one_cycle", "max_lr": 0.1, "total_steps": 8}
    config = tiny(training={"steps": 8}, schedule=schedule)
    result = run_experiment(config, out=tmp_path)
    assert result.model.state.step == 8


def test_a_schedule_too_short_for_the_run_is_refused_before_the_run_directory(
    tmp_path,
):
    schedule = {"name": "one_cycle", "max_lr": 0.1, "total_steps": 7}
    config = tiny(training={"steps": 8}, schedule=schedule)
    with pytest.raises(ConfigError, match=r"help: set total_steps=8 \(the step"):
        run_experiment(config, out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_batchnorm_with_a_batch_size_of_one_is_refused_before_the_run_directory(
    tmp_path,
):
    config = tiny(model={"batchnorm": True}, training={"batch_size": 1})
    with pytest.raises(ConfigError, match="batch_size=1 every batch holds 1"):
        run_experiment(config, out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_rows_with_nan_are_dropped_when_asked(tmp_path):
    rows = ["a,b,y"] + [f"{i},{'' if i % 7 == 0 else i * 2},{i % 2}" for i in range(80)]
    path = tmp_path / "nan.csv"
    path.write_text("\n".join(rows) + "\n")
    data = {"name": "csv", "path": str(path), "target": "y", "drop_nan": True}
    result = run_experiment(tiny(data=data), out=tmp_path / "runs")
    kept = result.variants["base"].parts.data
    assert len(kept.y_train) + len(kept.y_val) + len(kept.y_test) == 80 - 12


def test_spectra_every_takes_singular_values_at_its_multiples(tmp_path):
    per_epoch = run_experiment(tiny(collect={"every": 1}), out=tmp_path).statistics
    stepped = run_experiment(
        tiny(collect={"every": 1, "spectra_every": 3}), out=tmp_path
    ).statistics

    def steps(statistics):
        return set(statistics[statistics.quantity == "effective_rank"]["step"])

    assert steps(per_epoch) == {0, STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH}
    assert steps(stepped) and all(step % 3 == 0 for step in steps(stepped))
    assert 2 * STEPS_PER_EPOCH not in steps(stepped)


# -- the git commit of the experiment's folder -----------------------------------------


def test_the_manifest_holds_the_git_commit_of_the_experiment_folder(tmp_path):
    repo = tmp_path / "study"
    repo.mkdir()
    path = write_experiment(repo / "e.toml", tiny())

    def git(*args: str) -> str:
        return subprocess.run(
            [
                "git",
                "-C",
                str(repo),
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                *args,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    git("init", "-q")
    git("add", "e.toml")
    git("commit", "-q", "-m", "study")
    result = run_experiment(tiny(), out=tmp_path / "runs", source=path)
    assert manifest(result.directory)["git"] == {
        "commit": git("rev-parse", "HEAD"),
        "dirty": False,
    }


# -- reproducibility -------------------------------------------------------------------


def test_the_same_experiment_and_seed_give_identical_results(run, tmp_path):
    again = run_experiment(two_variants(), out=tmp_path)
    assert_same_run(run.directory, again.directory, ["plain", "drop"])
    pd.testing.assert_frame_equal(run.statistics, again.statistics, check_exact=True)


def test_another_seed_gives_other_weights_from_the_start():
    first, second = (build_all(validate(two_variants(seed=seed)))[1] for seed in (7, 8))
    assert not np.array_equal(
        first.model.layer("dense_0").params["W"],
        second.model.layer("dense_0").params["W"],
    )


# -- checkpoints in another process and in PyTorch -------------------------------------


def test_a_checkpoint_loads_in_a_fresh_process_and_predicts_identically(run, tmp_path):
    data = run.variants["drop"].parts.data
    np.save(tmp_path / "x.npy", data.x_test)
    checkpoint = run.directory / "checkpoints" / "drop-last"
    script = (
        "import sys, numpy as np\n"
        "from annlens.io import load_checkpoint\n"
        "model = load_checkpoint(sys.argv[1]).build_model()\n"
        "np.save(sys.argv[3], model.predict(np.load(sys.argv[2])))\n"
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(checkpoint),
            str(tmp_path / "x.npy"),
            str(tmp_path / "y.npy"),
        ],
        check=True,
        timeout=120,
    )
    predicted = np.load(tmp_path / "y.npy")
    expected = run.variants["drop"].model.predict(data.x_test)
    assert predicted.dtype == expected.dtype
    assert np.array_equal(predicted, expected)


@pytest.mark.torch
def test_checkpoint_tensors_load_into_the_pytorch_twin(run):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    checkpoint = run.directory / "checkpoints" / "drop-last"
    tensors = load_file(checkpoint / "tensors.safetensors")
    twin = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3)
    )
    twin.append(torch.nn.Linear(16, 3))
    with torch.no_grad():
        for index, name in ((0, "dense_0"), (3, "dense_1")):
            twin[index].weight.copy_(tensors[f"model.{name}.W"].T)
            twin[index].bias.copy_(tensors[f"model.{name}.b"])
    twin.eval()
    data = run.variants["drop"].parts.data
    with torch.no_grad():
        output = twin(torch.from_numpy(data.x_test.astype(np.float32))).numpy()
    expected = run.variants["drop"].model.predict(data.x_test)
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-6)


def test_checkpoint_meta_is_json_with_the_trainer_and_recorder_state(run):
    meta = json.loads(
        (run.directory / "checkpoints" / "drop-last" / "meta.json").read_text()
    )
    extra = meta["extra"]
    assert extra["trainer"]["epochs_done"] == 3
    assert len(extra["trainer"]["history"]) == 3
    assert extra["recorder"]["variant"] == "drop"


def test_the_best_checkpoint_is_the_lowest_validation_loss(run):
    metrics = run.metrics[run.metrics.variant == "plain"]
    best_epoch = int(metrics.loc[metrics["val_loss"].idxmin(), "epoch"])
    meta = json.loads(
        (run.directory / "checkpoints" / "plain-best" / "meta.json").read_text()
    )
    assert meta["extra"]["trainer"]["epochs_done"] == best_epoch + 1


def test_the_best_checkpoint_follows_the_early_stopping_monitor(tmp_path):
    stopping = {"monitor": "val_accuracy", "patience": 5, "restore_best": False}
    config = tiny(training={"epochs": 4, "early_stopping": stopping})
    result = run_experiment(config, out=tmp_path)
    best_epoch = int(result.metrics["val_accuracy"].idxmax())  # higher is better
    meta = json.loads(
        (result.directory / "checkpoints" / "base-best" / "meta.json").read_text()
    )
    assert meta["extra"]["trainer"]["epochs_done"] == best_epoch + 1


# -- figures and the report ------------------------------------------------------------


@pytest.mark.slow
def test_a_run_with_figures_and_report_writes_both(tmp_path):
    result = run_experiment(
        tiny(output={"figures": True, "report": True}), out=tmp_path
    )
    assert result.report_path == result.directory / "report.html"
    html = result.report_path.read_text()
    assert "<html" in html.lower() and "tiny" in html
    figures = {p.name for p in (result.directory / "figures").iterdir()}
    assert "curves.png" in figures and "curves.svg" in figures


def test_same_tensors_helper_sees_a_changed_bit(run):
    tensors = checkpoint_tensors(run.directory, "plain-last")
    changed = {k: v.copy() for k, v in tensors.items()}
    flat = changed["model.dense_0.W"].view(np.uint32).reshape(-1)
    flat[0] ^= 1
    with pytest.raises(AssertionError):
        assert_same_tensors(tensors, changed)


def test_run_directories_of_the_same_second_do_not_collide(tmp_path: Path):
    first = run_experiment(tiny(training={"epochs": 1}), out=tmp_path)
    second = run_experiment(tiny(training={"epochs": 1}), out=tmp_path)
    assert first.directory != second.directory
    assert first.directory.parent == second.directory.parent == tmp_path


def test_a_run_without_a_config_file_records_the_commit_of_annlens_itself(tmp_path):
    from annlens.io.manifest import git_state, project_root

    result = run_experiment(tiny(), out=tmp_path)
    recorded = json.loads((result.directory / "manifest.json").read_text())["git"]
    assert recorded is not None  # the tests run from a git checkout
    assert recorded == git_state(project_root())


def test_a_run_that_fails_says_how_to_continue_it(tmp_path, monkeypatch, caplog):
    from annlens.experiment import runner

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", "tensors.safetensors")

    monkeypatch.setattr(runner, "_train_variant", disk_full)
    with pytest.raises(OSError), caplog.at_level("WARNING", logger="annlens"):
        run_experiment(tiny(), out=tmp_path)

    run_dir = only_run_dir(tmp_path)
    assert manifest(run_dir)["status"] == "failed"
    expected = f"continue the run with: annlens resume {run_dir}"
    assert any(expected in record.getMessage() for record in caplog.records)


def test_the_nan_guard_finding_measures_the_count_of_non_finite_values():
    from annlens.errors import NonFiniteError
    from annlens.experiment.runner import non_finite_finding
    from annlens.training.guard import raise_non_finite

    values = np.array([[1.0, np.nan], [np.inf, np.nan]])
    with pytest.raises(NonFiniteError) as caught:
        raise_non_finite(values, "delta", step=7, layer="dense_1", stage="delta")
    finding = non_finite_finding("wild", caught.value)
    assert finding["measured"] == 3.0
    assert finding["threshold"] == 0.0
    assert finding["step_range"] == [7, 7]
    assert finding["definition"].startswith("count of NaN or Inf")
