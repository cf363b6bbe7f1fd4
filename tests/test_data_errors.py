"""Bad data is refused with a DataError that names the file, column and count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from annlens.data import check_batch_size, dataset_from_arrays, load_dataset
from annlens.errors import ConfigError, DataError


def _csv(tmp_path, frame, name="data.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match=r"'.*nowhere\.csv' does not exist"):
        load_dataset("csv", path=tmp_path / "nowhere.csv", target="y")


def test_missing_target_column_lists_columns_and_suggests_a_name(tmp_path):
    path = _csv(tmp_path, pd.DataFrame({"age": [1, 2], "label": [0, 1]}))

    with pytest.raises(DataError) as caught:
        load_dataset("csv", path=path, target="lable")

    message = str(caught.value)
    assert "data.csv" in message and "no target column 'lable'" in message
    assert "did you mean 'label'?" in message and "'age', 'label'" in message


def test_no_target_given_lists_the_columns(tmp_path):
    path = _csv(tmp_path, pd.DataFrame({"age": [1, 2], "label": [0, 1]}))

    with pytest.raises(DataError, match="no target column given.*'age', 'label'"):
        load_dataset("csv", path=path)


def test_non_numeric_feature_column_is_named_with_its_bad_value(tmp_path):
    frame = pd.DataFrame({"size": ["1", "2", "big", "4"], "y": [0, 1, 0, 1]})
    path = _csv(tmp_path, frame)

    with pytest.raises(DataError) as caught:
        load_dataset("csv", path=path, target="y")

    message = str(caught.value)
    assert "feature column 'size' is not numeric" in message
    assert "'big' at data row 2" in message


def test_nan_rows_are_refused_with_their_count_and_columns(tmp_path):
    frame = pd.DataFrame({"a": np.arange(10.0), "b": np.ones(10), "y": [0, 1] * 5})
    frame.loc[[2, 5], "a"] = np.nan
    frame.loc[5, "b"] = np.nan
    frame.loc[7, "y"] = np.nan
    path = _csv(tmp_path, frame)

    with pytest.raises(DataError) as caught:
        load_dataset("csv", path=path, target="y")

    message = str(caught.value)
    assert "data.csv: 3 of 10 rows hold NaN" in message
    assert "'a': 2, 'b': 1, 'y': 1" in message
    assert "first at data row 2" in message and "drop_nan=True" in message


def test_infinite_feature_values_are_refused_by_column():
    x = np.ones((6, 2))
    x[1, 1] = np.inf

    with pytest.raises(DataError, match=r"1 infinite value in feature columns 'b'"):
        dataset_from_arrays(x, [0, 1] * 3, feature_names=["a", "b"])
    x[2, 0] = -np.inf
    with pytest.raises(DataError, match=r"2 infinite values in feature columns"):
        dataset_from_arrays(x, [0, 1] * 3, feature_names=["a", "b"])


def test_an_infinite_feature_value_is_named_by_its_row_and_csv_line(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]})
    frame.loc[2, "a"] = np.inf
    path = _csv(tmp_path, frame)

    with pytest.raises(DataError) as caught:
        load_dataset("csv", path=path, target="y")

    assert "the first at data row 2 (line 4 of data.csv)" in str(caught.value)


def test_a_csv_separated_by_semicolons_is_refused_naming_the_separator(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("a;b;y\n" + "".join(f"{i};{i};{i % 2}\n" for i in range(8)))

    with pytest.raises(DataError) as caught:
        load_dataset("csv", path=path, target="y")

    message = str(caught.value)
    assert "semi.csv: the header reads as one column 'a;b;y'" in message
    assert "separated by semicolons, but annlens expects commas" in message


def test_an_npz_whose_feature_table_is_not_named_x_says_how_to_name_it(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, features=np.ones((6, 2)), y=np.array([0, 1] * 3))

    with pytest.raises(DataError) as caught:
        load_dataset("npz", path=path)

    message = str(caught.value)
    assert "d.npz: holds the 2-D array(s) 'features'" in message
    assert "np.savez(path, x=features, y=targets)" in message


def test_single_class_is_refused(tmp_path):
    path = _csv(tmp_path, pd.DataFrame({"a": range(8), "y": ["cat"] * 8}))

    with pytest.raises(DataError, match=r"single class \('cat'\) in all 8 rows"):
        load_dataset("csv", path=path, target="y")


def test_unknown_dataset_name_lists_the_known_ones():
    with pytest.raises(DataError) as caught:
        load_dataset("irsi")

    message = str(caught.value)
    assert "unknown data set 'irsi'" in message and "did you mean 'iris'?" in message
    assert "digits" in message and "spirals" in message and "csv" in message


def test_option_that_does_not_apply_is_refused():
    with pytest.raises(DataError, match="'iris' does not take n_samples"):
        load_dataset("iris", n_samples=20)


def test_file_kind_without_a_path_asks_for_one():
    with pytest.raises(DataError, match="pass path="):
        load_dataset("csv", target="y")


def test_unknown_file_suffix_is_refused(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("x")

    with pytest.raises(DataError, match="unknown format '.xlsx'"):
        load_dataset("file", path=path, target="y")


def test_npy_holding_python_objects_is_refused_unread(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)

    with pytest.raises(DataError, match="holds Python objects"):
        load_dataset("npy", path=path, target=0)


def test_plain_npy_needs_a_column_index(tmp_path):
    path = tmp_path / "plain.npy"
    np.save(path, np.ones((4, 3)))

    with pytest.raises(DataError, match="column index 0..2, got 'y'"):
        load_dataset("npy", path=path, target="y")


def test_npz_columns_of_different_lengths_are_named(tmp_path):
    path = tmp_path / "ragged.npz"
    np.savez(path, a=np.ones(5), b=np.ones(4), y=np.arange(5))

    with pytest.raises(DataError, match="columns differ in length: 'a' 5, 'b' 4"):
        load_dataset("npz", path=path, target="y")


def test_a_text_file_posing_as_npz_is_refused(tmp_path):
    path = tmp_path / "fake.npz"
    path.write_text("hello")

    with pytest.raises(DataError, match="fake.npz"):
        load_dataset("npz", path=path, target="y")


def test_fewer_samples_than_one_batch_is_refused_with_the_counts():
    with pytest.raises(DataError) as caught:
        check_batch_size(12, 32, "training split of 'iris'")

    message = str(caught.value)
    assert message.startswith("training split of 'iris': 12 samples")
    assert "fewer than one batch of 32" in message and "at most 12" in message


def test_batch_size_equal_to_the_sample_count_is_accepted():
    check_batch_size(32, 32, "training split")


@pytest.mark.parametrize("size", [0, -1, 2.5, True])
def test_batch_size_must_be_a_positive_integer(size):
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        check_batch_size(100, size, "training split")


def test_a_csv_naming_a_column_twice_is_refused_naming_the_column(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("a,a,y\n" + "".join(f"{i},{2 * i},{i % 2}\n" for i in range(8)))

    for target in ("y", "a"):
        with pytest.raises(DataError) as caught:
            load_dataset("csv", path=path, target=target)

        assert str(caught.value) == (
            "dup.csv: the header (line 1) names column 'a' 2 times; "
            "help: give every column its own name (the first line of a CSV "
            "file is its header)"
        )


@pytest.mark.parametrize("noise", [-1.0, float("nan"), float("inf"), "x", True])
def test_a_bad_noise_of_a_generated_set_is_refused_naming_it(noise):
    with pytest.raises(DataError, match=r"^moons: noise must be a finite number >= 0"):
        load_dataset("moons", noise=noise)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None])
def test_a_bad_data_seed_is_refused_naming_it(seed):
    with pytest.raises(ConfigError, match=r"^data seed must be an integer >= 0"):
        load_dataset("iris", seed=seed)
    with pytest.raises(ConfigError, match=r"^data seed must be an integer >= 0"):
        dataset_from_arrays(np.ones((8, 2)), np.arange(8) % 2, seed=seed)


def test_a_tsv_separated_by_commas_is_refused_naming_the_separator(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("a,b,y\n" + "".join(f"{i},{i},{i % 2}\n" for i in range(8)))

    with pytest.raises(DataError) as caught:
        load_dataset("csv", path=path, target="y")

    assert str(caught.value) == (
        "data.tsv: the header reads as one column 'a,b,y': its fields are "
        "separated by commas, but annlens expects tabs in a .tsv file; "
        "help: save the file with tabs, or with commas named .csv"
    )
