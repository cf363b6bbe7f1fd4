"""Each hook stage fires once per layer per pass, with the values NumPy computes."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from annlens import Activation, Dense, Sequential
from annlens.errors import StateError
from annlens.layers.batchnorm import BatchNorm
from annlens.layers.dropout import Dropout
from annlens.losses import MSE
from annlens.optim import SGD
from hooks_support import (
    BACKWARD_STAGES,
    FORWARD_STAGES,
    FUNCTIONS,
    assert_same,
    make_batch,
    make_model,
    reference_pass,
)


def record_everything(model: Sequential) -> dict[str, list[Any]]:
    """Register a recorder at every hook point; return point -> list of values."""
    seen: dict[str, list[Any]] = defaultdict(list)

    def record(layer: Any, *arguments: Any, ctx: Any) -> None:
        if ctx.stage == "gradient":
            seen[ctx.point].append((arguments[0], arguments[1].copy()))
        elif ctx.stage == "loss":
            seen[ctx.point].append({"value": arguments[0], "grad": arguments[1].copy()})
        elif ctx.stage == "update":
            seen[f"{ctx.point}.{arguments[0]}"].append(arguments[1].copy())
        elif ctx.stage in ("forward", "backward"):
            index = 1 if ctx.stage == "forward" else 0
            seen[ctx.point].append(arguments[index].copy())
        else:
            seen[ctx.point].append(arguments[0].copy())

    model.register_hook("*.*", record)
    return seen


def training_pass(model: Sequential, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    output = model.forward(x)
    _, grad = model.loss(MSE(), output, y)
    model.backward(grad)
    return output


def test_every_stage_fires_once_per_layer_per_pass() -> None:
    model = make_model()
    seen = record_everything(model)
    x, y = make_batch()

    training_pass(model, x, y)

    for layer in model.layers:
        for stage in FORWARD_STAGES + BACKWARD_STAGES:
            assert len(seen[f"{layer.name}.{stage}"]) == 1, f"{layer.name}.{stage}"
        if layer.params:
            names = [name for name, _ in seen[f"{layer.name}.gradient"]]
            assert names == list(layer.params)
    assert len(seen["loss.loss"]) == 1


def test_every_stage_value_equals_an_independent_numpy_pass() -> None:
    model = make_model()
    seen = record_everything(model)
    x, y = make_batch()
    expected = reference_pass(model, x, y)

    training_pass(model, x, y)

    for point, value in expected.items():
        if point == "output":
            continue
        if point.endswith(".gradient"):
            got = dict(seen[point])
        else:
            (got,) = seen[point]
        assert_same(got, value, point)


def test_forward_hook_takes_layer_input_output_for_every_layer_type() -> None:
    model = Sequential(
        [
            Dense(3, 4, "relu"),
            BatchNorm(),
            Dropout(0.5),
            Activation("tanh"),
            Dense(4, 2),
        ],
        dtype="float64",
    )
    calls = []

    def fn(layer: Any, input: np.ndarray, output: np.ndarray) -> None:
        calls.append((layer.name, input.shape, output.shape))

    model.register_hook("forward", fn)
    model.forward(np.ones((5, 3)))

    assert calls == [
        ("dense_0", (5, 3), (5, 4)),
        ("batchnorm_0", (5, 4), (5, 4)),
        ("dropout_0", (5, 4), (5, 4)),
        ("activation_0", (5, 4), (5, 4)),
        ("dense_1", (5, 4), (5, 2)),
    ]


def test_forward_hook_input_is_what_the_layer_before_returned() -> None:
    model = make_model()
    inputs, outputs = {}, {}

    def fn(layer: Any, input: np.ndarray, output: np.ndarray) -> None:
        inputs[layer.index], outputs[layer.index] = input.copy(), output.copy()

    model.register_hook("forward", fn)
    x, _ = make_batch()
    final = model.forward(x)

    np.testing.assert_array_equal(inputs[0], x)
    for index in range(1, len(model.layers)):
        np.testing.assert_array_equal(inputs[index], outputs[index - 1])
    np.testing.assert_array_equal(outputs[len(model.layers) - 1], final)


def test_delta_equals_grad_output_times_derivative_at_every_layer() -> None:
    model = make_model()
    x, y = make_batch()
    cache = model.capture(x, y, loss=MSE())

    for layer in model.layers:
        f_prime = FUNCTIONS[layer.activation.name][1]
        z = cache[f"{layer.name}.pre_activation"]
        np.testing.assert_allclose(
            cache[f"{layer.name}.pre_activation_grad"],
            cache[f"{layer.name}.backward_pre"] * f_prime(z),
            rtol=1e-12,
            atol=1e-15,
        )


def test_backward_hook_sees_this_passes_parameter_gradients() -> None:
    model = make_model()
    x, y = make_batch()
    expected = reference_pass(model, x, y)
    seen = {}

    def fn(layer: Any, grad_input: np.ndarray, grad_output: np.ndarray) -> None:
        seen[layer.name] = {k: v.copy() for k, v in layer.grads.items()}

    model.register_hook("backward", fn, layers=Dense)
    training_pass(model, x, y)

    for name in ("dense_0", "dense_1", "dense_2"):
        assert_same(seen[name], expected[f"{name}.gradient"], name)


def test_replacing_delta_changes_upstream_gradients_by_the_chain_rule() -> None:
    model = make_model()
    x, y = make_batch()
    clean = reference_pass(model, x, y)
    replacement = np.random.default_rng(5).normal(size=(len(x), 4))
    model.register_hook("dense_1.pre_activation_grad", lambda layer, delta: replacement)

    cache = model.capture(x, y, loss=MSE())

    # downstream of the replacement nothing changes
    for point in ("dense_2.backward", "activation_0.backward", "dense_1.backward_pre"):
        assert_same(cache[point], clean[point], point)
    # at the layer: gradients and grad_input follow from the new delta
    a0 = clean["dense_0.forward"]
    w1, w0 = model.layers[1].params["W"], model.layers[0].params["W"]
    assert_same(
        cache["dense_1.gradient"], {"W": a0.T @ replacement, "b": replacement.sum(0)}
    )
    grad_a0 = replacement @ w1.T
    assert_same(cache["dense_1.backward"], grad_a0)
    # upstream: dense_0's delta, gradients and grad_input, by hand
    delta0 = grad_a0 * (1 - a0**2)
    assert_same(cache["dense_0.pre_activation_grad"], delta0)
    assert_same(cache["dense_0.gradient"], {"W": x.T @ delta0, "b": delta0.sum(0)})
    assert_same(cache["dense_0.backward"], delta0 @ w0.T)


def test_replacing_grad_input_reaches_the_layer_below_not_its_own_grads() -> None:
    model = make_model()
    x, y = make_batch()
    clean = reference_pass(model, x, y)
    replacement = np.full((len(x), 5), 0.25)
    model.register_hook("dense_1.backward", lambda layer, gi, go: replacement)

    cache = model.capture(x, y, loss=MSE())

    assert_same(cache["dense_1.gradient"], clean["dense_1.gradient"])
    assert_same(cache["dense_0.backward_pre"], replacement)
    delta0 = replacement * (1 - clean["dense_0.forward"] ** 2)
    assert_same(cache["dense_0.pre_activation_grad"], delta0)


def test_replacing_the_loss_gradient_starts_backward_from_the_replacement() -> None:
    model = make_model()
    x, y = make_batch()
    ones = np.ones((len(x), 2))
    model.register_hook("loss", lambda point, value, grad: ones)

    cache = model.capture(x, y, loss=MSE())

    assert_same(cache["dense_2.backward_pre"], ones)
    assert_same(cache["loss.loss"]["grad"], ones)


def test_loss_hook_receives_the_loss_value_and_its_gradient() -> None:
    model = make_model()
    x, y = make_batch()
    expected = reference_pass(model, x, y)["loss.loss"]
    seen = []
    model.register_hook("loss", lambda point, value, grad: seen.append((value, grad)))

    value, _ = model.loss(MSE(), model.forward(x), y)

    assert seen[0][0] == pytest.approx(expected["value"], rel=1e-12)
    assert_same(seen[0][1], expected["grad"])
    assert value == seen[0][0]


def test_gradient_stage_replacement_is_the_gradient_left_in_the_layer() -> None:
    model = make_model()
    x, y = make_batch()
    model.register_hook("dense_0.gradient", lambda layer, name, grad: grad * 3)
    expected = reference_pass(model, x, y)["dense_0.gradient"]

    training_pass(model, x, y)

    assert_same(model.layers[0].grads, {k: 3 * v for k, v in expected.items()})


def test_update_stage_fires_once_per_parameter_with_minus_lr_times_grad() -> None:
    model = make_model()
    x, y = make_batch()
    seen = record_everything(model)
    training_pass(model, x, y)
    grads = {f"{q}": g.copy() for q, g in model.gradients().items()}

    SGD(model, lr=0.1).step()

    for qualified, grad in grads.items():
        layer, name = qualified.split(".")
        (update,) = seen[f"{layer}.update.{name}"]
        np.testing.assert_allclose(update, -0.1 * grad, rtol=1e-15)


def test_replacing_the_update_changes_the_parameters_by_the_replacement() -> None:
    model = make_model()
    x, y = make_batch()
    before = model.layers[0].params["W"].copy()
    step = np.full_like(before, 0.5)
    model.register_hook(
        "dense_0.update", lambda layer, name, update: step if name == "W" else None
    )
    training_pass(model, x, y)

    SGD(model, lr=0.1).step()

    np.testing.assert_array_equal(model.layers[0].params["W"], before + step)


def test_zeroing_a_layers_gradient_freezes_it_under_sgd() -> None:
    model = make_model()
    x, y = make_batch()
    frozen = {k: v.copy() for k, v in model.layers[1].params.items()}
    other = model.layers[0].params["W"].copy()
    model.register_hook(
        "gradient", lambda layer, name, grad: np.zeros_like(grad), layers="dense_1"
    )
    optimizer = SGD(model, lr=0.5)

    for _ in range(3):
        training_pass(model, x, y)
        optimizer.step()

    for name, value in frozen.items():
        np.testing.assert_array_equal(model.layers[1].params[name], value)
    assert not np.allclose(model.layers[0].params["W"], other)


def test_hooks_fire_in_predict_and_evaluation_mode() -> None:
    model = make_model()
    flags = []
    model.register_hook("dense_0.forward", lambda layer, i, o, ctx: flags.append(ctx))
    x, _ = make_batch()

    model.predict(x)
    with model.evaluating():
        model.forward(x)
    model.predict(x, batch_size=4)

    assert [c.training for c in flags] == [False, False, False, False]
    assert [c.grad_enabled for c in flags] == [False, True, False, False]


def test_hooks_fire_when_a_layer_is_run_directly() -> None:
    model = make_model()
    seen = []
    model.register_hook("dense_1.pre_activation", lambda layer, z: seen.append(z))

    model.layers[1].forward(np.ones((2, 5)))

    assert len(seen) == 1 and seen[0].shape == (2, 4)


def test_no_grad_keeps_nothing_and_backward_raises_before_any_hook() -> None:
    model = make_model()
    x, y = make_batch()
    fired = []
    model.register_hook("backward_pre", lambda layer, g: fired.append(layer.name))

    with model.no_grad():
        output = model.forward(x)
    assert all(layer.cache is None for layer in model.layers)

    _, grad = model.loss(MSE(), output, y)
    with pytest.raises(StateError, match="no_grad"):
        model.backward(grad)
    assert fired == []


def test_backward_after_predict_raises_even_if_an_earlier_forward_kept_values() -> None:
    model = make_model()
    x, y = make_batch()
    output = model.forward(x)
    model.predict(x)

    with pytest.raises(StateError, match="kept nothing"):
        model.backward(MSE().gradient(output, y))
