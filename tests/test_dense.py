"""Dense and the standalone Activation layer: shapes, and every gradient proven
by finite differences and against PyTorch, with and without bias, for each
activation, built-in or user-defined.

Against finite differences the max-norm relative error
``max|a - n| / max(max|a|, max|n|)`` is at most 1e-6; against PyTorch
(float64) values and gradients agree to ``rtol=1e-10, atol=1e-12``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from annlens import Activation, Dense, FunctionActivation
from annlens.activations import Activation as ActivationFunction
from annlens.activations import get_activation
from annlens.layers.base import Layer

ACTIVATIONS: list[tuple[str, dict]] = [
    ("identity", {}),
    ("relu", {}),
    ("sigmoid", {}),
    ("tanh", {}),
    ("leaky_relu", {"alpha": 0.1}),
    ("elu", {"alpha": 0.7}),
    ("selu", {}),
    ("gelu", {}),
    ("gelu", {"approximate": "tanh"}),
    ("softplus", {"beta": 1.5}),
    ("silu", {}),
    ("softsign", {}),
    ("hard_tanh", {}),
    ("softmax", {}),
]
IDS = [name + "".join(f"-{v}" for v in s.values()) for name, s in ACTIVATIONS]
EPS = 1e-6


class Cube(ActivationFunction):
    """A user-defined activation by subclassing."""

    name = "cube"

    def forward(self, z):
        return z**3

    def derivative(self, z, a):
        return 3 * z**2

    def second_derivative(self, z, a):
        return 6 * z


def error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """Max-norm relative error, written out here independently of annlens."""
    scale = max(np.abs(analytic).max(), np.abs(numeric).max(), 1e-12)
    return float(np.abs(analytic - numeric).max() / scale)


def numeric_gradient(f: Callable[[], float], value: np.ndarray) -> np.ndarray:
    grad = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        saved = value[index]
        up, down = saved + EPS, saved - EPS
        value[index] = up
        loss_up = f()
        value[index] = down
        loss_down = f()
        value[index] = saved
        grad[index] = (loss_up - loss_down) / (up - down)
    return grad


def assert_gradients_match_finite_differences(
    layer: Layer, x: np.ndarray, rng: np.random.Generator
) -> None:
    """The loss is a random linear function of the output: sum(output * w)."""
    weights = rng.normal(size=layer.forward(x).shape)

    def loss() -> float:
        return float(np.sum(layer.forward(x) * weights))

    loss()
    grad_input = layer.backward(weights)
    grads = {key: value.copy() for key, value in layer.grads.items()}

    assert error(grad_input, numeric_gradient(loss, x)) <= 1e-6
    for key, value in layer.params.items():
        assert error(grads[key], numeric_gradient(loss, value)) <= 1e-6


# -- shapes and settings -------------------------------------------------------------


def test_dense_maps_a_batch_to_its_units_with_w_of_shape_in_by_out(rng) -> None:
    layer = Dense(3, 5, seed=0)
    x = rng.normal(size=(7, 3))
    assert layer.params["W"].shape == (3, 5) and layer.params["b"].shape == (5,)
    np.testing.assert_allclose(
        layer.forward(x), x @ layer.params["W"] + layer.params["b"]
    )


def test_dense_without_bias_has_only_w() -> None:
    layer = Dense(3, 5, bias=False)
    assert list(layer.params) == ["W"] and layer.parameter_count() == 15


def test_dense_in_float32_computes_in_float32(rng) -> None:
    layer = Dense(3, 4, "gelu", dtype=np.float32)
    output = layer.forward(rng.normal(size=(2, 3)).astype(np.float32))
    grad_input = layer.backward(np.ones_like(output))
    assert output.dtype == np.float32 and grad_input.dtype == np.float32
    assert layer.grads["W"].dtype == np.float32


def test_relu_family_defaults_to_he_init_and_others_to_glorot() -> None:
    assert Dense(3, 4, "relu").describe()["init"] == "he_normal"
    assert Dense(3, 4, "tanh").describe()["init"] == "glorot_uniform"


# -- finite differences ---------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize(("name", "settings"), ACTIVATIONS, ids=IDS)
def test_dense_gradients_match_finite_differences(name, settings, bias, rng) -> None:
    layer = Dense(4, 3, get_activation(name, **settings), bias=bias, seed=2)
    if bias:
        layer.params["b"] = rng.normal(size=3)
    assert_gradients_match_finite_differences(layer, rng.normal(size=(5, 4)), rng)


@pytest.mark.parametrize(("name", "settings"), ACTIVATIONS, ids=IDS)
def test_activation_layer_gradient_matches_finite_differences(
    name, settings, rng
) -> None:
    layer = Activation(get_activation(name, **settings))
    assert_gradients_match_finite_differences(layer, rng.normal(size=(5, 4)), rng)


@pytest.mark.parametrize(
    "activation",
    [
        Cube(),
        FunctionActivation(np.sin, np.cos, lambda z: -np.sin(z), name="sine"),
    ],
    ids=["subclass", "function"],
)
def test_user_defined_activation_works_inside_dense(activation, rng) -> None:
    layer = Dense(4, 3, activation, seed=4)
    x = rng.normal(size=(5, 4))
    z = x @ layer.params["W"] + layer.params["b"]
    np.testing.assert_allclose(layer.forward(x), activation.forward(z))
    assert layer.describe()["activation"] == activation.name
    assert_gradients_match_finite_differences(layer, x, rng)


# -- PyTorch parity ------------------------------------------------------------


@pytest.mark.torch
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize(("name", "settings"), ACTIVATIONS, ids=IDS)
def test_dense_matches_pytorch(name, settings, bias, rng, torch_activation) -> None:
    torch = pytest.importorskip("torch")
    act = get_activation(name, **settings)
    layer = Dense(4, 3, act, bias=bias, seed=6)
    if bias:
        layer.params["b"] = rng.normal(size=3)
    x, grad_output = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))

    linear = torch.nn.Linear(4, 3, bias=bias, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(layer.params["W"].T))
        if bias:
            linear.bias.copy_(torch.tensor(layer.params["b"]))
    t = torch.tensor(x, requires_grad=True)
    expected = torch_activation(act)(linear(t))
    expected.backward(torch.tensor(grad_output))

    output = layer.forward(x)
    grad_input = layer.backward(grad_output)
    close = {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(output, expected.detach().numpy(), **close)
    np.testing.assert_allclose(grad_input, t.grad.numpy(), **close)
    np.testing.assert_allclose(layer.grads["W"], linear.weight.grad.numpy().T, **close)
    if bias:
        np.testing.assert_allclose(layer.grads["b"], linear.bias.grad.numpy(), **close)


def test_config_keeps_an_initialisers_name_and_settings():
    from annlens.io.architecture import build_model, describe_model
    from annlens.layers import get_initializer
    from annlens.model import Sequential

    init = get_initializer("normal", std=0.01)
    model = Sequential([Dense(4, 3, "relu", init)], seed=0, in_features=4)
    layer = model.layers[0]
    assert isinstance(layer, Dense)
    assert layer.config()["init"] == {"name": "normal", "std": 0.01}
    rebuilt = build_model(describe_model(model)).layers[0]
    assert isinstance(rebuilt, Dense)
    assert rebuilt.describe()["init"] == "normal(std=0.01)"
    assert rebuilt.weight_init.std == 0.01
