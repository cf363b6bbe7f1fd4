"""Whole networks: random architectures pass gradcheck (hypothesis), and mixed
networks give PyTorch's outputs, loss and every gradient on the same weights.

gradcheck's error is the max-norm relative error per tensor,
``max|a - n| / max(max|a|, max|n|)``, at most 1e-6; against PyTorch (float64)
values and gradients agree to ``rtol=1e-10, atol=1e-12``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annlens import Activation, Dense, Sequential
from annlens.activations import get_activation
from annlens.analysis import gradcheck
from annlens.losses import get_loss

ELEMENTWISE = [
    "identity",
    "relu",
    "sigmoid",
    "tanh",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "softplus",
    "silu",
    "softsign",
    "hard_tanh",
]
LOSSES = ["mse", "huber", "softmax_cross_entropy", "binary_cross_entropy"]


def target_for(loss: str, batch: int, width: int, rng: np.random.Generator) -> Any:
    if loss == "softmax_cross_entropy":
        return rng.integers(0, width, batch)
    if loss == "binary_cross_entropy":
        return rng.uniform(0, 1, (batch, width))
    return rng.normal(size=(batch, width))


@st.composite
def networks(draw: st.DrawFn) -> tuple[Sequential, str, int]:
    depth = draw(st.integers(1, 4))
    widths = draw(st.lists(st.integers(1, 6), min_size=depth + 1, max_size=depth + 1))
    layers: list[Any] = []
    for n_in, n_out in zip(widths, widths[1:], strict=False):
        activation = draw(st.sampled_from([*ELEMENTWISE, "softmax"]))
        layers.append(Dense(n_in, n_out, activation, bias=draw(st.booleans())))
        if draw(st.integers(0, 3)) == 0:
            layers.append(Activation(draw(st.sampled_from(ELEMENTWISE))))
    model = Sequential(layers, seed=draw(st.integers(0, 2**16)), dtype="float64")
    return model, draw(st.sampled_from(LOSSES)), draw(st.integers(1, 5))


@settings(max_examples=25, deadline=None)
@given(network=networks(), seed=st.integers(0, 2**16))
def test_random_networks_pass_gradcheck(network, seed) -> None:
    model, loss, batch = network
    rng = np.random.default_rng(seed)
    # Non-zero biases: with zero ones, a sample whose ReLU units are all dead
    # reaches the next activation exactly at z = 0, a kink, where central
    # differences average the two one-sided slopes.
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"][...] = rng.normal(0, 0.5, layer.params["b"].shape)
    width = model.in_features
    for layer in model.layers:
        width = layer.out_features(width)
    x = rng.normal(size=(batch, model.in_features))
    report = gradcheck(model, x, target_for(loss, batch, width, rng), loss)
    assert report.passed, f"{model!r}\n{report}"


# -- PyTorch parity -------------------------------------------------------------


MIXED = {
    "relu-tanh-softmax": [
        Dense(5, 8, "relu"),
        Dense(8, 6, "tanh"),
        Dense(6, 4, "softmax"),
    ],
    "gelu-standalone-activations": [
        Dense(5, 7),
        Activation("gelu"),
        Dense(7, 7, "selu", bias=False),
        Activation(get_activation("leaky_relu", alpha=0.2)),
        Dense(7, 4),
    ],
    "smooth-deep": [
        Dense(5, 6, "silu"),
        Dense(6, 6, get_activation("softplus", beta=2.0)),
        Dense(6, 6, "softsign"),
        Dense(6, 6, get_activation("gelu", approximate="tanh")),
        Dense(6, 6, get_activation("elu", alpha=0.5)),
        Dense(6, 4, "sigmoid"),
    ],
    "hard-tanh-identity": [
        Dense(5, 9, get_activation("hard_tanh", min_val=-0.5, max_val=0.5)),
        Dense(9, 4, "identity", bias=False),
    ],
}


def torch_mirror(model: Sequential, torch: Any, torch_activation: Any) -> Any:
    """The same network in PyTorch: Linear(weight = W.T, bias = b) and functions."""
    steps = []
    for layer in model.layers:
        if isinstance(layer, Dense):
            linear = torch.nn.Linear(
                layer.n_in, layer.n_out, bias=layer.bias, dtype=torch.float64
            )
            with torch.no_grad():
                linear.weight.copy_(torch.tensor(layer.params["W"].T))
                if layer.bias:
                    linear.bias.copy_(torch.tensor(layer.params["b"]))
            steps.append((layer.name, linear, torch_activation(layer.activation)))
        else:
            steps.append((layer.name, None, torch_activation(layer.activation)))

    def run(x: Any) -> Any:
        for _, linear, function in steps:
            x = function(linear(x) if linear is not None else x)
        return x

    return run, {name: linear for name, linear, _ in steps if linear is not None}


@pytest.mark.torch
@pytest.mark.parametrize("loss_name", ["mse", "softmax_cross_entropy"])
@pytest.mark.parametrize("architecture", list(MIXED))
def test_mixed_networks_match_pytorch(
    architecture, loss_name, rng, torch_activation
) -> None:
    torch = pytest.importorskip("torch")
    model = Sequential(copy.deepcopy(MIXED[architecture]), seed=11, dtype="float64")
    x = rng.normal(size=(6, 5))
    y = target_for(loss_name, 6, 4, rng)
    for layer in model.layers:  # non-zero biases, so that they are tested too
        if "b" in layer.params:
            layer.params["b"][...] = rng.normal(size=layer.params["b"].shape)

    run, linears = torch_mirror(model, torch, torch_activation)
    t = torch.tensor(x, requires_grad=True)
    expected_output = run(t)
    if loss_name == "mse":
        expected = torch.nn.functional.mse_loss(expected_output, torch.tensor(y))
    else:
        expected = torch.nn.functional.cross_entropy(expected_output, torch.tensor(y))
    expected.backward()

    loss = get_loss(loss_name)
    output = model.forward(x)
    value, grad_output = loss.value_and_grad(output, y)
    grad_input = model.backward(grad_output)

    close = {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(output, expected_output.detach().numpy(), **close)
    assert value == pytest.approx(expected.item(), rel=1e-10)
    np.testing.assert_allclose(grad_input, t.grad.numpy(), **close)
    for name, linear in linears.items():
        grads = model.layer(name).grads
        np.testing.assert_allclose(grads["W"], linear.weight.grad.numpy().T, **close)
        if linear.bias is not None:
            np.testing.assert_allclose(grads["b"], linear.bias.grad.numpy(), **close)
