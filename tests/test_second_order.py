"""Second-order analysis: exact Hessian-vector products and the spectrum tools.

Every Hessian-vector product is proven twice, in float64: against the central
difference of gradients ``(grad(theta + eps v) - grad(theta - eps v)) / 2 eps``
(max-norm relative error <= 1e-6), and against PyTorch's double-backward
product on the same weights, masks and targets (<= 1e-10). The dense Hessian,
the eigenvalues and the trace are checked against PyTorch and numpy.linalg.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from annlens.analysis.second_order import (
    HessianOperator,
    hessian,
    hessian_eigenvalues,
    hessian_trace,
    hessian_vector_product,
    hutchinson_trace,
    lanczos,
    power_iteration,
)
from annlens.errors import ConfigError, ShapeError
from annlens.layers import Activation, BatchNorm, Dense, Dropout, Layer
from annlens.losses import MAE, MSE, BinaryCrossEntropy, Loss, SoftmaxCrossEntropy
from annlens.model import Sequential

Case = tuple[Sequential, np.ndarray, Any, Loss]


def _finish(model: Sequential, rng: np.random.Generator) -> Sequential:
    """Random biases, so that no ReLU-like unit sits exactly on its kink."""
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"][...] = rng.normal(0, 0.5, layer.params["b"].shape)
        if "gamma" in layer.params:
            layer.params["gamma"][...] = rng.uniform(
                0.5, 1.5, layer.params["gamma"].shape
            )
            layer.params["beta"][...] = rng.normal(0, 0.3, layer.params["beta"].shape)
    return model


def case(name: str, rng: np.random.Generator) -> Case:
    """A float64 network, a batch, its targets and a loss, by name."""
    x = rng.normal(size=(6, 4))
    if name == "mse_tanh":
        model = Sequential([Dense(4, 5, "tanh"), Dense(5, 3)], seed=1, dtype="float64")
        return _finish(model, rng), x, rng.normal(size=(6, 3)), MSE()
    if name == "cross_entropy_sigmoid_softplus":
        layers = [Dense(4, 5, "sigmoid"), Activation("softplus"), Dense(5, 3)]
        model = Sequential(layers, seed=2, dtype="float64")
        labels = rng.integers(0, 3, 6)
        return _finish(model, rng), x, labels, SoftmaxCrossEntropy(label_smoothing=0.1)
    if name == "cross_entropy_sum_soft_targets_no_bias":
        layers = [Dense(4, 5, "silu", bias=False), Dense(5, 3, "elu")]
        model = Sequential(layers, seed=3, dtype="float64")
        q = rng.dirichlet(np.ones(3), 6)
        return _finish(model, rng), x, q, SoftmaxCrossEntropy(reduction="sum")
    if name in ("bce_batchnorm_dropout_train", "bce_batchnorm_eval"):
        layers = [
            Dense(4, 5),
            BatchNorm(),
            Activation("gelu"),
            Dropout(0.3),
            Dense(5, 2),
        ]
        model = _finish(Sequential(layers, seed=4, dtype="float64"), rng)
        if name == "bce_batchnorm_eval":
            model.layers[1].buffers["running_mean"][...] = rng.normal(0, 0.5, 5)
            model.layers[1].buffers["running_var"][...] = rng.uniform(0.5, 2.0, 5)
            model.eval()
        return model, x, rng.uniform(0, 1, (6, 2)), BinaryCrossEntropy()
    if name == "mse_sum_batchnorm_no_affine_first":
        layers = [
            BatchNorm(4, affine=False),
            Dense(4, 5, "relu"),
            BatchNorm(),
            Dense(5, 2),
        ]
        model = Sequential(layers, seed=5, dtype="float64")
        return _finish(model, rng), x, rng.normal(size=(6, 2)), MSE(reduction="sum")
    raise AssertionError(f"no case {name!r}")


CASES = [
    "mse_tanh",
    "cross_entropy_sigmoid_softplus",
    "cross_entropy_sum_soft_targets_no_bias",
    "bce_batchnorm_dropout_train",
    "bce_batchnorm_eval",
    "mse_sum_batchnorm_no_affine_first",
]
ACTIVATIONS = [
    "identity",
    "relu",
    "sigmoid",
    "tanh",
    {"name": "leaky_relu", "alpha": 0.1},
    {"name": "elu", "alpha": 0.7},
    "selu",
    "gelu",
    {"name": "gelu", "approximate": "tanh"},
    {"name": "softplus", "beta": 2.0},
    "silu",
    "softsign",
    "hard_tanh",
]


def gradient_at(
    case_: Case, parameters: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The gradient with the parameters set to ``parameters``, on a copy."""
    model, x, y, loss = case_
    copied = copy.deepcopy(model)  # the copy's generator draws the same masks
    for layer in copied.layers:
        for key in layer.params:
            layer.params[key] = parameters[f"{layer.name}.{key}"].copy()
    _, grad = copied.loss(loss, copied.forward(x), y)
    copied.backward(grad)
    return copied.gradients()


def flat(values: dict[str, np.ndarray], names: Any) -> np.ndarray:
    return np.concatenate([np.ravel(values[name]) for name in names])


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    scale = max(np.abs(analytic).max(), np.abs(numeric).max())
    return float(np.abs(analytic - numeric).max() / scale)


def direction(model: Sequential, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {name: rng.normal(size=p.shape) for name, p in model.parameters().items()}


def finite_difference_hvp(case_: Case, v: dict[str, np.ndarray], eps: float) -> Any:
    theta = case_[0].parameters()
    plus = gradient_at(case_, {k: theta[k] + eps * v[k] for k in theta})
    minus = gradient_at(case_, {k: theta[k] - eps * v[k] for k in theta})
    return {k: (plus[k] - minus[k]) / (2 * eps) for k in theta}


# -- Hessian-vector products against finite differences -----------------------------


@pytest.mark.parametrize("name", CASES)
def test_hvp_equals_the_finite_difference_of_gradients(name: str, rng) -> None:
    case_ = case(name, rng)
    v = direction(case_[0], rng)

    exact = hessian_vector_product(*case_, v)
    numeric = finite_difference_hvp(case_, v, eps=1e-5)

    names = list(case_[0].parameters())
    assert list(exact) == names
    assert relative_error(flat(exact, names), flat(numeric, names)) <= 1e-6


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
def test_hvp_through_every_builtin_activation_matches_finite_differences(
    activation: Any, rng
) -> None:
    layers = [Dense(3, 4, activation), Activation(activation), Dense(4, 2)]
    model = _finish(Sequential(layers, seed=6, dtype="float64"), rng)
    case_ = (model, rng.normal(size=(5, 3)), rng.normal(size=(5, 2)), MSE())
    v = direction(model, rng)

    exact = hessian_vector_product(*case_, v)
    numeric = finite_difference_hvp(case_, v, eps=1e-5)

    names = list(model.parameters())
    assert relative_error(flat(exact, names), flat(numeric, names)) <= 1e-6


def test_hvp_is_linear_in_the_direction(rng) -> None:
    case_ = case("mse_tanh", rng)
    operator = HessianOperator(*case_)
    u, w = rng.normal(size=operator.size), rng.normal(size=operator.size)

    combined = operator.matvec(2.0 * u - 3.0 * w)

    np.testing.assert_allclose(
        combined, 2.0 * operator.matvec(u) - 3.0 * operator.matvec(w), atol=1e-12
    )


def test_operator_gradient_is_the_models_gradient(rng) -> None:
    model, x, y, loss = case("cross_entropy_sigmoid_softplus", rng)
    operator = HessianOperator(model, x, y, loss)

    _, grad = model.loss(loss, model.forward(x), y)
    model.backward(grad)

    for name, value in model.gradients().items():
        np.testing.assert_array_equal(operator.gradient[name], value)
    assert operator.loss_value == pytest.approx(loss.value(model.forward(x), y))


# -- PyTorch ------------------------------------------------------------------------


def torch_loss_function(case_: Case, torch_activation: Callable) -> Callable:
    """``theta -> loss`` in PyTorch, with the model's masks and statistics."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    model, x, y, loss = case_
    names = list(model.parameters())
    shapes = [p.shape for p in model.parameters().values()]
    masks = {}
    if model.training and any(isinstance(layer, Dropout) for layer in model.layers):
        masks = model.capture(x, y, loss, points="*.mask").stage("mask")

    def forward(theta: Any) -> Any:
        sizes = [int(np.prod(s)) for s in shapes]
        parts = dict(zip(names, torch.split(theta, sizes), strict=True))
        params = {k: parts[k].reshape(s) for k, s in zip(names, shapes, strict=True)}
        h = torch.tensor(x)
        for layer in model.layers:
            p = {key: params[f"{layer.name}.{key}"] for key in layer.params}
            if isinstance(layer, Dense):
                h = h @ p["W"] + p["b"] if "b" in p else h @ p["W"]
                h = torch_activation(layer.activation)(h)
            elif isinstance(layer, Activation):
                h = torch_activation(layer.activation)(h)
            elif isinstance(layer, Dropout):
                h = h * torch.tensor(masks[layer.name]) if layer.name in masks else h
            elif isinstance(layer, BatchNorm):
                stats = [
                    torch.tensor(layer.buffers[k])
                    for k in ("running_mean", "running_var")
                ]
                h = F.batch_norm(
                    h,
                    *(stats if not model.training else (None, None)),
                    p.get("gamma"),
                    p.get("beta"),
                    training=model.training,
                    eps=layer.eps,
                )
        target = torch.tensor(np.asarray(y))
        if isinstance(loss, MSE):
            return F.mse_loss(h, target, reduction=loss.reduction)
        if isinstance(loss, BinaryCrossEntropy):
            return F.binary_cross_entropy_with_logits(
                h, target, reduction=loss.reduction
            )
        return F.cross_entropy(
            h, target, reduction=loss.reduction, label_smoothing=loss.label_smoothing
        )

    return forward


@pytest.mark.torch
@pytest.mark.parametrize("name", CASES)
def test_hvp_matches_pytorch_double_backward(name: str, rng, torch_activation) -> None:
    torch = pytest.importorskip("torch")
    case_ = case(name, rng)
    operator = HessianOperator(*case_)
    v = rng.normal(size=operator.size)
    theta = torch.tensor(operator.flatten(case_[0].parameters()))

    f = torch_loss_function(case_, torch_activation)
    value, expected = torch.autograd.functional.hvp(f, theta, torch.tensor(v))

    assert float(value) == pytest.approx(operator.loss_value, rel=1e-12)
    assert relative_error(operator.matvec(v), expected.numpy()) <= 1e-10


@pytest.mark.torch
def test_dense_hessian_is_symmetric_and_matches_pytorch(rng, torch_activation) -> None:
    torch = pytest.importorskip("torch")
    case_ = case("bce_batchnorm_dropout_train", rng)
    theta = torch.tensor(HessianOperator(*case_).flatten(case_[0].parameters()))

    matrix = hessian(*case_)
    expected = torch.autograd.functional.hessian(
        torch_loss_function(case_, torch_activation), theta
    ).numpy()

    assert matrix.shape == (theta.numel(), theta.numel())
    assert np.abs(matrix - matrix.T).max() <= 1e-12 * np.abs(matrix).max()
    assert relative_error(matrix, expected) <= 1e-10


# -- spectrum and trace -------------------------------------------------------------


def tiny(rng: np.random.Generator) -> Case:
    model = _finish(
        Sequential([Dense(3, 4, "tanh"), Dense(4, 2)], seed=7, dtype="float64"), rng
    )
    return model, rng.normal(size=(8, 3)), rng.integers(0, 2, 8), SoftmaxCrossEntropy()


def test_power_iteration_finds_the_top_eigenvalue_of_the_dense_hessian(rng) -> None:
    case_ = tiny(rng)
    exact = np.linalg.eigvalsh(hessian(*case_))
    top = exact[np.argmax(np.abs(exact))]

    found = hessian_eigenvalues(*case_, k=1, method="power", tol=1e-12, seed=0)

    assert found.converged
    assert found.eigenvalues[0] == pytest.approx(top, rel=1e-6)


def test_lanczos_finds_the_three_largest_eigenvalues_and_their_vectors(rng) -> None:
    case_ = tiny(rng)
    matrix = hessian(*case_)
    exact = np.linalg.eigvalsh(matrix)
    largest = exact[np.argsort(-np.abs(exact))[:3]]

    found = hessian_eigenvalues(*case_, k=3, seed=1)

    np.testing.assert_allclose(found.eigenvalues, largest, rtol=1e-8)
    for value, vector in zip(found.eigenvalues, found.vectors, strict=True):
        assert np.linalg.norm(matrix @ vector - value * vector) <= 1e-8 * abs(value)
    assert set(found.eigenvector(0)) == set(case_[0].parameters())


def test_power_iteration_with_deflation_finds_known_eigenvalues() -> None:
    values = np.array([5.0, -3.0, 2.0, 0.5, 0.1])
    basis, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(5, 5)))
    matrix = basis @ np.diag(values) @ basis.T

    found = power_iteration(lambda v: matrix @ v, 5, k=3, tol=1e-14, seed=0)

    np.testing.assert_allclose(found.eigenvalues, [5.0, -3.0, 2.0], rtol=1e-7)
    for vector, expected in zip(found.vectors, basis.T[:3], strict=True):
        assert abs(vector @ expected) == pytest.approx(1.0, abs=1e-6)


def test_lanczos_is_exact_once_the_krylov_space_is_the_whole_space() -> None:
    values = np.array([-4.0, 3.0, 1.0, 0.2])
    basis, _ = np.linalg.qr(np.random.default_rng(4).normal(size=(4, 4)))
    matrix = basis @ np.diag(values) @ basis.T

    found = lanczos(lambda v: matrix @ v, 4, k=2, seed=0)

    np.testing.assert_allclose(found.eigenvalues, [-4.0, 3.0], rtol=1e-12)
    assert found.converged and found.products == 4


def test_hutchinson_trace_is_within_four_standard_errors_of_the_exact_trace(
    rng,
) -> None:
    case_ = tiny(rng)
    exact = float(np.trace(hessian(*case_)))

    estimate = hessian_trace(*case_, samples=200, seed=11)

    assert estimate.std_error > 0
    assert abs(estimate.estimate - exact) <= 4 * estimate.std_error


def test_hutchinson_trace_with_a_seed_repeats_exactly(rng) -> None:
    case_ = tiny(rng)

    first = hessian_trace(*case_, samples=10, seed=5, distribution="normal")
    second = hessian_trace(*case_, samples=10, seed=5, distribution="normal")

    np.testing.assert_array_equal(first.samples, second.samples)


def test_hutchinson_trace_of_a_diagonal_matrix_is_exact_with_rademacher_vectors() -> (
    None
):
    diagonal = np.array([3.0, -1.0, 0.5])

    estimate = hutchinson_trace(lambda v: diagonal * v, 3, samples=4, seed=0)

    assert estimate.estimate == pytest.approx(2.5, rel=1e-14)
    assert estimate.std_error == 0.0


# -- the model is left as it was ----------------------------------------------------


def test_hvp_leaves_parameters_gradients_caches_buffers_and_generator_unchanged(
    rng,
) -> None:
    model, x, y, loss = case("bce_batchnorm_dropout_train", rng)
    _, grad = model.loss(loss, model.forward(x), y)
    model.backward(grad)
    parameters = {k: v.copy() for k, v in model.parameters().items()}
    gradients = {k: v.copy() for k, v in model.gradients().items()}
    buffers = {k: v.copy() for k, v in model.state_dict().items()}
    caches = [layer.cache for layer in model.layers]
    generator = copy.deepcopy(model.state.rng.bit_generator.state)

    hessian_vector_product(model, x, y, loss, direction(model, rng))

    for name, value in model.parameters().items():
        np.testing.assert_array_equal(value, parameters[name])
    for name, value in model.gradients().items():
        np.testing.assert_array_equal(value, gradients[name])
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, buffers[name])
    assert all(
        a is b for a, b in zip(caches, [lay.cache for lay in model.layers], strict=True)
    )
    assert model.state.rng.bit_generator.state == generator


def test_hooks_do_not_fire_during_hvp_and_stay_registered(rng) -> None:
    model, x, y, loss = case("mse_tanh", rng)
    seen: list[str] = []
    model.register_hook("forward", lambda layer, x, out: seen.append(layer.name))
    model.register_hook("loss", lambda point, value, grad: seen.append("loss"))

    hessian_vector_product(model, x, y, loss, direction(model, rng))
    assert seen == []

    model.capture(x, y, loss)
    assert seen == ["dense_0", "dense_1", "loss"]


def test_operator_keeps_the_point_it_was_built_at(rng) -> None:
    model, x, y, loss = case("mse_tanh", rng)
    operator = HessianOperator(model, x, y, loss)
    v = rng.normal(size=operator.size)
    before = operator.matvec(v)

    model.layers[0].params["W"] += 1.0

    np.testing.assert_array_equal(operator.matvec(v), before)


# -- what is refused ----------------------------------------------------------------


@pytest.mark.parametrize("where", ["dense", "layer"])
def test_softmax_as_an_activation_is_refused_by_name(where: str, rng) -> None:
    layers: list[Layer] = (
        [Dense(3, 2, "softmax")]
        if where == "dense"
        else [Dense(3, 2), Activation("softmax")]
    )
    model = Sequential(layers, dtype="float64")
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))

    with pytest.raises(NotImplementedError, match="softmax"):
        HessianOperator(model, x, y, "mse")


def test_an_unsupported_loss_is_refused_by_name(rng) -> None:
    model, x, y, _ = case("mse_tanh", rng)

    with pytest.raises(NotImplementedError, match="MAE.*supported losses: MSE"):
        HessianOperator(model, x, y, MAE())


def test_an_unsupported_layer_type_is_refused_by_name(rng) -> None:
    class Scale(Layer):
        kind = "scale"

        def compute(self, x: np.ndarray) -> np.ndarray:
            self.keep(x)
            return 2 * x

        def compute_backward(self, grad_output: np.ndarray) -> np.ndarray:
            return 2 * grad_output

    model = Sequential([Dense(3, 2), Scale()], dtype="float64")
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))

    with pytest.raises(NotImplementedError, match="'scale_0' of type Scale"):
        HessianOperator(model, x, y, "mse")


def test_a_direction_that_misses_a_parameter_is_refused(rng) -> None:
    model, x, y, loss = case("mse_tanh", rng)
    v = direction(model, rng)
    del v["dense_1.b"]

    with pytest.raises(ConfigError, match="missing \\['dense_1.b'\\]"):
        hessian_vector_product(model, x, y, loss, v)


def test_a_direction_of_the_wrong_shape_is_refused(rng) -> None:
    model, x, y, loss = case("mse_tanh", rng)
    v = direction(model, rng)
    v["dense_0.W"] = v["dense_0.W"].T

    with pytest.raises(ShapeError, match="'dense_0.W' has shape \\(5, 4\\)"):
        hessian_vector_product(model, x, y, loss, v)


def test_k_equal_to_the_size_with_repeated_eigenvalues_points_to_the_dense_route(
    rng,
) -> None:
    # a linear layer under MSE has H = kron(X^T X, I_2): every eigenvalue twice
    model = Sequential([Dense(3, 2)], dtype="float64", seed=0)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    size = 8

    with pytest.raises(ConfigError) as caught:
        hessian_eigenvalues(model, x, y, "mse", k=size)

    message = str(caught.value)
    assert "Lanczos found 4 eigenvalues, fewer than k=8" in message
    assert "k <= 4" in message and "method='power'" in message
    assert "numpy.linalg.eigvalsh(" in message
    everything = np.linalg.eigvalsh(hessian(model, x, y, "mse"))
    found = hessian_eigenvalues(model, x, y, "mse", k=4).eigenvalues
    assert np.allclose(np.sort(found), everything[::2], rtol=1e-8)


def test_k_beyond_the_number_of_parameters_says_what_k_may_be(rng) -> None:
    model = Sequential([Dense(3, 2)], dtype="float64", seed=0)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))

    with pytest.raises(
        ConfigError,
        match=r"from 1 to the number of parameters \(8\), got 9; help: .*eigvalsh",
    ):
        hessian_eigenvalues(model, x, y, "mse", k=9)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_k_given_as_a_bool_is_refused_not_read_as_one(rng, method) -> None:
    model = Sequential([Dense(3, 2)], dtype="float64", seed=0)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))

    with pytest.raises(ConfigError, match=r"k must be an integer .* got True"):
        hessian_eigenvalues(model, x, y, "mse", k=True, method=method)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_iter": 5}, "method='lanczos' has no option 'max_iter'; it takes steps"),
        ({"tol": -1.0}, "tol must be a finite number >= 0, got -1.0"),
        ({"steps": "ten"}, "steps must be an integer or None, got 'ten'"),
        ({"method": "power", "max_iter": 0}, "max_iter must be an integer >= 1"),
        ({"method": "power", "step": 5}, "no option 'step'; it takes max_iter, tol"),
    ],
)
def test_an_eigenvalue_option_that_does_not_apply_is_refused(
    options: dict, message: str, rng
) -> None:
    model, x, y, loss = tiny(rng)

    with pytest.raises(ConfigError, match=message):
        hessian_eigenvalues(model, x, y, loss, k=1, **options)


def test_an_eigenvector_index_beyond_those_found_is_refused(rng) -> None:
    model, x, y, loss = tiny(rng)
    top = hessian_eigenvalues(model, x, y, loss, k=2)

    assert set(top.eigenvector(-1)) == set(model.parameters())
    with pytest.raises(ConfigError, match="integer from 0 to 1 .* got 2"):
        top.eigenvector(2)


def test_scipy_takes_the_operator_as_a_linear_operator(rng) -> None:
    linalg = pytest.importorskip("scipy.sparse.linalg")
    model, x, y, loss = tiny(rng)
    op = HessianOperator(model, x, y, loss)

    found = linalg.eigsh(
        linalg.aslinearoperator(op), k=2, which="LM", return_eigenvectors=False
    )

    exact = np.linalg.eigvalsh(hessian(model, x, y, loss))
    largest = exact[np.argsort(-np.abs(exact))[:2]]
    assert np.allclose(np.sort(found), np.sort(largest), rtol=1e-8)
    assert op.matvec(np.ones((op.size, 1))).shape == (op.size, 1)


def test_a_complex_flat_direction_is_refused(rng) -> None:
    model, x, y, loss = tiny(rng)
    op = HessianOperator(model, x, y, loss)

    with pytest.raises(ShapeError, match="real numbers; got dtype complex128"):
        op.matvec(np.ones(op.size, dtype=complex))


def test_the_dense_hessian_of_a_large_model_is_refused(rng) -> None:
    model, x, y, loss = case("mse_tanh", rng)

    with pytest.raises(ConfigError, match="max_size=10"):
        hessian(model, x, y, loss, max_size=10)


def test_a_float32_model_gives_float32_products_close_to_float64(rng) -> None:
    def layers() -> list[Layer]:
        return [Dense(4, 5, "tanh"), Dense(5, 3)]

    double = Sequential(layers(), seed=1, dtype="float64")
    single = Sequential(layers(), seed=1, dtype="float32")
    single.load_state_dict(double.state_dict())
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    v = direction(double, rng)

    product = hessian_vector_product(single, x, y, MSE(), v)
    expected = hessian_vector_product(double, x, y, MSE(), v)

    names = list(v)
    assert all(product[name].dtype == np.float32 for name in names)
    assert relative_error(flat(product, names), flat(expected, names)) <= 1e-4


# -- the guide ------------------------------------------------------------------------

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "second_order.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def test_every_python_block_of_the_second_order_guide_runs_in_order() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    blocks = [
        (text.count("\n", 0, match.start(1)) + 1, match.group(1))
        for match in BLOCK.finditer(text)
    ]
    assert len(blocks) >= 8
    namespace: dict[str, Any] = {"__name__": "second_order_guide"}

    for line, code in blocks:
        padded = "\n" * (line - 1) + code  # tracebacks point at the guide's lines
        try:
            exec(compile(padded, str(GUIDE), "exec"), namespace)
        except Exception as error:  # pragma: no cover - the message is the point
            pytest.fail(f"docs/second_order.md block at line {line} failed: {error!r}")
