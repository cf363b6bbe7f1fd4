"""Targets of more than one column, labels with a few stray fractions, and
CSV rows that do not fit their header: each read, or refused naming the file,
the line (or data row) and the value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annlens.data import load_dataset
from annlens.errors import DataError
from annlens.experiment import load_config, run_experiment
from annlens.experiment.build import build_data
from annlens.experiment.config import validate
from experiment_support import only_run_dir, tiny, write_experiment


def _pair(folder: Path, y: np.ndarray) -> tuple[Path, Path]:
    x = np.random.default_rng(0).normal(size=(len(y), 3))
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    return folder / "x.npy", folder / "y.npy"


def _one_hot(n: int = 60, k: int = 3) -> np.ndarray:
    return np.eye(k)[np.arange(n) % k]


def test_two_npy_files_with_one_hot_rows_are_class_labels(tmp_path):
    x, y = _pair(tmp_path, _one_hot())
    data = load_dataset("npy", path=x, target_path=y, seed=0)
    assert data.task == "classification"
    assert data.n_classes == 3 and data.class_names == ("0", "1", "2")
    assert data.y_train.ndim == 1 and set(data.y_train) <= {0, 1, 2}


def test_two_npy_files_with_several_outputs_are_regression(tmp_path):
    y = np.random.default_rng(1).normal(size=(60, 2))
    x, y_file = _pair(tmp_path, y)
    data = load_dataset("npy", path=x, target_path=y_file, seed=0)
    assert data.task == "regression"
    assert data.n_outputs == 2 and data.y_train.shape[1] == 2


def test_each_output_of_a_2d_target_is_standardised_on_its_own(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.normal(size=(100, 3)) * np.array([1000.0, 0.01, 1.0])
    x_path, y_path = _pair(tmp_path, y)

    data = load_dataset("npy", path=x_path, target_path=y_path, standardize_target=True)

    train = y[data.source_rows["train"]]
    np.testing.assert_allclose(data.target_std, train.std(axis=0))
    np.testing.assert_allclose(data.y_train.std(axis=0), np.ones(3))


def test_a_2d_target_that_is_not_one_hot_is_refused_as_labels(tmp_path):
    y = _one_hot()
    y[17] = [1, 1, 0]
    x, y_file = _pair(tmp_path, y)
    with pytest.raises(DataError, match=r"the first \[1.0, 1.0, 0.0\] at data row 17"):
        load_dataset("npy", path=x, target_path=y_file, task="classification")


def test_target_path_and_a_target_column_are_refused_together(tmp_path):
    x, y = _pair(tmp_path, _one_hot())
    with pytest.raises(DataError, match="leave target out"):
        load_dataset("npy", path=x, target=0, target_path=y)


def test_target_path_with_a_row_count_unlike_the_features_is_refused(tmp_path):
    x, _ = _pair(tmp_path, _one_hot())
    np.save(tmp_path / "short.npy", _one_hot(50))
    with pytest.raises(DataError, match="holds 50 targets, but x.npy holds 60 rows"):
        load_dataset("npy", path=x, target_path=tmp_path / "short.npy")


def test_an_npz_with_a_2d_y_is_read(tmp_path):
    x = np.random.default_rng(0).normal(size=(60, 3))
    np.savez(tmp_path / "d.npz", x=x, y=_one_hot())
    data = load_dataset("npz", path=tmp_path / "d.npz")
    assert data.n_classes == 3


def test_an_experiment_reads_target_path_against_its_folder(tmp_path):
    _pair(tmp_path, np.random.default_rng(1).normal(size=(60, 2)))
    config = tiny(data={"name": "npy", "path": "x.npy", "target_path": "y.npy"})
    path = write_experiment(tmp_path / "e.toml", config)
    experiment = load_config(path)
    assert experiment.data.target_path == str(tmp_path / "y.npy")
    run_experiment(experiment, out=tmp_path / "runs")
    assert (only_run_dir(tmp_path / "runs") / "manifest.json").exists()


def _labels_csv(path: Path, stray_row: int | None, value: float) -> Path:
    rng = np.random.default_rng(0)
    lines = ["a,b,y"]
    for row in range(60):
        label = value if row == stray_row else row % 3
        lines.append(f"{rng.normal():.3f},{rng.normal():.3f},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_one_fractional_label_among_whole_ones_is_refused_by_row(tmp_path):
    path = _labels_csv(tmp_path / "d.csv", 41, 1.5)
    with pytest.raises(DataError) as caught:
        load_dataset("csv", path=path, target="y")
    message = str(caught.value)
    assert message.startswith("d.csv: class labels of target 'y'")
    assert "the first 1.5 at data row 41 (line 43 of d.csv)" in message


def test_a_fractional_label_is_still_a_target_under_task_regression(tmp_path):
    path = _labels_csv(tmp_path / "d.csv", 41, 1.5)
    data = load_dataset("csv", path=path, target="y", task="regression")
    assert data.task == "regression"


def test_a_classification_loss_reads_a_file_target_as_labels(tmp_path, caplog):
    # 10% fractional: too many to be taken for typos, unless the loss says
    rng = np.random.default_rng(0)
    lines = ["a,y"] + [
        f"{rng.normal():.3f},{(row % 3) + (0.5 if row % 10 == 3 else 0)}"
        for row in range(60)
    ]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    data = {"name": "csv", "path": str(tmp_path / "d.csv"), "target": "y"}
    assert build_data(validate(tiny(data=data))).task == "regression"
    assert "the first 0.5 at data row 3 (line 5 of d.csv)" in caplog.text
    assert "set task='classification' or task='regression'" in caplog.text
    with pytest.raises(DataError) as caught:
        build_data(validate(tiny(data=data, loss={"name": "cross_entropy"})))
    assert "the first 0.5 at data row 3 (line 5 of d.csv)" in str(caught.value)
    assert "loss.name = 'cross_entropy' takes class labels" in str(caught.value)


def _csv_with(tmp_path: Path, line: str, at: int = 9) -> Path:
    lines = ["a,b,y"] + [f"{i}.5,{i}.25,{i % 2}" for i in range(30)]
    lines[at - 1] = line
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("line, fields", [("1,2,0,4", 4), ("1,2", 2)])
def test_a_csv_row_with_the_wrong_number_of_fields_is_named_by_line(
    tmp_path, line, fields
):
    path = _csv_with(tmp_path, line)
    with pytest.raises(DataError) as caught:
        load_dataset("csv", path=path, target="y")
    assert str(caught.value).startswith(
        f"d.csv: line 9 has {fields} fields, but the header (line 1) names 3 columns"
    )


def test_a_word_in_a_feature_column_is_named_by_line(tmp_path):
    path = _csv_with(tmp_path, "1,abc,0", at=14)
    with pytest.raises(DataError) as caught:
        load_dataset("csv", path=path, target="y")
    assert (
        "feature column 'b' is not numeric (value 'abc' at data row 12 "
        "(line 14 of d.csv))"
    ) in str(caught.value)


def test_a_word_among_numeric_targets_is_named_by_line(tmp_path):
    path = _csv_with(tmp_path, "1,2,one", at=6)
    with pytest.raises(DataError) as caught:
        load_dataset("csv", path=path, target="y")
    message = str(caught.value)
    assert "target column 'y' holds numbers, but 1 of 30 values are not" in message
    assert "'one', at data row 4 (line 6 of d.csv)" in message


def test_a_bad_target_in_a_targets_file_is_named_with_that_file(tmp_path):
    y = np.arange(60, dtype=float) % 3
    y[7] = np.nan
    x, y_file = _pair(tmp_path, y)

    with pytest.raises(DataError, match=r"^x\.npy \+ y\.npy: 1 of 60 rows hold NaN"):
        load_dataset("npy", path=x, target_path=y_file, seed=0)
