"""The engine's fast paths give exactly what the plain paths give.

Speed changes made for the benchmarks: ReLU's backward by bit mask, the
first layer's input gradient skipped when no one reads it, and float32 kept
float32 through a whole training step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from annlens import Dense, Sequential
from annlens.activations import get_activation
from annlens.layers import BatchNorm, Dropout
from annlens.losses import SoftmaxCrossEntropy
from annlens.optim import SGD


def model(dtype: str = "float64") -> Sequential:
    return Sequential(
        [Dense(5, 8, "relu"), Dense(8, 8, "tanh"), Dense(8, 3)], seed=4, dtype=dtype
    )


def batch(rng: np.random.Generator, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    return rng.standard_normal((n, 5)), rng.integers(0, 3, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_backward_selects_exactly_as_np_where(dtype: type) -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((40, 30)).astype(dtype)
    z[0, :4] = 0.0
    grad = rng.standard_normal((40, 30)).astype(dtype)
    grad[1], grad[2], grad[3] = np.nan, np.inf, -np.inf
    expected = np.where(z > 0, grad, 0).astype(dtype)

    delta = get_activation("relu").backward(z, np.maximum(z, 0), grad)

    assert delta.dtype == dtype
    np.testing.assert_array_equal(delta, expected)
    np.testing.assert_array_equal(np.signbit(delta), np.signbit(expected))


def test_relu_backward_accepts_non_contiguous_gradients() -> None:
    rng = np.random.default_rng(1)
    z, grad = rng.standard_normal((2, 7, 9))
    delta = get_activation("relu").backward(z.T, np.maximum(z.T, 0), grad.T)
    np.testing.assert_array_equal(delta, np.where(z.T > 0, grad.T, 0))


def test_backward_parameters_gives_the_gradients_of_backward() -> None:
    rng = np.random.default_rng(2)
    x, y = batch(rng)
    full, lean = model(), model()
    loss = SoftmaxCrossEntropy()
    for m in (full, lean):
        m.forward(x)
    _, grad = loss.value_and_grad(full.forward(x), y)

    full.backward(grad)
    lean.backward_parameters(grad)

    for name, value in full.gradients().items():
        np.testing.assert_array_equal(lean.gradients()[name], value)


def test_backward_parameters_still_feeds_a_hook_on_the_first_layer() -> None:
    rng = np.random.default_rng(3)
    x, y = batch(rng)
    m = model()
    seen: list[np.ndarray] = []
    m.register_hook("dense_0.backward", lambda layer, gi, go: seen.append(gi.copy()))
    _, grad = SoftmaxCrossEntropy().value_and_grad(m.forward(x), y)

    m.backward_parameters(grad)

    expected = m.backward(grad)
    assert len(seen) == 2
    np.testing.assert_array_equal(seen[0], expected)


def test_backward_parameters_fires_gradient_hooks() -> None:
    rng = np.random.default_rng(4)
    x, y = batch(rng)
    m = model()
    names: list[str] = []
    m.register_hook("gradient", lambda layer, name, grad: names.append(name))
    _, grad = SoftmaxCrossEntropy().value_and_grad(m.forward(x), y)
    m.backward_parameters(grad)
    assert names == ["W", "b"] * 3


def test_backward_parameters_through_a_first_layer_without_a_fast_path() -> None:
    rng = np.random.default_rng(5)
    x, y = batch(rng)
    build = lambda: Sequential(  # noqa: E731
        [BatchNorm(5), Dropout(0.0), Dense(5, 3)], seed=1, dtype="float64"
    )
    full, lean = build(), build()
    _, grad = SoftmaxCrossEntropy().value_and_grad(full.forward(x), y)
    lean.forward(x)
    full.backward(grad)
    lean.backward_parameters(grad)
    for name, value in full.gradients().items():
        np.testing.assert_array_equal(lean.gradients()[name], value)


def test_float32_training_step_keeps_every_array_float32() -> None:
    rng = np.random.default_rng(6)
    x, y = batch(rng)
    m = Sequential(
        [Dense(5, 8, "relu"), BatchNorm(), Dropout(0.3), Dense(8, 3)],
        seed=2,
        dtype="float32",
    )
    optimizer = SGD(m, lr=0.1, momentum=0.9)
    dtypes: set[Any] = set()

    def watch(layer: Any, *values: Any) -> None:
        dtypes.update(v.dtype for v in values if isinstance(v, np.ndarray))

    for stage in ("forward", "pre_activation", "normalized", "mask", "backward"):
        m.register_hook(stage, watch)
    for stage in ("pre_activation_grad", "normalized_grad", "gradient", "update"):
        m.register_hook(stage, watch)
    for _ in range(2):
        _, grad = SoftmaxCrossEntropy().value_and_grad(m.forward(x), y)
        m.backward(grad)
        optimizer.step()

    assert dtypes == {np.dtype(np.float32)}
    assert {value.dtype for value in m.parameters().values()} == {np.dtype("float32")}


def count_input_gradients(m: Sequential, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the first layer's full backward passes (those that compute delta Wᵀ)."""
    first = m.layers[0]
    calls = [0]
    compute = first.compute_backward

    def counted(grad_output: np.ndarray) -> np.ndarray:
        calls[0] += 1
        return compute(grad_output)

    monkeypatch.setattr(first, "compute_backward", counted)
    return calls


def test_backward_parameters_skips_the_input_gradient_under_other_hooks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(7)
    x, y = batch(rng)
    m = model()
    seen: list[str] = []
    for stage in ("forward", "backward_pre", "pre_activation_grad", "gradient"):
        m.register_hook(f"dense_0.{stage}", lambda layer, *a, s=stage: seen.append(s))
    calls = count_input_gradients(m, monkeypatch)
    _, grad = SoftmaxCrossEntropy().value_and_grad(m.forward(x), y)

    m.backward_parameters(grad)

    assert calls == [0]
    assert seen == ["forward", "backward_pre", "pre_activation_grad"] + ["gradient"] * 2


def test_backward_parameters_computes_the_input_gradient_for_a_backward_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(8)
    x, y = batch(rng)
    m = model()
    m.register_hook("dense_0.backward", lambda layer, gi, go: None)
    calls = count_input_gradients(m, monkeypatch)
    _, grad = SoftmaxCrossEntropy().value_and_grad(m.forward(x), y)
    m.backward_parameters(grad)
    assert calls == [1]
