"""Splits are seeded and stratified; standardisation uses training statistics only."""

from __future__ import annotations

import numpy as np
import pytest

from annlens.data import Standardizer, load_dataset, split_indices
from annlens.errors import ConfigError, DataError


def test_same_seed_gives_identical_splits():
    first = load_dataset("wine", seed=7)
    second = load_dataset("wine", seed=7)

    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


def test_different_seed_gives_a_different_split():
    first = load_dataset("wine", seed=7, standardize=False)
    second = load_dataset("wine", seed=8, standardize=False)

    assert first.x_test.shape == second.x_test.shape
    assert not np.array_equal(first.x_test, second.x_test)


def test_splits_are_disjoint_and_cover_every_sample():
    train, val, test = split_indices(100, 0.2, 0.1, np.random.default_rng(0))

    assert (len(train), len(val), len(test)) == (70, 20, 10)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(100))


def test_stratified_split_keeps_the_class_balance_in_every_part():
    labels = np.repeat([0, 1, 2], [60, 30, 10])

    parts = split_indices(100, 0.2, 0.2, np.random.default_rng(1), labels=labels)

    for part, size in zip(parts, (60, 20, 20), strict=True):
        counts = np.bincount(labels[part], minlength=3)
        assert counts.sum() == size
        np.testing.assert_allclose(counts / size, [0.6, 0.3, 0.1])


def test_stratified_split_sizes_are_exact_when_shares_do_not_divide():
    labels = np.repeat([0, 1, 2], [7, 5, 3])

    train, val, test = split_indices(15, 0.2, 0.2, np.random.default_rng(2), labels)

    assert (len(train), len(val), len(test)) == (9, 3, 3)
    assert set(labels[train]) == {0, 1, 2}


def test_loaded_classification_splits_are_stratified():
    data = load_dataset("breast_cancer", seed=0)
    overall = (
        np.bincount(np.concatenate([data.y_train, data.y_val, data.y_test]))
        / data.n_samples
    )

    for y in (data.y_train, data.y_val, data.y_test):
        np.testing.assert_allclose(np.bincount(y) / len(y), overall, atol=0.01)


def test_zero_fraction_gives_an_empty_split_of_the_right_width():
    data = load_dataset("iris", val_fraction=0.0, test_fraction=0.2)

    assert data.x_val.shape == (0, 4) and data.y_val.shape == (0,)
    assert len(data.y_train) == 120


@pytest.mark.parametrize(
    ("val", "test"), [(-0.1, 0.2), (0.5, 0.5), (0.2, 1.0), (True, 0.1)]
)
def test_impossible_fractions_are_refused(val, test):
    with pytest.raises(ConfigError, match="fraction"):
        load_dataset("iris", val_fraction=val, test_fraction=test)


def test_too_few_samples_for_the_split_is_a_data_error():
    with pytest.raises(DataError, match="too few"):
        split_indices(2, 0.3, 0.3, np.random.default_rng(0))


def test_standardisation_is_fitted_on_the_training_part_only():
    data = load_dataset("wine", seed=0)

    np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1.0)
    assert np.all(data.x_val.mean(axis=0) != 0.0)
    assert np.all(data.x_test.mean(axis=0) != 0.0)


def test_kept_mean_and_std_standardise_new_data_like_the_training_part():
    raw = load_dataset("wine", seed=0, standardize=False)
    data = load_dataset("wine", seed=0)

    np.testing.assert_allclose(data.mean, raw.x_train.mean(axis=0))
    np.testing.assert_allclose(data.transform(raw.x_test), data.x_test)
    np.testing.assert_allclose(data.inverse_transform(data.x_val), raw.x_val)


def test_constant_feature_is_standardised_to_zero_not_nan():
    x = np.column_stack([np.arange(5.0), np.full(5, 3.0)])

    scaler = Standardizer.fit(x)

    assert scaler.std[1] == 1.0
    np.testing.assert_array_equal(scaler.apply(x)[:, 1], 0.0)


def test_unstandardised_data_keeps_its_values_and_no_statistics():
    data = load_dataset("iris", seed=0, standardize=False)

    assert data.mean is None and data.std is None
    assert data.x_train.min() >= 0.1


def test_a_nearly_constant_feature_keeps_a_scale_like_the_others():
    from annlens.data.splits import STD_FLOOR, Standardizer

    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 2.0, size=(500, 4))
    x[:, 3] = 0.0
    x[0, 3] = 1.0  # one sample in five hundred: std about 0.045
    scaler = Standardizer.fit(x)
    # lopsided (std below a tenth of its range): raised to a tenth of the
    # larger of its range and the median std
    assert scaler.std[3] == pytest.approx(STD_FLOOR * np.median(x.std(axis=0)))
    np.testing.assert_allclose(scaler.std[:3], x[:, :3].std(axis=0), rtol=1e-12)
    held_out = scaler.apply(np.array([[0.0, 0.0, 0.0, 1.0]]))
    assert abs(held_out[0, 3]) <= 10


def test_a_feature_on_a_small_scale_is_not_floored_by_the_scale_of_others():
    from annlens.data.splits import Standardizer

    rng = np.random.default_rng(0)
    x = np.column_stack(
        [rng.normal(0, 1, 400), rng.normal(50, 115, 400), rng.integers(1, 3, 400)]
    )
    scaler = Standardizer.fit(x)

    np.testing.assert_allclose(scaler.std, x.std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scaler.apply(x).std(axis=0), 1.0, rtol=1e-12)


def test_digits_held_out_features_stay_within_a_few_dozen_deviations():
    from annlens.data import load_dataset

    data = load_dataset("digits", seed=0, val_fraction=0.2, test_fraction=0.2)
    assert np.abs(data.x_val).max() < 30
    assert np.abs(data.x_test).max() < 30
