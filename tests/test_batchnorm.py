"""BatchNorm: forward and backward against PyTorch and finite differences,
running statistics, its own hook stages, and its argument checks."""

from __future__ import annotations

import numpy as np
import pytest

from annlens.errors import ConfigError, InputError, StateError
from annlens.layers import BatchNorm, Dense
from annlens.model import Sequential

FEATURES = 5


def make_layer(rng: np.random.Generator, affine: bool = True, **kw) -> BatchNorm:
    layer = BatchNorm(FEATURES, affine=affine, **kw)
    if affine:
        layer.params["gamma"] = rng.normal(1.0, 0.5, FEATURES)
        layer.params["beta"] = rng.normal(0.0, 0.5, FEATURES)
    return layer


def batch(rng: np.random.Generator, n: int = 8) -> np.ndarray:
    return rng.normal(2.0, 3.0, (n, FEATURES))


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(np.linalg.norm(a) + np.linalg.norm(b), 1e-30)
    return float(np.linalg.norm(a - b) / scale)


def numeric_gradient(f, value: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to ``value``."""
    grad = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        saved = value[index]
        value[index] = saved + h
        up = f()
        value[index] = saved - h
        down = f()
        value[index] = saved
        grad[index] = (up - down) / (2 * h)
    return grad


# -- finite differences -------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
def test_backward_matches_finite_differences(training: bool) -> None:
    rng = np.random.default_rng(0)
    layer = make_layer(rng)
    layer.buffers["running_mean"] = rng.normal(size=FEATURES)
    layer.buffers["running_var"] = rng.uniform(0.5, 2.0, FEATURES)
    layer.state.training = training
    x, weights = batch(rng), rng.normal(size=(8, FEATURES))

    def loss() -> float:
        return float((layer.forward(x) * weights).sum())

    loss()
    grad_input = layer.backward(weights)
    grads = dict(layer.grads)

    assert relative_error(grad_input, numeric_gradient(loss, x)) <= 1e-6
    for name in ("gamma", "beta"):
        numeric = numeric_gradient(loss, layer.params[name])
        assert relative_error(grads[name], numeric) <= 1e-6


def test_backward_without_affine_matches_finite_differences() -> None:
    rng = np.random.default_rng(1)
    layer = BatchNorm(FEATURES, affine=False)
    x, weights = batch(rng), rng.normal(size=(8, FEATURES))

    def loss() -> float:
        return float((layer.forward(x) * weights).sum())

    loss()
    grad_input = layer.backward(weights)
    assert layer.params == {}
    assert relative_error(grad_input, numeric_gradient(loss, x)) <= 1e-6


# -- PyTorch ------------------------------------------------------------------


def torch_twin(layer: BatchNorm):
    torch = pytest.importorskip("torch")
    twin = torch.nn.BatchNorm1d(
        FEATURES, eps=layer.eps, momentum=layer.momentum, affine=layer.affine
    ).double()
    with torch.no_grad():
        if layer.affine:
            twin.weight.copy_(torch.from_numpy(layer.params["gamma"]))
            twin.bias.copy_(torch.from_numpy(layer.params["beta"]))
        twin.running_mean.copy_(torch.from_numpy(layer.buffers["running_mean"]))
        twin.running_var.copy_(torch.from_numpy(layer.buffers["running_var"]))
    return twin


@pytest.mark.torch
@pytest.mark.parametrize("training", [True, False])
def test_forward_and_backward_match_pytorch(training: bool) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    layer = make_layer(rng)
    layer.buffers["running_mean"] = rng.normal(size=FEATURES)
    layer.buffers["running_var"] = rng.uniform(0.5, 2.0, FEATURES)
    twin = torch_twin(layer)
    layer.state.training = training
    twin.train(training)
    x, grad_output = batch(rng), rng.normal(size=(8, FEATURES))

    output = layer.forward(x)
    grad_input = layer.backward(grad_output)

    x_torch = torch.tensor(x, requires_grad=True)
    output_torch = twin(x_torch)
    output_torch.backward(torch.from_numpy(grad_output))
    np.testing.assert_allclose(output, output_torch.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(grad_input, x_torch.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(
        layer.grads["gamma"], twin.weight.grad.numpy(), atol=1e-10
    )
    np.testing.assert_allclose(layer.grads["beta"], twin.bias.grad.numpy(), atol=1e-10)


@pytest.mark.torch
def test_input_gradient_without_affine_matches_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    layer = BatchNorm(FEATURES, affine=False)
    twin = torch_twin(layer)
    x, grad_output = batch(rng), rng.normal(size=(8, FEATURES))

    output = layer.forward(x)
    grad_input = layer.backward(grad_output)

    x_torch = torch.tensor(x, requires_grad=True)
    output_torch = twin(x_torch)
    output_torch.backward(torch.from_numpy(grad_output))
    np.testing.assert_allclose(output, output_torch.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(grad_input, x_torch.grad.numpy(), atol=1e-10)


@pytest.mark.torch
def test_running_statistics_match_pytorch_after_several_steps() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    layer = make_layer(rng, momentum=0.3)
    twin = torch_twin(layer)
    for n in (8, 5, 12, 3):
        x = batch(rng, n)
        layer.forward(x)
        twin(torch.from_numpy(x))

    np.testing.assert_allclose(
        layer.buffers["running_mean"], twin.running_mean.numpy(), atol=1e-10
    )
    np.testing.assert_allclose(
        layer.buffers["running_var"], twin.running_var.numpy(), atol=1e-10
    )

    layer.state.training = False
    twin.eval()
    x = batch(rng)
    np.testing.assert_allclose(
        layer.forward(x), twin(torch.from_numpy(x)).detach().numpy(), atol=1e-10
    )


# -- statistics and modes ------------------------------------------------------


def test_training_output_is_normalised_per_feature() -> None:
    layer = BatchNorm(FEATURES)
    output = layer.forward(batch(np.random.default_rng(5), 64))
    np.testing.assert_allclose(output.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(output.var(axis=0), 1.0, rtol=1e-4)


def test_evaluation_mode_uses_running_statistics_and_updates_nothing() -> None:
    layer = BatchNorm(FEATURES)
    layer.buffers["running_mean"] = np.full(FEATURES, 2.0)
    layer.buffers["running_var"] = np.full(FEATURES, 4.0 - 1e-5)
    layer.state.training = False
    x = batch(np.random.default_rng(6))

    output = layer.forward(x)

    np.testing.assert_allclose(output, (x - 2.0) / 2.0, atol=1e-12)
    np.testing.assert_array_equal(layer.buffers["running_mean"], 2.0)


def test_running_mean_follows_the_momentum_convention() -> None:
    layer = BatchNorm(2, momentum=0.25)
    x = np.array([[1.0, 10.0], [3.0, 20.0]])
    layer.forward(x)
    np.testing.assert_allclose(layer.buffers["running_mean"], [0.5, 3.75])
    # unbiased variance of each column: 2 and 50
    np.testing.assert_allclose(layer.buffers["running_var"], [1.25, 13.25])


def test_a_batch_of_one_in_training_mode_is_refused() -> None:
    with pytest.raises(InputError, match="at least 2 samples"):
        BatchNorm(3).forward(np.ones((1, 3)))


def test_a_batch_of_one_in_evaluation_mode_is_fine() -> None:
    layer = BatchNorm(3)
    layer.state.training = False
    np.testing.assert_allclose(layer.forward(np.ones((1, 3))), 1 / np.sqrt(1 + 1e-5))


# -- in a model ----------------------------------------------------------------


def test_num_features_is_inferred_inside_a_model() -> None:
    model = Sequential([Dense(4, 6), BatchNorm(), Dense(6, 2)], dtype="float64")
    layer = model.layers[1]
    assert layer.name == "batchnorm_0"
    assert layer.num_features == 6
    assert layer.params["gamma"].shape == (6,)
    assert set(model.state_dict()) >= {
        "batchnorm_0.running_mean",
        "batchnorm_0.running_var",
    }


def test_a_num_features_that_does_not_fit_is_refused() -> None:
    with pytest.raises(ConfigError, match="expects 5 input features"):
        Sequential([Dense(4, 6), BatchNorm(5)])


def test_float32_model_keeps_float32_throughout() -> None:
    model = Sequential([Dense(4, 6), BatchNorm(), Dense(6, 2)], dtype="float32")
    output = model.forward(np.ones((3, 4)) + np.arange(3)[:, None])
    layer = model.layers[1]
    assert output.dtype == np.float32
    assert layer.buffers["running_var"].dtype == np.float32
    model.backward(np.ones((3, 2), dtype=np.float32))
    assert layer.grads["gamma"].dtype == np.float32


def test_float32_batch_sums_accumulate_in_float64() -> None:
    rng = np.random.default_rng(0)
    x = (1e4 + rng.normal(size=(4096, 3))).astype(np.float32)
    model = Sequential([BatchNorm(3)], seed=0, dtype="float32")

    model.forward(x)
    grad_output = (1e3 + rng.normal(size=x.shape)).astype(np.float32)
    grad_input = model.backward(grad_output)

    running = model[0].buffers["running_mean"]  # momentum 0.1 from 0
    exact = x.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(running, 0.1 * exact, rtol=2e-7)
    # the gradient of a normalised output sums to zero over the batch
    wide = grad_input.astype(np.float64).sum(axis=0)
    assert np.abs(wide).max() < 1e-3 * np.abs(grad_input).max() * len(x)


def test_standalone_layer_without_width_refuses_forward() -> None:
    with pytest.raises(StateError, match="num_features"):
        BatchNorm().forward(np.ones((4, 3)))


@pytest.mark.parametrize(
    "kwargs",
    [{"num_features": 0}, {"momentum": 1.5}, {"momentum": -0.1}, {"eps": 0.0}],
)
def test_bad_arguments_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        BatchNorm(**kwargs)


def test_repr_shows_the_settings() -> None:
    assert repr(BatchNorm(3, momentum=0.2)) == (
        "BatchNorm(num_features=3, momentum=0.2, eps=1e-05, affine=True, "
        "name='batchnorm')"
    )


# -- hook stages -----------------------------------------------------------------


def test_normalized_stage_shows_x_hat() -> None:
    model = Sequential([BatchNorm(FEATURES)], dtype="float64")
    seen = []
    model.register_hook("normalized", lambda layer, x_hat: seen.append(x_hat.copy()))
    x = batch(np.random.default_rng(7))

    model.forward(x)

    expected = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
    np.testing.assert_allclose(seen[0], expected, atol=1e-12)


def test_replacing_x_hat_changes_the_output_and_the_gamma_gradient() -> None:
    model = Sequential([BatchNorm(FEATURES)], dtype="float64")
    layer = model.layers[0]
    layer.params["gamma"] = np.full(FEATURES, 2.0)
    replacement = np.ones((8, FEATURES))
    model.register_hook("batchnorm_0.normalized", lambda layer, x_hat: replacement)

    output = model.forward(batch(np.random.default_rng(8)))
    model.backward(np.ones((8, FEATURES)))

    np.testing.assert_allclose(output, 2.0)
    np.testing.assert_allclose(layer.grads["gamma"], 8.0)


def test_normalized_grad_stage_shows_and_replaces_grad_x_hat() -> None:
    model = Sequential([BatchNorm(FEATURES)], dtype="float64")
    layer = model.layers[0]
    layer.params["gamma"] = np.full(FEATURES, 3.0)
    seen = []

    def zero_it(layer, grad_x_hat):
        seen.append(grad_x_hat.copy())
        return np.zeros_like(grad_x_hat)

    model.register_hook("normalized_grad", zero_it)
    model.forward(batch(np.random.default_rng(9)))
    grad_input = model.backward(np.ones((8, FEATURES)))

    np.testing.assert_allclose(seen[0], 3.0)
    np.testing.assert_array_equal(grad_input, 0.0)


def test_stages_are_listed_in_order_of_firing() -> None:
    model = Sequential([BatchNorm(FEATURES)], dtype="float64")
    fired = []
    for stage in BatchNorm.stages:
        model.register_hook(
            stage, lambda layer, *args, stage=stage: fired.append(stage)
        )
    model.forward(batch(np.random.default_rng(10)))
    model.backward(np.ones((8, FEATURES)))

    expected = [s for s in BatchNorm.stages if s not in ("gradient", "update")]
    assert fired == expected + ["gradient", "gradient"]
