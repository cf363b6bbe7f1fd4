"""Initialisers: on large matrices, mean, variance, bounds and orthogonality
match their definitions; every registered name works; unknown names and bad
settings are refused with the known names listed.

A weight has shape (fan_in, fan_out) = (in_features, out_features).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from annlens.errors import ConfigError, UnknownNameError
from annlens.layers import Dense, get_initializer, initializer_names
from annlens.layers.init import Initializer, gain

FAN_IN, FAN_OUT = 300, 500  # 150,000 draws: sample variance within about 1 %


def draw(name: str, shape=(FAN_IN, FAN_OUT), seed: int = 0, **settings) -> np.ndarray:
    init = get_initializer(name, **settings)
    return init(shape, np.random.default_rng(seed), np.float64)


def assert_moments(w: np.ndarray, variance: float) -> None:
    assert abs(w.mean()) < 4 * math.sqrt(variance / w.size)
    assert w.var() == pytest.approx(variance, rel=0.03)


# -- every name ----------------------------------------------------------------


@pytest.mark.parametrize("name", initializer_names())
def test_every_registered_name_gives_a_finite_array_of_the_asked_shape(name) -> None:
    init = get_initializer(name)
    for dtype in (np.float32, np.float64):
        w = init((7, 5), np.random.default_rng(1), dtype)
        assert w.shape == (7, 5) and w.dtype == dtype and np.all(np.isfinite(w))


@pytest.mark.parametrize("name", initializer_names())
def test_every_registered_name_is_reproducible_from_the_generator(name) -> None:
    assert np.array_equal(draw(name, (6, 4), seed=3), draw(name, (6, 4), seed=3))


@pytest.mark.parametrize("name", initializer_names())
def test_every_registered_name_works_as_a_dense_init(name, rng) -> None:
    layer = Dense(4, 3, init=name, seed=0)
    assert layer.params["W"].shape == (4, 3)
    assert np.all(np.isfinite(layer.forward(rng.normal(size=(2, 4)))))


# -- the variance-scaling family -----------------------------------------------


@pytest.mark.parametrize("name", ["glorot_normal", "xavier_normal"])
def test_glorot_normal_has_variance_two_over_fan_sum(name) -> None:
    assert_moments(draw(name), 2 / (FAN_IN + FAN_OUT))


@pytest.mark.parametrize("name", ["glorot_uniform", "xavier_uniform"])
def test_glorot_uniform_has_bound_sqrt_six_over_fan_sum(name) -> None:
    w, bound = draw(name), math.sqrt(6 / (FAN_IN + FAN_OUT))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert_moments(w, 2 / (FAN_IN + FAN_OUT))


def test_glorot_gain_scales_the_standard_deviation() -> None:
    w = draw("glorot_normal", gain=5 / 3)
    assert_moments(w, (5 / 3) ** 2 * 2 / (FAN_IN + FAN_OUT))


@pytest.mark.parametrize("name", ["he_normal", "kaiming_normal"])
def test_he_normal_has_variance_two_over_fan_in(name) -> None:
    assert_moments(draw(name), 2 / FAN_IN)


@pytest.mark.parametrize("name", ["he_uniform", "kaiming_uniform"])
def test_he_uniform_has_bound_sqrt_six_over_fan_in(name) -> None:
    w, bound = draw(name), math.sqrt(6 / FAN_IN)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert_moments(w, 2 / FAN_IN)


def test_he_with_fan_out_uses_the_output_width() -> None:
    assert_moments(draw("he_normal", mode="fan_out"), 2 / FAN_OUT)


def test_he_for_leaky_relu_uses_its_gain() -> None:
    w = draw("he_normal", nonlinearity="leaky_relu", alpha=0.2)
    assert_moments(w, 2 / (1 + 0.2**2) / FAN_IN)


def test_lecun_normal_has_variance_one_over_fan_in() -> None:
    assert_moments(draw("lecun_normal"), 1 / FAN_IN)


def test_lecun_uniform_has_bound_sqrt_three_over_fan_in() -> None:
    w, bound = draw("lecun_uniform"), math.sqrt(3 / FAN_IN)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert_moments(w, 1 / FAN_IN)


@pytest.mark.parametrize(
    ("activation", "expected"),
    [
        ("identity", 1.0),
        ("sigmoid", 1.0),
        ("tanh", 5 / 3),
        ("relu", math.sqrt(2)),
        ("selu", 0.75),
        ("gelu", 1.0),
    ],
)
def test_gain_follows_the_recommended_values(activation, expected) -> None:
    assert gain(activation) == pytest.approx(expected)


def test_leaky_relu_gain_depends_on_its_slope() -> None:
    assert gain("leaky_relu", alpha=0.2) == pytest.approx(math.sqrt(2 / 1.04))


# -- plain distributions -------------------------------------------------------


def test_normal_has_the_asked_mean_and_standard_deviation() -> None:
    w = draw("normal", std=0.3, mean=1.5)
    assert w.mean() == pytest.approx(1.5, abs=4 * 0.3 / math.sqrt(w.size))
    assert w.std() == pytest.approx(0.3, rel=0.02)


def test_uniform_stays_within_its_bound() -> None:
    w = draw("uniform", a=0.25)
    assert np.abs(w).max() <= 0.25 and np.abs(w).max() > 0.249
    assert_moments(w, 0.25**2 / 3)


def test_constant_and_zeros_fill_every_entry() -> None:
    assert np.all(draw("constant", (3, 4), value=0.7) == 0.7)
    assert np.all(draw("zeros", (3, 4)) == 0.0)


# -- orthogonal ----------------------------------------------------------------


@pytest.mark.parametrize("shape", [(200, 80), (80, 200), (120, 120)])
def test_orthogonal_has_orthonormal_rows_or_columns(shape) -> None:
    w = draw("orthogonal", shape)
    small = min(shape)
    product = w.T @ w if shape[0] >= shape[1] else w @ w.T
    np.testing.assert_allclose(product, np.eye(small), atol=1e-12)


def test_orthogonal_gain_scales_the_singular_values() -> None:
    w = draw("orthogonal", (60, 40), gain=2.0)
    np.testing.assert_allclose(np.linalg.svd(w, compute_uv=False), 2.0, rtol=1e-12)


def test_orthogonal_draws_differ_with_the_generator() -> None:
    assert not np.allclose(draw("orthogonal", (5, 5), 1), draw("orthogonal", (5, 5), 2))


# -- refusals ------------------------------------------------------------------


def test_unknown_initializer_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as caught:
        get_initializer("he_norml")
    message = str(caught.value)
    assert "'he_norml'" in message and "did you mean 'he_normal'" in message
    for name in initializer_names():
        assert name in message


def test_unknown_initializer_in_dense_is_refused_with_the_known_names() -> None:
    with pytest.raises(UnknownNameError, match="glorot_uniform"):
        Dense(3, 4, init="gaussian")


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("variance_scaling", {"mode": "fan_sum"}),
        ("variance_scaling", {"distribution": "laplace"}),
        ("normal", {"std": -1.0}),
        ("uniform", {"a": -1.0}),
        ("lecun_normal", {"gain": 2.0}),
    ],
    ids=["mode", "distribution", "std", "bound", "unknown-setting"],
)
def test_bad_initializer_settings_are_refused(name, settings) -> None:
    with pytest.raises(ConfigError):
        get_initializer(name, **settings)


def test_an_initializer_instance_is_returned_unchanged() -> None:
    init = get_initializer("he_uniform")
    assert isinstance(init, Initializer) and get_initializer(init) is init


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("glorot_uniform", {"gain": -2.0}, "must be a finite number >= 0, got -2.0"),
        ("constant", {"value": math.nan}, "value must be a finite number, got nan"),
        ("normal", {"std": "0.1"}, "std must be a finite number >= 0, got '0.1'"),
        ("uniform", {"a": math.inf}, "a must be a finite number >= 0, got inf"),
        ("orthogonal", {"gain": None}, "gain must be a finite number, got None"),
    ],
)
def test_a_setting_that_is_not_a_usable_number_is_refused_naming_it(
    name, settings, message
) -> None:
    with pytest.raises(ConfigError, match=message):
        get_initializer(name, **settings)
