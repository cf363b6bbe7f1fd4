"""Losses: values and gradients by finite differences and against PyTorch, for
both reductions and every kind of target; stability at logits of 1e4; target
checks that name the problem; the registry.

Errors against finite differences are max-norm relative errors,
``max|a - n| / max(max|a|, max|n|)``, at most 1e-6; against PyTorch (float64)
values and gradients agree to ``rtol=1e-10, atol=1e-12``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from annlens.activations import log_softmax
from annlens.errors import (
    ConfigError,
    InputError,
    LabelError,
    ShapeError,
    UnknownNameError,
)
from annlens.losses import (
    MAE,
    MSE,
    BinaryCrossEntropy,
    Huber,
    Loss,
    NLLLoss,
    SoftmaxCrossEntropy,
    get_loss,
    loss_names,
)

BATCH, WIDTH = 6, 4
EPS = 1e-6


def error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """Max-norm relative error, written out here independently of annlens."""
    scale = max(np.abs(analytic).max(), np.abs(numeric).max(), 1e-12)
    return float(np.abs(analytic - numeric).max() / scale)


def numeric_gradient(loss: Loss, output: np.ndarray, target: Any) -> np.ndarray:
    output = output.copy()
    grad = np.zeros_like(output)
    for index in np.ndindex(output.shape):
        saved = output[index]
        up, down = saved + EPS, saved - EPS
        output[index] = up
        loss_up = loss.value(output, target)
        output[index] = down
        loss_down = loss.value(output, target)
        output[index] = saved
        grad[index] = (loss_up - loss_down) / (up - down)
    return grad


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes)[labels]


# Each case: (loss class, settings, output maker, target maker, torch call).
# The makers draw from the generator; the torch call takes (torch, output
# tensor, target array, reduction) and returns the torch loss.
Case = tuple[type[Loss], dict, Callable, Callable, Callable]


def _logits(rng):
    return rng.normal(0, 2, (BATCH, WIDTH))


def _labels(rng):
    return rng.integers(0, WIDTH, BATCH)


def _soft(rng):
    weights = rng.uniform(0.1, 1, (BATCH, WIDTH))
    return weights / weights.sum(axis=1, keepdims=True)


def _huber_output(rng):
    output = rng.normal(0, 1.5, (BATCH, WIDTH))
    return np.where(np.abs(np.abs(output) - 0.5) < 1e-3, output + 0.01, output)


def _torch_f(torch):
    return torch.nn.functional


CASES: dict[str, Case] = {
    "mse": (
        MSE,
        {},
        _logits,
        lambda rng: rng.normal(size=(BATCH, WIDTH)),
        lambda t, o, y, r: _torch_f(t).mse_loss(o, t.tensor(y), reduction=r),
    ),
    "mse-1d-target": (
        MSE,
        {},
        lambda rng: rng.normal(size=(BATCH, 1)),
        lambda rng: rng.normal(size=BATCH),
        lambda t, o, y, r: _torch_f(t).mse_loss(
            o, t.tensor(y).reshape(-1, 1), reduction=r
        ),
    ),
    "mae": (
        MAE,
        {},
        _logits,
        lambda rng: rng.normal(size=(BATCH, WIDTH)),
        lambda t, o, y, r: _torch_f(t).l1_loss(o, t.tensor(y), reduction=r),
    ),
    "huber": (
        Huber,
        {"delta": 0.5},
        _huber_output,
        lambda rng: np.zeros((BATCH, WIDTH)),
        lambda t, o, y, r: _torch_f(t).huber_loss(
            o, t.tensor(y), reduction=r, delta=0.5
        ),
    ),
    "bce-probabilities": (
        BinaryCrossEntropy,
        {},
        _logits,
        lambda rng: rng.uniform(0, 1, (BATCH, WIDTH)),
        lambda t, o, y, r: _torch_f(t).binary_cross_entropy_with_logits(
            o, t.tensor(y), reduction=r
        ),
    ),
    "bce-integer-labels-1d": (
        BinaryCrossEntropy,
        {},
        lambda rng: rng.normal(0, 2, (BATCH, 1)),
        lambda rng: rng.integers(0, 2, BATCH),
        lambda t, o, y, r: _torch_f(t).binary_cross_entropy_with_logits(
            o, t.tensor(y, dtype=t.float64).reshape(-1, 1), reduction=r
        ),
    ),
    "ce-indices": (
        SoftmaxCrossEntropy,
        {},
        _logits,
        _labels,
        lambda t, o, y, r: _torch_f(t).cross_entropy(o, t.tensor(y), reduction=r),
    ),
    "ce-integral-floats": (
        SoftmaxCrossEntropy,
        {},
        _logits,
        lambda rng: _labels(rng).astype(float),
        lambda t, o, y, r: _torch_f(t).cross_entropy(
            o, t.tensor(y).long(), reduction=r
        ),
    ),
    "ce-one-hot": (
        SoftmaxCrossEntropy,
        {},
        _logits,
        lambda rng: one_hot(_labels(rng), WIDTH),
        lambda t, o, y, r: _torch_f(t).cross_entropy(o, t.tensor(y), reduction=r),
    ),
    "ce-soft": (
        SoftmaxCrossEntropy,
        {},
        _logits,
        _soft,
        lambda t, o, y, r: _torch_f(t).cross_entropy(o, t.tensor(y), reduction=r),
    ),
    "ce-indices-smoothed": (
        SoftmaxCrossEntropy,
        {"label_smoothing": 0.1},
        _logits,
        _labels,
        lambda t, o, y, r: _torch_f(t).cross_entropy(
            o, t.tensor(y), reduction=r, label_smoothing=0.1
        ),
    ),
    "ce-soft-smoothed": (
        SoftmaxCrossEntropy,
        {"label_smoothing": 0.2},
        _logits,
        _soft,
        lambda t, o, y, r: _torch_f(t).cross_entropy(
            o, t.tensor(y), reduction=r, label_smoothing=0.2
        ),
    ),
    "nll": (
        NLLLoss,
        {},
        lambda rng: log_softmax(_logits(rng)),
        _labels,
        lambda t, o, y, r: _torch_f(t).nll_loss(o, t.tensor(y), reduction=r),
    ),
}
GRID = [(case, r) for case in CASES for r in ("mean", "sum")]
GRID_IDS = [f"{case}-{r}" for case, r in GRID]


def build(case: str, reduction: str, rng: np.random.Generator):
    cls, settings, make_output, make_target, _ = CASES[case]
    return cls(reduction=reduction, **settings), make_output(rng), make_target(rng)


# -- registry ----------------------------------------------------------------------


def test_every_loss_is_registered_by_name() -> None:
    expected = {"mse", "mae", "huber", "binary_cross_entropy"}
    expected |= {"softmax_cross_entropy", "nll", "bce", "cross_entropy"}
    assert expected <= set(loss_names())
    assert isinstance(get_loss("cross_entropy"), SoftmaxCrossEntropy)
    assert get_loss("huber", delta=0.3, reduction="sum").delta == 0.3


def test_get_loss_returns_an_instance_unchanged() -> None:
    loss = MSE(reduction="sum")
    assert get_loss(loss) is loss


def test_unknown_loss_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as caught:
        get_loss("mse_loss")
    message = str(caught.value)
    assert "'mse_loss'" in message
    for name in ("mae", "huber", "nll", "softmax_cross_entropy"):
        assert name in message


@pytest.mark.parametrize(
    "make",
    [
        lambda: MSE(reduction="avg"),
        lambda: Huber(delta=0.0),
        lambda: SoftmaxCrossEntropy(label_smoothing=1.5),
        lambda: get_loss("mse", delta=1.0),
    ],
    ids=["reduction", "huber-delta", "label-smoothing", "unknown-setting"],
)
def test_bad_loss_settings_are_refused(make) -> None:
    with pytest.raises(ConfigError):
        make()


# -- values and gradients ------------------------------------------------------------


@pytest.mark.parametrize(("case", "reduction"), GRID, ids=GRID_IDS)
def test_gradient_matches_finite_differences(case, reduction, rng) -> None:
    loss, output, target = build(case, reduction, rng)
    value, grad = loss.value_and_grad(output, target)
    assert grad.shape == output.shape and np.isfinite(value)
    assert error(grad, numeric_gradient(loss, output, target)) <= 1e-6


@pytest.mark.parametrize(("case", "reduction"), GRID, ids=GRID_IDS)
def test_float32_output_gets_a_float32_gradient(case, reduction, rng) -> None:
    loss, output, target = build(case, reduction, rng)
    _, grad = loss.value_and_grad(output.astype(np.float32), target)
    assert grad.dtype == np.float32


def test_mse_mean_averages_over_every_element() -> None:
    output, target = np.zeros((2, 3)), np.arange(6.0).reshape(2, 3)
    assert MSE().value(output, target) == pytest.approx(55 / 6)
    assert MSE(reduction="sum").value(output, target) == pytest.approx(55)


def test_cross_entropy_of_equal_logits_is_log_of_the_class_count() -> None:
    value = SoftmaxCrossEntropy().value(np.zeros((3, 5)), np.array([0, 2, 4]))
    assert value == pytest.approx(math.log(5), rel=1e-15)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_gives_the_same_for_indices_and_one_hot(
    rng, smoothing, reduction, dtype
) -> None:
    """Class indices take a path of their own; it must agree with one-hot targets."""
    logits, labels = _logits(rng).astype(dtype), _labels(rng)
    loss = SoftmaxCrossEntropy(label_smoothing=smoothing, reduction=reduction)
    by_index = loss.value_and_grad(logits, labels)
    by_one_hot = loss.value_and_grad(logits, one_hot(labels, WIDTH))
    tolerance = 1e-14 if dtype == np.float64 else 1e-6
    assert by_index[0] == pytest.approx(by_one_hot[0], rel=tolerance)
    assert by_index[1].dtype == dtype
    np.testing.assert_allclose(by_index[1], by_one_hot[1], rtol=tolerance, atol=1e-7)


# -- stability ---------------------------------------------------------------------


EXTREME = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, -1e4]])


@pytest.mark.parametrize(
    ("loss", "target"),
    [
        (SoftmaxCrossEntropy(), np.array([1, 0, 2])),
        (SoftmaxCrossEntropy(label_smoothing=0.1), np.array([1, 0, 2])),
        (SoftmaxCrossEntropy(), one_hot(np.array([0, 2, 1]), 3)),
        (BinaryCrossEntropy(), (EXTREME < 0).astype(float)),
        (MSE(), np.zeros((3, 3))),
        (Huber(), np.zeros((3, 3))),
        (MAE(), np.zeros((3, 3))),
    ],
    ids=["ce-indices", "ce-smoothed", "ce-one-hot", "bce", "mse", "huber", "mae"],
)
def test_loss_and_gradient_are_finite_at_logits_1e4(loss, target) -> None:
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value, grad = loss.value_and_grad(EXTREME, target)
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_confident_wrong_logits_cost_their_margin() -> None:
    ce = SoftmaxCrossEntropy(reduction="sum")
    assert ce.value(np.array([[1e4, -1e4]]), np.array([1])) == pytest.approx(2e4)
    bce = BinaryCrossEntropy(reduction="sum")
    assert bce.value(np.array([[1e4, -1e4]]), np.array([[0.0, 1.0]])) == 2e4


# -- target checks -------------------------------------------------------------------


def refused(loss: Loss, output: Any, target: Any) -> str:
    with pytest.raises(LabelError) as caught:
        loss.value_and_grad(output, target)
    return str(caught.value)


@pytest.mark.parametrize("loss", [SoftmaxCrossEntropy(), NLLLoss()])
def test_label_out_of_range_names_the_range_and_the_value(loss) -> None:
    message = refused(loss, np.zeros((4, 3)), np.array([0, 2, 5, 1]))
    assert "[0, 3)" in message and "got 5 at position 2" in message


def test_negative_label_is_out_of_range() -> None:
    message = refused(SoftmaxCrossEntropy(), np.zeros((2, 3)), np.array([-1, 0]))
    assert "[0, 3)" in message and "got -1 at position 0" in message


def test_non_integer_class_labels_are_refused() -> None:
    message = refused(SoftmaxCrossEntropy(), np.zeros((3, 3)), np.array([0, 1.5, 2]))
    assert "integers" in message and "1.5 at position 1" in message


def test_labels_as_a_column_get_a_hint() -> None:
    message = refused(SoftmaxCrossEntropy(), np.zeros((3, 4)), np.zeros((3, 1), int))
    assert "(3,)" in message and "(3, 4)" in message and "y.ravel()" in message


def test_probability_targets_of_the_wrong_width_are_refused() -> None:
    message = refused(SoftmaxCrossEntropy(), np.zeros((3, 4)), np.full((3, 5), 0.2))
    assert "(3, 4)" in message and "(3, 5)" in message


@pytest.mark.parametrize(
    ("loss", "target"),
    [
        (SoftmaxCrossEntropy(), np.array([0, 1, 2, 0, 1])),
        (MSE(), np.zeros((5, 3))),
        (BinaryCrossEntropy(), np.zeros((5, 3))),
    ],
    ids=["indices", "regression", "binary"],
)
def test_batch_mismatch_names_both_sizes(loss, target) -> None:
    message = refused(loss, np.zeros((4, 3)), target)
    assert "4 samples" in message and "5 samples" in message


def test_regression_targets_of_another_shape_are_refused() -> None:
    message = refused(MSE(), np.zeros((4, 3)), np.zeros((4, 2)))
    assert "(4, 3)" in message and "(4, 2)" in message


@pytest.mark.parametrize(
    ("loss", "output", "target"),
    [
        (MSE(), np.zeros((2, 2)), np.array([[0.0, np.nan], [1.0, 2.0]])),
        (SoftmaxCrossEntropy(), np.zeros((2, 2)), np.array([0.0, np.nan])),
        (SoftmaxCrossEntropy(), np.zeros((2, 2)), np.array([[np.nan, 1], [0, 1]])),
        (BinaryCrossEntropy(), np.zeros((2, 1)), np.array([np.inf, 0.0])),
    ],
    ids=["mse", "indices", "probabilities", "bce-inf"],
)
def test_nan_or_inf_targets_are_refused(loss, output, target) -> None:
    message = refused(loss, output, target)
    assert "NaN" in message and "Inf" in message and "first at index" in message


@pytest.mark.parametrize(
    ("loss", "target"),
    [
        (BinaryCrossEntropy(), np.array([[0.5, 1.2]])),
        (SoftmaxCrossEntropy(), np.array([[1.5, -0.5]])),
    ],
    ids=["binary", "probabilities"],
)
def test_probabilities_outside_zero_one_are_refused(loss, target) -> None:
    assert "[0, 1]" in refused(loss, np.zeros((1, 2)), target)


def test_non_numeric_targets_are_refused() -> None:
    message = refused(SoftmaxCrossEntropy(), np.zeros((2, 2)), np.array(["a", "b"]))
    assert "numeric" in message and "<U1" in message


def test_output_that_is_not_a_2d_batch_is_refused() -> None:
    with pytest.raises(ShapeError, match=r"\(batch, outputs\)"):
        MSE().value(np.zeros(3), np.zeros(3))
    with pytest.raises(InputError, match="empty batch"):
        MSE().value(np.zeros((0, 3)), np.zeros((0, 3)))


# -- PyTorch parity -------------------------------------------------------------------


@pytest.mark.torch
@pytest.mark.parametrize(("case", "reduction"), GRID, ids=GRID_IDS)
def test_value_and_gradient_match_pytorch(case, reduction, rng) -> None:
    torch = pytest.importorskip("torch")
    loss, output, target = build(case, reduction, rng)
    t = torch.tensor(output, requires_grad=True)
    expected = CASES[case][4](torch, t, target, reduction)
    expected.backward()

    value, grad = loss.value_and_grad(output, target)
    assert value == pytest.approx(expected.item(), rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize(
    "case", ["ce-indices", "ce-soft-smoothed", "bce-probabilities", "nll"]
)
def test_extreme_logits_match_pytorch(case, rng) -> None:
    torch = pytest.importorskip("torch")
    loss, _, target = build(case, "mean", rng)
    output = rng.choice([-1e4, 0.0, 1e4], size=(BATCH, WIDTH))
    if case == "nll":
        output = log_softmax(output)
    t = torch.tensor(output, requires_grad=True)
    expected = CASES[case][4](torch, t, target, "mean")
    expected.backward()

    value, grad = loss.value_and_grad(output, target)
    assert value == pytest.approx(expected.item(), rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-10, atol=1e-12)
