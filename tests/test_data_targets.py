"""Targets are checked whole when data is loaded, and regression targets can be
standardised with the training part's statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from annlens.data import dataset_from_arrays, load_dataset
from annlens.data.locate import Source, describe_row
from annlens.errors import DataError

SPLITS = ("train", "val", "test")


def _csv(tmp_path, lines: list[str], name: str = "d.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _labelled_rows(n: int = 60) -> list[str]:
    """A header and ``n`` rows of two features and a class label 0..2."""
    return ["a,b,y", *(f"{i},{2 * i},{i % 3}" for i in range(n))]


# -- standardised regression targets ---------------------------------------------------


@pytest.fixture(scope="module")
def diabetes():
    return load_dataset("diabetes", seed=0, standardize_target=True)


@pytest.fixture(scope="module")
def raw_diabetes():
    return load_dataset("diabetes", seed=0)


def test_targets_are_as_loaded_unless_standardisation_is_asked(raw_diabetes):
    from sklearn.datasets import load_diabetes

    y = load_diabetes().target
    assert raw_diabetes.target_mean is None and raw_diabetes.target_std is None
    for split in SPLITS:
        rows = raw_diabetes.source_rows[split]
        np.testing.assert_array_equal(raw_diabetes.split(split)[1][:, 0], y[rows])


def test_standardised_training_targets_have_mean_0_and_std_1(diabetes):
    assert diabetes.targets_standardized
    assert abs(diabetes.y_train.mean()) < 1e-12
    assert diabetes.y_train.std() == pytest.approx(1.0, abs=1e-12)


def test_the_target_scaling_is_fitted_on_the_training_part_only(diabetes):
    from sklearn.datasets import load_diabetes

    y = load_diabetes().target
    train = y[diabetes.source_rows["train"]]
    assert diabetes.target_mean == pytest.approx([train.mean()], rel=1e-12)
    assert diabetes.target_std == pytest.approx([train.std()], rel=1e-12)
    assert diabetes.target_mean[0] != pytest.approx(y.mean(), rel=1e-6)


def test_inverse_transform_target_gives_the_targets_in_their_own_units(
    diabetes, raw_diabetes
):
    for split in SPLITS:
        back = diabetes.inverse_transform_target(diabetes.split(split)[1])
        np.testing.assert_allclose(back, raw_diabetes.split(split)[1], rtol=1e-12)
    one_column = diabetes.inverse_transform_target(diabetes.y_val[:, 0])
    np.testing.assert_allclose(one_column, raw_diabetes.y_val[:, 0], rtol=1e-12)


def test_transform_target_standardises_new_targets_as_the_training_ones(diabetes):
    mean, std = diabetes.target_mean[0], diabetes.target_std[0]
    np.testing.assert_allclose(
        diabetes.transform_target([[mean], [mean + 2 * std]]), [[0.0], [2.0]]
    )


def test_a_constant_target_gets_std_1_instead_of_dividing_by_0():
    x = np.arange(40.0).reshape(20, 2)
    data = dataset_from_arrays(
        x, np.full(20, 7.5), task="regression", standardize_target=True
    )
    assert data.target_std.tolist() == [1.0]
    assert np.all(data.y_train == 0.0) and np.all(data.y_test == 0.0)


def test_class_labels_are_never_scaled():
    data = load_dataset("iris", seed=0, standardize_target=True)
    assert not data.targets_standardized
    assert data.y_train.dtype == np.int64 and set(data.y_train) == {0, 1, 2}


# -- every target checked when the data is loaded ----------------------------------


def test_a_non_whole_class_label_is_refused_with_its_data_row_and_csv_line(tmp_path):
    lines = _labelled_rows()
    lines[42] = "41,82,2.5"  # data row 41
    lines.insert(5, "")  # a blank line, which pandas skips: line 43 becomes 44
    path = _csv(tmp_path, lines)

    with pytest.raises(DataError) as caught:
        load_dataset("csv", path=path, target="y", task="classification")

    message = str(caught.value)
    assert "class labels of target 'y' must be whole numbers or text" in message
    assert "1 of 60 are not, the first 2.5 at data row 41 (line 44 of d.csv)" in (
        message
    )
    assert "task='regression'" in message


def test_a_label_in_the_last_rows_is_found_before_anything_is_split(tmp_path):
    lines = _labelled_rows(200)
    lines[200] = "199,398,0.5"
    path = _csv(tmp_path, lines)

    with pytest.raises(DataError, match=r"data row 199 \(line 201 of d\.csv\)"):
        load_dataset("csv", path=path, target="y", task="classification")


def test_an_infinite_target_is_refused_with_its_count_and_first_row(tmp_path):
    lines = ["a,y", *(f"{i},{i * 0.5}" for i in range(40))]
    lines[31] = "30,inf"
    lines[36] = "35,-inf"
    path = _csv(tmp_path, lines)

    with pytest.raises(DataError) as caught:
        load_dataset("csv", path=path, target="y")

    message = str(caught.value)
    assert "target 'y' holds 2 infinite values" in message
    assert "the first, inf, at data row 30 (line 32 of d.csv)" in message


def test_a_single_infinite_target_is_named_in_the_singular(tmp_path):
    lines = ["a,y", *(f"{i},{i * 0.5}" for i in range(40))]
    lines[31] = "30,inf"
    path = _csv(tmp_path, lines)

    with pytest.raises(DataError) as caught:
        load_dataset("csv", path=path, target="y")

    message = str(caught.value)
    assert "target 'y' holds 1 infinite value, inf, at data row 30" in message
    assert "values" not in message
    assert "help: replace it or drop that row" in message


def test_text_labels_differing_only_by_surrounding_spaces_are_one_class(tmp_path):
    lines = ["a,b,y", *(f"{i},{2 * i}, {('cat', 'dog')[i % 2]}" for i in range(30))]
    lines += [f"{i},{2 * i},{('cat', 'dog')[i % 2]}" for i in range(30, 60)]
    path = _csv(tmp_path, lines)

    from_csv = load_dataset("csv", path=path, target="y", seed=0)
    x = np.arange(40.0).reshape(20, 2)
    labels = np.array(["cat", " cat", "dog ", "\tdog"] * 5)
    from_arrays = dataset_from_arrays(x, labels, seed=0)
    as_objects = dataset_from_arrays(x, labels.astype(object), seed=0)

    assert from_csv.class_names == ("cat", "dog")
    assert from_arrays.class_names == as_objects.class_names == ("cat", "dog")


def test_a_blank_text_label_is_refused_as_missing_not_made_a_class(tmp_path):
    lines = ["a,b,y", *(f"{i},{2 * i},{('cat', 'dog')[i % 2]}" for i in range(30))]
    lines[8] = "7,14,   "
    path = _csv(tmp_path, lines)

    with pytest.raises(DataError) as caught:
        load_dataset("csv", path=path, target="y", seed=0)

    message = str(caught.value)
    assert "target 'y' is blank at data row 7 (line 9 of" in message
    assert "(1 blank in all)" in message
    labels = np.array(["cat", "dog", " ", "dog"] * 5, dtype=object)
    with pytest.raises(DataError, match=r"blank at data row 2 \(5 blank in all\)"):
        dataset_from_arrays(np.zeros((20, 2)), labels, seed=0)


def test_dataset_from_arrays_names_both_lengths_when_y_does_not_match_x():
    x = np.zeros((20, 2))

    with pytest.raises(DataError) as caught:
        dataset_from_arrays(x, np.zeros((19, 3)), seed=0)

    message = str(caught.value)
    assert "y has 19 rows but x has 20" in message
    assert "1-D" not in message
    with pytest.raises(DataError, match="y has 21 rows but x has 20"):
        dataset_from_arrays(x, np.arange(21) % 2, seed=0)


def test_dataset_from_arrays_takes_a_2d_target():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))

    data = dataset_from_arrays(x, rng.normal(size=(40, 2)), seed=0)

    assert data.task == "regression"
    assert data.y_train.shape[1] == 2


def test_a_missing_target_is_named_by_its_csv_line(tmp_path):
    lines = _labelled_rows()
    lines[11] = "10,20,"
    path = _csv(tmp_path, lines)

    with pytest.raises(DataError, match=r"first at data row 10 \(line 12 of d\.csv\)"):
        load_dataset("csv", path=path, target="y")


def test_class_indices_outside_the_class_names_are_counted_and_located(tmp_path):
    y = np.arange(30) % 3
    y[[17, 25]] = [3, -1]
    path = tmp_path / "d.npz"
    np.savez(path, x=np.ones((30, 2)), y=y, class_names=np.array(["a", "b", "c"]))

    with pytest.raises(DataError) as caught:
        load_dataset("npz", path=path)

    message = str(caught.value)
    assert "with class_names given, y must hold class indices 0..2" in message
    assert "2 of 30 are not, the first 3 at data row 17" in message
    assert "line" not in message  # a NumPy file has rows, not lines


def test_rows_dropped_for_nan_do_not_shift_the_row_named_later(tmp_path):
    lines = _labelled_rows()
    lines[4] = "3,,0"  # data row 3 holds NaN and is dropped
    lines[21] = "20,40,1.5"
    path = _csv(tmp_path, lines)

    with pytest.raises(DataError, match=r"data row 20 \(line 22 of d\.csv\)"):
        load_dataset("csv", path=path, target="y", task="classification", drop_nan=True)


def test_locate_names_the_data_row_and_line_of_a_split_sample(tmp_path):
    frame = pd.DataFrame({"a": np.arange(30.0), "y": np.arange(30) % 2})
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    data = load_dataset("csv", path=path, target="y", standardize=False)

    for split in SPLITS:
        x, _ = data.split(split)
        row = int(x[0, 0])  # feature a holds the row number
        assert data.locate(split, 0) == f"data row {row} (line {row + 2} of d.csv)"


def test_no_line_is_named_when_the_file_changed_since_it_was_read(tmp_path):
    path = _csv(tmp_path, _labelled_rows(10))
    source = Source(str(path), ",", n_rows=10)
    assert describe_row(4, source) == "data row 4 (line 6 of d.csv)"

    path.write_text("a,b,y\n1,2,0\n")
    assert describe_row(4, source) == "data row 4"
