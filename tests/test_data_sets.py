"""Each built-in data set loads offline with the right shapes, task and classes."""

from __future__ import annotations

import numpy as np
import pytest

from annlens.data import (
    dataset_from_arrays,
    dataset_info,
    dataset_names,
    describe_datasets,
    load_dataset,
    make_spirals,
    mnist1d_data,
)

EXPECTED = {
    # name: (task, samples, features, classes)
    "digits": ("classification", 1797, 64, 10),
    "iris": ("classification", 150, 4, 3),
    "wine": ("classification", 178, 13, 3),
    "breast_cancer": ("classification", 569, 30, 2),
    "diabetes": ("regression", 442, 10, None),
    "moons": ("classification", 400, 2, 2),
    "circles": ("classification", 400, 2, 2),
    "spirals": ("classification", 600, 2, 2),
}


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """Point the MNIST-1D cache at a temporary folder."""
    monkeypatch.setenv("ANNLENS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_dataset_names_lists_every_built_in_set():
    assert dataset_names() == sorted([*EXPECTED, "mnist1d"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_built_in_set_loads_with_its_shapes_task_and_classes(name):
    task, samples, features, classes = EXPECTED[name]
    data = load_dataset(name, seed=0)

    assert data.task == task
    assert data.n_samples == samples
    assert data.n_features == features == len(data.feature_names)
    assert data.n_classes == classes
    for x, y in (data.split(s) for s in ("train", "val", "test")):
        assert x.dtype == np.float64 and x.shape[1] == features
        assert len(x) == len(y)
    if task == "classification":
        assert data.y_train.dtype == np.int64 and data.y_train.ndim == 1
        assert len(data.class_names) == classes
        assert set(np.unique(data.y_train)) == set(range(classes))
    else:
        assert data.y_train.dtype == np.float64 and data.y_train.shape[1] == 1
        assert data.class_names is None and data.n_outputs == 1


def test_describe_datasets_matches_what_loads():
    rows = describe_datasets()

    assert [row["name"] for row in rows] == dataset_names()
    for row in rows:
        assert list(row) == ["name", "task", "samples", "features", "classes"]
        if row["name"] == "mnist1d":
            assert (row["samples"], row["features"], row["classes"]) == (5000, 40, 10)
            continue
        data = load_dataset(row["name"])
        assert (row["task"], row["samples"], row["features"], row["classes"]) == (
            data.task,
            data.n_samples,
            data.n_features,
            data.n_classes,
        )


def test_dataset_info_describes_each_set_in_words():
    for name in dataset_names():
        assert dataset_info(name).description.endswith(".")


def test_mnist1d_is_generated_offline_with_forty_features(private_cache):
    data = load_dataset("mnist1d", n_samples=200, seed=0)

    assert data.n_samples == 200 and data.n_features == 40
    assert data.n_classes == 10
    assert (
        np.bincount(np.concatenate([data.y_train, data.y_val, data.y_test])).min() == 20
    )


def test_mnist1d_generation_leaves_the_global_random_state_alone(private_cache):
    np.random.seed(123)
    expected = np.random.random_sample()
    np.random.seed(123)

    load_dataset("mnist1d", n_samples=100)

    assert np.random.random_sample() == expected


def test_mnist1d_cache_holds_the_generated_arrays(private_cache):
    first = load_dataset("mnist1d", n_samples=100, seed=0)
    files = list(private_cache.iterdir())
    x, y = mnist1d_data.generate_mnist1d(100)
    second = load_dataset("mnist1d", n_samples=100, seed=0)

    assert len(files) == 1 and files[0].suffix == ".npz"
    with np.load(files[0], allow_pickle=False) as stored:
        np.testing.assert_array_equal(stored["x"], x)
        np.testing.assert_array_equal(stored["y"], y)
    np.testing.assert_array_equal(first.x_train, second.x_train)


def test_mnist1d_regenerates_over_a_damaged_cache(private_cache):
    load_dataset("mnist1d", n_samples=100)
    (cached,) = private_cache.iterdir()
    cached.write_bytes(b"not a zip file")

    data = load_dataset("mnist1d", n_samples=100)

    assert data.n_samples == 100
    with np.load(cached, allow_pickle=False) as stored:
        assert stored["x"].shape == (100, 40)


def test_mnist1d_runs_without_a_cache(monkeypatch):
    monkeypatch.setenv("ANNLENS_CACHE_DIR", "off")

    assert mnist1d_data.cache_dir() is None
    assert load_dataset("mnist1d", n_samples=50).n_samples == 50


@pytest.mark.slow
def test_mnist1d_default_has_five_thousand_signals(private_cache):
    data = load_dataset("mnist1d")

    assert data.n_samples == 5000 and data.n_features == 40


@pytest.mark.parametrize("name", ["moons", "circles", "spirals"])
def test_generated_sets_follow_n_samples_and_seed(name):
    small = load_dataset(name, n_samples=50, seed=3, standardize=False)
    again = load_dataset(name, n_samples=50, seed=3, standardize=False)
    other = load_dataset(name, n_samples=50, seed=4, standardize=False)

    assert small.n_samples == 50
    np.testing.assert_array_equal(small.x_train, again.x_train)
    assert not np.array_equal(
        np.sort(small.x_train, axis=0), np.sort(other.x_train, axis=0)
    )


def test_noise_changes_how_far_points_stray():
    clean = load_dataset("moons", noise=0.0, standardize=False, seed=0)
    noisy = load_dataset("moons", noise=0.5, standardize=False, seed=0)

    # Noise-free moons lie on unit half circles: the upper one (class 0) is
    # centred at (0, 0), the lower one (class 1) at (1, 0.5).
    centres = np.array([[0.0, 0.0], [1.0, 0.5]])[clean.y_train]
    radius = np.hypot(*(clean.x_train - centres).T)
    np.testing.assert_allclose(radius, 1.0)
    assert noisy.x_train.std() > clean.x_train.std()


def test_spirals_put_each_arm_half_a_turn_from_the_other():
    x, y = make_spirals(400, np.random.default_rng(0), noise=0.0)
    angle = np.arctan2(x[:, 1], x[:, 0])
    radius = np.hypot(x[:, 0], x[:, 1])

    # Noise-free: theta = 2 pi (1.5 r + k / 2), so the arms differ by pi.
    expected = 2 * np.pi * (1.5 * radius + y / 2)
    np.testing.assert_allclose(np.cos(angle), np.cos(expected), atol=1e-9)
    assert np.bincount(y).tolist() == [200, 200]


def test_dataset_from_arrays_encodes_text_labels_in_sorted_order():
    x = np.arange(40.0).reshape(20, 2)
    y = np.array(["dog", "cat"] * 10)

    data = dataset_from_arrays(x, y, seed=0)

    assert data.class_names == ("cat", "dog")
    original = {tuple(row): label for row, label in zip(x, y, strict=True)}
    restored = data.inverse_transform(data.x_train)
    for row, index in zip(restored, data.y_train, strict=True):
        assert original[tuple(np.round(row, 9))] == data.class_names[index]


def test_dataset_repr_names_the_set_and_its_splits():
    text = repr(load_dataset("iris", seed=0))

    assert text.startswith("Dataset(name='iris'") and "train=106" in text
