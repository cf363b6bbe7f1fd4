"""User data from CSV, NPY and NPZ files round-trips into a Dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from annlens.data import load_dataset, read_data_file


@pytest.fixture
def table():
    """30 rows: two features and a text label that depends on them."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2))
    label = np.where(x[:, 0] > 0, "yes", "no")
    label[:2] = ["yes", "no"]
    return x, label


def _rows(data):
    """Every (features..., label) row of a Dataset, original scale, sorted."""
    rows = []
    for part in ("train", "val", "test"):
        x, y = data.split(part)
        for features, index in zip(data.inverse_transform(x), y, strict=True):
            rows.append((*np.round(features, 9), data.class_names[index]))
    return sorted(rows)


def _expected(x, label):
    return sorted((*np.round(row, 9), text) for row, text in zip(x, label, strict=True))


def test_csv_round_trips_with_a_named_text_target(tmp_path, table):
    x, label = table
    path = tmp_path / "data.csv"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "answer": label}).to_csv(
        path, index=False
    )

    data = load_dataset("csv", path=path, target="answer", seed=0)

    assert data.name == "data.csv" and data.task == "classification"
    assert data.feature_names == ("a", "b") and data.target_name == "answer"
    assert data.class_names == ("no", "yes")
    assert _rows(data) == _expected(x, label)


def test_csv_target_may_be_a_column_index(tmp_path, table):
    x, label = table
    path = tmp_path / "data.csv"
    pd.DataFrame({"answer": label, "a": x[:, 0], "b": x[:, 1]}).to_csv(
        path, index=False
    )

    data = load_dataset("file", path=path, target=0)

    assert data.target_name == "answer" and data.feature_names == ("a", "b")


def test_csv_with_a_float_target_is_regression(tmp_path):
    frame = pd.DataFrame({"u": np.arange(20.0), "price": np.linspace(0.5, 9.7, 20)})
    path = tmp_path / "prices.csv"
    frame.to_csv(path, index=False)

    data = load_dataset("csv", path=path, target="price", standardize=False)

    assert data.task == "regression" and data.y_train.shape[1] == 1
    np.testing.assert_allclose(
        data.x_train[:, 0] * (9.2 / 19) + 0.5, data.y_train[:, 0]
    )


def test_task_can_overrule_the_inferred_one(tmp_path):
    frame = pd.DataFrame({"u": np.arange(20.0), "count": np.arange(20) % 4})
    path = tmp_path / "counts.csv"
    frame.to_csv(path, index=False)

    data = load_dataset("csv", path=path, target="count", task="regression")

    assert data.task == "regression" and data.n_classes is None


def test_tsv_is_read_with_tabs(tmp_path, table):
    x, label = table
    path = tmp_path / "data.tsv"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": label}).to_csv(
        path, sep="\t", index=False
    )

    assert _rows(load_dataset("file", path=path, target="y")) == _expected(x, label)


def test_plain_npy_round_trips_with_a_target_column_index(tmp_path):
    rng = np.random.default_rng(1)
    array = np.column_stack([rng.normal(size=(24, 3)), np.arange(24) % 3])
    path = tmp_path / "plain.npy"
    np.save(path, array)

    data = load_dataset("npy", path=path, target=-1, standardize=False)

    assert data.feature_names == ("column_0", "column_1", "column_2")
    assert data.class_names == ("0", "1", "2")
    restored = np.column_stack([data.x_train, data.y_train])
    expected = {tuple(row) for row in array}
    assert {tuple(row) for row in restored} <= expected


def test_plain_npy_names_features_by_their_position_in_the_file(tmp_path):
    array = np.column_stack([np.arange(12) % 2, np.arange(12.0), np.ones(12)])
    path = tmp_path / "first.npy"
    np.save(path, array)

    raw = read_data_file(path, target=0)

    assert raw.feature_names == ("column_1", "column_2")
    np.testing.assert_array_equal(raw.x, array[:, 1:])


def test_structured_npy_round_trips_with_a_named_target(tmp_path, table):
    x, label = table
    array = np.zeros(30, dtype=[("a", "f8"), ("b", "f4"), ("label", "U3")])
    array["a"], array["b"], array["label"] = x[:, 0], x[:, 1], label
    path = tmp_path / "records.npy"
    np.save(path, array)

    data = load_dataset("npy", path=path, target="label")

    assert data.feature_names == ("a", "b")
    assert len(_rows(data)) == 30 and data.class_names == ("no", "yes")


def test_npz_with_x_and_y_round_trips_with_its_names(tmp_path, table):
    x, label = table
    y = (label == "yes").astype(int)
    path = tmp_path / "xy.npz"
    np.savez(
        path, x=x, y=y, feature_names=np.array(["p", "q"]), class_names=["no", "yes"]
    )

    data = load_dataset("npz", path=path)

    assert data.feature_names == ("p", "q") and data.class_names == ("no", "yes")
    assert _rows(data) == _expected(x, label)


def test_npz_with_named_columns_round_trips(tmp_path, table):
    x, label = table
    path = tmp_path / "columns.npz"
    np.savez(path, a=x[:, 0], b=x[:, 1], answer=label)

    data = load_dataset("npz", path=path, target="answer")

    assert data.feature_names == ("a", "b")
    assert _rows(data) == _expected(x, label)


def test_drop_nan_drops_exactly_the_rows_with_nan(tmp_path, caplog):
    frame = pd.DataFrame({"a": np.arange(20.0), "y": np.arange(20) % 2})
    frame.loc[[3, 8], "a"] = np.nan
    path = tmp_path / "holes.csv"
    frame.to_csv(path, index=False)

    data = load_dataset("csv", path=path, target="y", drop_nan=True, standardize=False)

    assert data.n_samples == 18
    kept = np.concatenate([data.x_train, data.x_val, data.x_test])[:, 0]
    assert sorted(kept.tolist()) == [v for v in range(20) if v not in (3, 8)]
    assert "dropped 2 of 20 rows" in caplog.text
