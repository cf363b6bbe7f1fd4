"""Regression in an experiment: standardised targets, metrics in the target's
units, the scaling stored with the run, and every target checked by the loss
before anything trains."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from rich.console import Console

from annlens.errors import ConfigError, LabelError
from annlens.experiment import callbacks, resume_experiment, run_experiment
from annlens.experiment.build import build_data
from annlens.experiment.config import validate
from annlens.experiment.targets import array_fingerprint, same_fingerprint
from experiment_support import (
    assert_same_run,
    checkpoint_meta,
    manifest,
    merged,
    only_run_dir,
    run_dirs,
    tiny,
)

REGRESSION = {
    **tiny(name="reg", data={"name": "diabetes"}),
    "optimizer": {"name": "adam", "lr": 0.01},
    "training": {"epochs": 2, "batch_size": 32},
}


def regression(**changes):
    return merged(REGRESSION, changes)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_experiment(regression(), out=tmp_path_factory.mktemp("reg"))


@pytest.fixture(scope="module")
def unscaled(tmp_path_factory):
    config = regression(data={"standardize_target": False})
    return run_experiment(config, out=tmp_path_factory.mktemp("raw"))


def test_standardised_targets_start_the_mse_loss_near_one(run):
    first = run.metrics.iloc[0]
    assert first["train_loss"] < 2.0


def test_without_standardisation_the_loss_is_in_squared_target_units(unscaled):
    assert unscaled.metrics.iloc[0]["train_loss"] > 1000.0
    assert not unscaled.variants["base"].parts.data.targets_standardized


def test_validation_rmse_and_mae_are_in_the_targets_own_units(run):
    data = run.variants["base"].parts.data
    predicted = data.inverse_transform_target(run.model.predict(data.x_val))
    truth = data.inverse_transform_target(data.y_val)
    last = run.metrics.iloc[-1]

    error = predicted.astype(np.float64) - truth
    assert last["val_rmse"] == pytest.approx(math.sqrt(np.mean(error**2)), rel=1e-5)
    assert last["val_mae"] == pytest.approx(np.mean(np.abs(error)), rel=1e-5)
    assert last["val_rmse"] > 30.0  # points of disease progression, not std units


def test_the_training_rmse_is_over_the_epochs_samples_as_the_loss_is(run):
    # both pool the batches weighted by size; the rmse pools squares, so its
    # square in std units is the epoch's mean squared error: the MSE loss
    std = float(run.variants["base"].parts.data.target_std[0])
    for _, row in run.metrics.iterrows():
        squared = (row["train_rmse"] / std) ** 2
        assert squared == pytest.approx(row["train_loss"], rel=1e-5)


def test_test_scores_hold_the_rmse_in_the_targets_units(run):
    data = run.variants["base"].parts.data
    predicted = data.inverse_transform_target(run.model.predict(data.x_test))
    error = predicted - data.inverse_transform_target(data.y_test)
    test = run.variants["base"].test
    assert test["rmse"] == pytest.approx(math.sqrt(np.mean(error**2)), rel=1e-5)
    assert run.metrics.iloc[-1]["test_rmse"] == test["rmse"]


def test_the_metrics_read_alike_with_and_without_standardisation(run, unscaled):
    # the same data in the same units: both errors are tens of points
    for result in (run, unscaled):
        assert 20.0 < result.metrics.iloc[-1]["val_mae"] < 200.0


def test_the_run_directory_stores_the_scaling_of_each_variant(run):
    stored = json.loads((run.directory / "scaling.json").read_text())
    data = run.variants["base"].parts.data
    assert stored["base"]["task"] == "regression"
    assert stored["base"]["target"] == {
        "mean": data.target_mean.tolist(),
        "std": data.target_std.tolist(),
    }
    assert stored["base"]["features"]["mean"] == data.mean.tolist()


def test_the_run_and_its_checkpoints_name_the_class_of_each_output(tmp_path):
    path = tmp_path / "pets.csv"
    rows = [f"{i % 7},{i % 5},{('dog', 'cat', 'ant')[i % 3]}" for i in range(60)]
    path.write_text("a,b,pet\n" + "\n".join(rows) + "\n")
    config = tiny(data={"name": "csv", "path": str(path), "target": "pet"})

    result = run_experiment(config, out=tmp_path / "runs")

    stored = json.loads((result.directory / "scaling.json").read_text())
    assert stored["base"]["classes"] == ["ant", "cat", "dog"]
    scaling = checkpoint_meta(result.directory, "base-last")["extra"]["scaling"]
    assert scaling["classes"] == ["ant", "cat", "dog"]


def test_the_scaling_is_fitted_on_the_training_part_of_the_run(run):
    from sklearn.datasets import load_diabetes

    data = run.variants["base"].parts.data
    train = load_diabetes().target[data.source_rows["train"]]
    assert data.target_mean[0] == pytest.approx(train.mean(), rel=1e-12)
    assert data.target_std[0] == pytest.approx(train.std(), rel=1e-12)


def test_each_checkpoint_carries_the_target_scaling(run):
    for tag in ("base-last", "base-best"):
        scaling = checkpoint_meta(run.directory, tag)["extra"]["scaling"]
        assert scaling["target"]["std"] == run.variants["base"].parts.data.target_std


def test_unscaled_targets_are_stored_as_none(unscaled):
    stored = json.loads((unscaled.directory / "scaling.json").read_text())
    assert stored["base"]["target"] is None
    assert stored["base"]["classes"] is None


def test_the_summary_table_says_the_loss_is_in_standardised_units(run):
    console = Console(width=120, record=True)
    console.print(run.summary_table())
    text = console.export_text()
    assert "(std. y)" in text and "rmse " in text
    assert "loss on standardised targets" in text


def test_classification_keeps_its_plain_summary_headers(tmp_path):
    result = run_experiment(tiny(), out=tmp_path)
    console = Console(width=120, record=True)
    console.print(result.summary_table())
    assert "std. y" not in console.export_text()


def test_early_stopping_may_follow_the_validation_rmse(tmp_path):
    config = regression(training={"early_stopping": {"monitor": "val_rmse"}})
    result = run_experiment(config, out=tmp_path)
    assert "val_rmse" in result.metrics.columns


# -- resuming a regression run -------------------------------------------------------


class Stop(Exception):
    """Raised in place of a kill."""


def _stop_after(monkeypatch, steps: int) -> None:
    def raising(self, trainer, logs):
        if trainer.optimizer.t >= steps:
            raise Stop()

    monkeypatch.setattr(callbacks.EndEpoch, "on_batch_end", raising, raising=False)


def test_a_stopped_regression_run_resumes_to_identical_results(
    tmp_path, monkeypatch, run
):
    _stop_after(monkeypatch, 12)  # in the second epoch, after the first checkpoint
    with pytest.raises(Stop):
        run_experiment(regression(), out=tmp_path)
    monkeypatch.undo()
    stopped = only_run_dir(tmp_path)

    resume_experiment(stopped)

    assert manifest(stopped)["status"] == "completed"
    assert_same_run(run.directory, stopped, ["base"])


def test_resume_refuses_data_that_no_longer_gives_the_stored_scaling(
    tmp_path, monkeypatch
):
    _stop_after(monkeypatch, 12)
    with pytest.raises(Stop):
        run_experiment(regression(), out=tmp_path)
    monkeypatch.undo()
    stopped = only_run_dir(tmp_path)
    scaling = stopped / "scaling.json"
    stored = json.loads(scaling.read_text())
    stored["base"]["target"]["mean"] = [100.0]
    scaling.write_text(json.dumps(stored))
    before = (stopped / "manifest.json").read_bytes()

    with pytest.raises(ConfigError) as caught:
        resume_experiment(stopped)

    message = str(caught.value)
    assert "variant 'base'" in message and "target standardisation" in message
    assert "mean [100] then" in message and "the data changed" in message
    assert (stopped / "manifest.json").read_bytes() == before


def _stopped_without_scaling_file(tmp_path, monkeypatch, config):
    """A run stopped in its second epoch, its scaling.json gone (an older run)."""
    _stop_after(monkeypatch, 12)
    with pytest.raises(Stop):
        run_experiment(config, out=tmp_path)
    monkeypatch.undo()
    stopped = only_run_dir(tmp_path)
    (stopped / "scaling.json").unlink()
    return stopped


def test_an_older_classification_run_without_scaling_file_still_resumes(
    tmp_path, monkeypatch
):
    stopped = _stopped_without_scaling_file(tmp_path, monkeypatch, tiny())

    resume_experiment(stopped)

    assert manifest(stopped)["status"] == "completed"


def test_an_older_regression_run_without_scaling_file_is_refused_with_help(
    tmp_path, monkeypatch
):
    stopped = _stopped_without_scaling_file(tmp_path, monkeypatch, regression())

    with pytest.raises(ConfigError) as caught:
        resume_experiment(stopped)

    message = str(caught.value)
    assert "holds no scaling.json" in message and "['base']" in message
    assert "standardize_target = false" in message


def _stopped_on_csv(tmp_path, monkeypatch):
    """A run on a CSV with raw targets, stopped in its first epoch; its data."""
    rng = np.random.default_rng(3)
    lines = ["a,b,y"] + [
        f"{rng.normal():.6f},{rng.normal():.6f},{rng.uniform(1, 9):.6f}"
        for _ in range(60)
    ]
    path = tmp_path / "r.csv"
    path.write_text("\n".join(lines) + "\n")
    config = regression(
        data={"name": "csv", "path": str(path), "target": "y"},
        training={"batch_size": 8},
    )
    config["data"]["standardize_target"] = False
    _stop_after(monkeypatch, 2)
    with pytest.raises(Stop):
        run_experiment(config, out=tmp_path / "runs")
    monkeypatch.undo()
    stopped = only_run_dir(tmp_path / "runs")
    data = build_data(validate(config))
    return stopped, path, lines, data


def _edit_a_training_target(path, lines, data):
    """Change the target of a training row only: the features stay as they were."""
    row = int(data.source_rows["train"][0])
    a, b, _ = lines[row + 1].split(",")
    edited = [*lines]
    edited[row + 1] = f"{a},{b},42.5"
    path.write_text("\n".join(edited) + "\n")


def test_the_run_stores_a_fingerprint_of_each_split(run):
    stored = json.loads((run.directory / "scaling.json").read_text())
    prints = stored["base"]["data"]
    assert sorted(prints) == ["test", "train", "val"]
    assert all(len(prints[s]["targets"]["sums"]) == 4 for s in prints)
    assert prints["train"]["features"] != prints["val"]["features"]


def test_a_fingerprint_is_exact_for_labels_and_tolerant_of_last_digits():
    labels = np.arange(12) % 3
    assert "sha256" in array_fingerprint(labels)
    changed = labels.copy()
    changed[5] = 0
    assert not same_fingerprint(array_fingerprint(changed), array_fingerprint(labels))

    x = np.random.default_rng(0).normal(size=(50, 4))
    stored = json.loads(json.dumps(array_fingerprint(x)))  # as scaling.json keeps it
    last_digit = x * (1 + 2 * np.finfo(float).eps)
    assert same_fingerprint(array_fingerprint(last_digit), stored)
    for edit in (
        lambda a: a.__setitem__((7, 2), a[7, 2] + 1e-4),
        lambda a: a.__setitem__(slice(None), a[::-1]),  # rows reordered
        lambda a: a.__setitem__(slice(None), a[:, [1, 0, 2, 3]]),  # columns swapped
    ):
        edited = x.copy()
        edit(edited)
        assert not same_fingerprint(array_fingerprint(edited), stored)
    assert not same_fingerprint(array_fingerprint(x[:49]), stored)
    empty = array_fingerprint(np.zeros((0, 4)))  # a split of fraction 0
    assert same_fingerprint(empty, json.loads(json.dumps(empty)))
    assert not same_fingerprint(empty, stored)


def test_resume_refuses_data_whose_labels_changed_with_the_same_features(
    tmp_path, monkeypatch
):
    stopped, path, lines, data = _stopped_on_csv(tmp_path, monkeypatch)
    _edit_a_training_target(path, lines, data)
    before = (stopped / "manifest.json").read_bytes()

    with pytest.raises(ConfigError) as caught:
        resume_experiment(stopped)

    message = str(caught.value)
    assert "variant 'base': the training targets differ" in message
    assert "the data changed since the run started" in message
    assert "annlens run" in message and "put the data back" in message
    assert "\n" not in message
    assert (stopped / "manifest.json").read_bytes() == before


def test_resume_accepts_the_same_data(tmp_path, monkeypatch):
    stopped, _, _, _ = _stopped_on_csv(tmp_path, monkeypatch)
    resume_experiment(stopped)
    assert manifest(stopped)["status"] == "completed"


def test_an_older_run_without_data_digests_resumes_as_before(tmp_path, monkeypatch):
    stopped, path, lines, data = _stopped_on_csv(tmp_path, monkeypatch)
    scaling = stopped / "scaling.json"
    stored = json.loads(scaling.read_text())
    del stored["base"]["data"]
    scaling.write_text(json.dumps(stored))
    _edit_a_training_target(path, lines, data)

    resume_experiment(stopped)

    assert manifest(stopped)["status"] == "completed"


# -- the loss against every target -----------------------------------------------------


def _unit_targets(tmp_path, bad_row: int, value: float):
    """A CSV of 80 rows whose target lies in [0, 1] but at ``bad_row``."""
    rng = np.random.default_rng(0)
    lines = ["a,b,y"]
    for row in range(80):
        target = value if row == bad_row else rng.uniform(0.05, 0.95)
        lines.append(f"{rng.normal():.6f},{rng.normal():.6f},{target:.6f}")
    path = tmp_path / "r.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _bce(path, **data):
    return regression(
        data={"name": "csv", "path": str(path), "target": "y", **data},
        loss={"name": "bce"},
    )


def test_a_target_the_loss_refuses_is_named_before_training(tmp_path):
    path = _unit_targets(tmp_path, 57, 1.5)
    config = _bce(path, standardize_target=False)
    out = tmp_path / "runs"

    with pytest.raises(LabelError) as caught:
        run_experiment(config, out=out)

    message = str(caught.value)
    assert message.startswith(
        "loss 'binary_cross_entropy' does not fit the data (regression, 1 target "
        "column)"
    )
    assert "must lie in [0, 1]; got 1.5" in message
    split = build_data(validate(config))
    where = next(s for s in ("train", "val", "test") if 57 in split.source_rows[s])
    position = int(np.flatnonzero(split.source_rows[where] == 57)[0])
    assert (
        f"the first refused, position {position} of the {where} split, is "
        "data row 57 (line 59 of r.csv)"
    ) in message
    assert run_dirs(out) == []


def test_standardised_targets_under_a_loss_for_0_1_targets_get_a_help_line(tmp_path):
    config = _bce(_unit_targets(tmp_path, 0, 0.5))

    with pytest.raises(LabelError) as caught:
        run_experiment(config, out=tmp_path / "runs")

    assert "help: the targets are standardised" in str(caught.value)
    assert "data.standardize_target = false" in str(caught.value)


def test_binary_cross_entropy_trains_on_two_classes_with_one_output(tmp_path):
    from annlens.experiment.build import build_all

    config = tiny(data={"name": "breast_cancer"}, loss={"name": "bce"})
    parts = build_all(validate(config))[0]
    assert parts.model.layers[-1].n_out == 1
    result = run_experiment(config, out=tmp_path / "runs")
    assert result is not None
    assert (only_run_dir(tmp_path / "runs") / "manifest.json").exists()


@pytest.mark.parametrize(
    "changes, expected",
    [
        (
            {"loss": {"name": "bce"}},
            "loss 'binary_cross_entropy' scores one yes/no output (the probability "
            "of the second class), but data 'iris' has 3 classes",
        ),
        (
            {
                "loss": {"name": "bce"},
                "data": {"name": "breast_cancer"},
                "model": {"output_activation": "sigmoid"},
            },
            "model.output_activation = 'sigmoid' under binary_cross_entropy "
            "applies sigmoid twice",
        ),
    ],
)
def test_binary_cross_entropy_that_cannot_fit_says_why(changes, expected):
    from annlens.experiment.build import build_all

    with pytest.raises(ConfigError) as caught:
        build_all(validate(tiny(**changes)))
    assert str(caught.value).startswith(expected)


def test_a_loss_of_the_wrong_kind_speaks_of_outputs_and_classes():
    from annlens.experiment.build import build_all

    with pytest.raises(LabelError) as caught:
        build_all(validate(tiny(loss={"name": "mse"})))
    message = str(caught.value)
    assert message.startswith(
        "loss 'mse' does not fit the data (classification, 3 classes): it "
        "compares each of the model's 3 outputs with a number"
    )
    assert "shape (1, 3)" not in message


def test_a_shape_refusal_says_what_the_width_is():
    from annlens.data import load_dataset
    from annlens.experiment.targets import check_loss_targets
    from annlens.losses import get_loss

    data = load_dataset("diabetes")
    with pytest.raises(LabelError) as caught:
        check_loss_targets(get_loss("mse"), data, np.float64, 3)
    message = str(caught.value)
    assert message.startswith(
        "loss 'mse' does not fit the data (regression, 1 target column): "
    )
    assert "the model's output width is 3)" in message


def test_the_summary_says_the_test_score_comes_from_the_best_epoch(tmp_path):
    config = tiny(training={"epochs": 2, "early_stopping": {"patience": 1}})
    result = run_experiment(config, out=tmp_path)
    console = Console(width=200, record=True)
    console.print(result.summary_table())
    text = " ".join(console.export_text().split())
    assert "test: scored with the weights of the best epoch" in text
    assert "the losses are the last epoch's" in text


def test_without_restore_best_the_summary_has_no_best_epoch_note(tmp_path):
    stopping = {"patience": 1, "restore_best": False}
    config = tiny(training={"epochs": 2, "early_stopping": stopping})
    result = run_experiment(config, out=tmp_path)
    console = Console(width=200, record=True)
    console.print(result.summary_table())
    assert "best epoch" not in console.export_text()


def test_binary_cross_entropy_on_a_continuous_target_says_to_use_mse():
    from annlens.experiment.build import build_all

    config = tiny(data={"name": "diabetes"}, loss={"name": "bce"})
    with pytest.raises(LabelError) as caught:
        build_all(validate(config))

    message = str(caught.value)
    assert message.startswith(
        "loss 'binary_cross_entropy' does not fit the data (regression, 1 target "
        "column): it takes targets in [0, 1] (probabilities of class 1), but the "
        "target is a continuous number from "
    )
    assert "(1 values outside)" not in message
    assert message.endswith(
        "help: use loss.name = 'mse' (or 'auto') for a continuous target"
    )


# -- errors of a probability under binary cross-entropy ------------------------------


def test_the_errors_of_a_logit_output_are_those_of_its_sigmoid():
    from types import SimpleNamespace

    from annlens.experiment.targets import regression_metrics
    from annlens.losses import BinaryCrossEntropy

    data = SimpleNamespace(target_std=None)
    logits = np.array([[0.0], [np.log(3.0)], [-50.0]])
    target = np.array([0.5, 0.5, 0.0])  # sigmoid(log 3) = 0.75
    metrics = dict(regression_metrics(data, BinaryCrossEntropy()))

    assert metrics["mae"](logits, target) == pytest.approx(0.25 / 3)
    assert metrics["rmse"](logits, target) == pytest.approx(math.sqrt(0.0625 / 3))


def test_the_errors_of_a_plain_regression_output_are_taken_as_they_are():
    from types import SimpleNamespace

    from annlens.experiment.targets import regression_metrics
    from annlens.losses import MSE

    metrics = dict(regression_metrics(SimpleNamespace(target_std=None), MSE()))

    assert metrics["mae"](np.array([[2.0]]), np.array([0.5])) == pytest.approx(1.5)


def test_a_long_variant_name_folds_instead_of_hiding_the_summary_numbers(tmp_path):
    long_name = "a-very-long-variant-name-" * 3 + "end"
    result = run_experiment(tiny(variants=[{"name": long_name}]), out=tmp_path)
    console = Console(width=80, record=True)
    console.print(result.summary_table())
    text = console.export_text()
    loss = f"{result.variants[long_name].history.rows[-1]['val_loss']:.4f}"
    assert loss in text and "acc " in text
    assert "".join(line.strip("│ ") for line in text.splitlines()).count("end") >= 1
