"""annlens and PyTorch agree through annlens.compare, for every part they share.

Every registered activation, loss and optimizer, every layer, and
hypothesis-drawn networks: float64, relative differences of at most 1e-10 at
every hook point, and over a few training steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annlens import Activation, Dense, Sequential
from annlens.activations import activation_names
from annlens.analysis.compare import compare_models, compare_training
from annlens.layers import BatchNorm, Dropout
from annlens.losses import get_loss, loss_names
from annlens.optim import optimizer_names

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

TOLERANCE = 1e-10

# Settings that switch on each optimizer's options, so that all of them are proven.
OPTIMIZER_SETTINGS: dict[str, list[dict[str, Any]]] = {
    "sgd": [
        {"lr": 0.1},
        {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01},
        {"lr": 0.1, "momentum": 0.9, "nesterov": True},
    ],
    "adam": [
        {"lr": 0.01},
        {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1},
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
    ],
    "adamw": [{"lr": 0.01}, {"lr": 0.01, "amsgrad": True}],
    "nadam": [{"lr": 0.01}, {"lr": 0.01, "weight_decay": 0.1}],
    "adamax": [{"lr": 0.01, "weight_decay": 0.1}],
    "adagrad": [
        {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1},
    ],
    "rmsprop": [
        {"lr": 0.01},
        {"lr": 0.01, "momentum": 0.5, "centered": True, "weight_decay": 0.1},
    ],
    "adadelta": [{"lr": 1.0, "weight_decay": 0.1}],
}


def assert_agrees(result: Any) -> None:
    assert result.tolerance == TOLERANCE
    assert result.agrees, result.failures()


def inputs(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    return rng.standard_normal((n, width)) * 1.5


def classes(rng: np.random.Generator, n: int, k: int = 3) -> np.ndarray:
    return rng.integers(0, k, n)


@pytest.mark.parametrize("name", activation_names())
def test_every_activation_inside_dense_matches_pytorch(name: str) -> None:
    rng = np.random.default_rng(0)
    model = Sequential([Dense(4, 6, name), Dense(6, 3)], seed=1, dtype="float64")
    loss = get_loss("cross_entropy")
    assert_agrees(compare_models(model, inputs(rng, 7, 4), classes(rng, 7), loss))


@pytest.mark.parametrize("name", activation_names())
def test_every_activation_as_a_layer_matches_pytorch(name: str) -> None:
    rng = np.random.default_rng(1)
    model = Sequential(
        [Dense(4, 5), Activation(name), Dense(5, 2)], seed=2, dtype="float64"
    )
    loss = get_loss("mse")
    x, y = inputs(rng, 6, 4), rng.standard_normal((6, 2))
    assert_agrees(compare_models(model, x, y, loss))


def loss_case(name: str, rng: np.random.Generator) -> tuple[Any, np.ndarray]:
    """A loss and targets of the kind it takes, for a (6, 3) output."""
    loss = get_loss(name)
    if loss.name in ("softmax_cross_entropy", "nll"):
        return loss, classes(rng, 6)
    if loss.name == "binary_cross_entropy":
        return loss, rng.uniform(0, 1, (6, 3))
    return loss, rng.standard_normal((6, 3))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", loss_names())
def test_every_loss_matches_pytorch(name: str, reduction: str) -> None:
    rng = np.random.default_rng(2)
    loss, y = loss_case(name, rng)
    loss.reduction = reduction
    model = Sequential([Dense(4, 5, "tanh"), Dense(5, 3)], seed=3, dtype="float64")
    assert_agrees(compare_models(model, inputs(rng, 6, 4), y, loss))


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_on_class_probabilities_matches_pytorch(
    smoothing: float,
) -> None:
    rng = np.random.default_rng(3)
    q = rng.dirichlet(np.ones(3), 6)
    loss = get_loss("cross_entropy", label_smoothing=smoothing)
    model = Sequential([Dense(4, 3)], seed=4, dtype="float64")
    assert_agrees(compare_models(model, inputs(rng, 6, 4), q, loss))


def test_huber_with_errors_on_both_sides_of_delta_matches_pytorch() -> None:
    rng = np.random.default_rng(4)
    loss = get_loss("huber", delta=0.5)
    model = Sequential([Dense(4, 3)], seed=5, dtype="float64")
    y = rng.standard_normal((6, 3)) * 3
    assert_agrees(compare_models(model, inputs(rng, 6, 4), y, loss))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_matches_pytorch(training: bool, affine: bool) -> None:
    rng = np.random.default_rng(5)
    model = Sequential(
        [Dense(4, 6, "relu"), BatchNorm(affine=affine, momentum=0.3), Dense(6, 3)],
        seed=6,
        dtype="float64",
    )
    model.layers[1].buffers["running_mean"] = rng.standard_normal(6)
    model.layers[1].buffers["running_var"] = rng.uniform(0.5, 2, 6)
    model.train(training)
    loss = get_loss("cross_entropy")
    assert_agrees(compare_models(model, inputs(rng, 8, 4), classes(rng, 8), loss))


@pytest.mark.parametrize("training", [True, False])
def test_dropout_matches_pytorch_with_the_same_mask(training: bool) -> None:
    rng = np.random.default_rng(6)
    model = Sequential(
        [Dense(4, 16, "relu"), Dropout(0.5), Dense(16, 3)], seed=7, dtype="float64"
    )
    model.train(training)
    loss = get_loss("cross_entropy")
    assert_agrees(compare_models(model, inputs(rng, 8, 4), classes(rng, 8), loss))


def test_dense_without_bias_matches_pytorch() -> None:
    rng = np.random.default_rng(7)
    model = Sequential(
        [Dense(4, 5, "sigmoid", bias=False), Dense(5, 3, bias=False)],
        seed=8,
        dtype="float64",
    )
    loss = get_loss("cross_entropy")
    assert_agrees(compare_models(model, inputs(rng, 6, 4), classes(rng, 6), loss))


def test_float32_matches_pytorch_to_float32_precision() -> None:
    rng = np.random.default_rng(8)
    model = Sequential(
        [Dense(4, 8, "gelu"), BatchNorm(), Dense(8, 3)], seed=9, dtype="float32"
    )
    loss = get_loss("cross_entropy")
    result = compare_models(model, inputs(rng, 8, 4), classes(rng, 8), loss)
    assert result.agrees and result.tolerance == 1e-4
    assert result.max_rel > 0


@pytest.mark.parametrize(
    ("name", "hyper"),
    [(name, hyper) for name in optimizer_names() for hyper in OPTIMIZER_SETTINGS[name]],
)
def test_every_optimizer_trains_like_torch_optim(
    name: str, hyper: dict[str, Any]
) -> None:
    rng = np.random.default_rng(9)
    model = Sequential(
        [Dense(4, 6, "tanh"), BatchNorm(), Dropout(0.2), Dense(6, 3)],
        seed=10,
        dtype="float64",
    )
    x, y = inputs(rng, 24, 4), classes(rng, 24)
    loss = get_loss("cross_entropy")
    result = compare_training(model, name, hyper, x, y, loss, 6, 8)
    assert result.agrees_within(TOLERANCE), result.to_dataframe()
    assert result.steps[-1].loss_annlens != result.steps[0].loss_annlens


LAYER_KINDS = st.sampled_from(["dense", "dense", "activation", "batchnorm", "dropout"])


@st.composite
def networks(draw: st.DrawFn) -> tuple[Sequential, int]:
    """A float64 Sequential of 1 to 5 layers ending in Dense, and its input width."""
    width = first = draw(st.integers(1, 6))
    layers: list[Any] = []
    for kind in draw(st.lists(LAYER_KINDS, max_size=4)):
        if kind == "dense":
            units = draw(st.integers(1, 6))
            activation = draw(st.sampled_from(activation_names()))
            layers.append(Dense(width, units, activation, bias=draw(st.booleans())))
            width = units
        elif kind == "activation":
            layers.append(Activation(draw(st.sampled_from(activation_names()))))
        elif kind == "batchnorm":
            layers.append(BatchNorm())
        else:
            layers.append(Dropout(draw(st.sampled_from([0.0, 0.3, 0.6]))))
    layers.append(Dense(width, 3))
    seed = draw(st.integers(0, 2**16))
    return Sequential(layers, seed=seed, dtype="float64", in_features=first), first


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(), st.integers(2, 6), st.integers(0, 2**16))
def test_generated_networks_match_pytorch(
    network: tuple[Sequential, int], n: int, data_seed: int
) -> None:
    model, width = network
    rng = np.random.default_rng(data_seed)
    loss = get_loss("cross_entropy")
    assert_agrees(compare_models(model, inputs(rng, n, width), classes(rng, n), loss))
