"""gradcheck: passes correct layers and models, finds a wrong gradient and names
it, runs in float64, and leaves the model exactly as it was."""

from __future__ import annotations

import numpy as np
import pytest

from annlens import Activation, Dense, Sequential
from annlens.analysis import GradcheckReport, gradcheck
from annlens.errors import ConfigError
from annlens.layers import BatchNorm, Dropout
from annlens.losses import MSE, SoftmaxCrossEntropy


class BadBiasDense(Dense):
    """A Dense layer whose bias gradient is off by a factor of two."""

    def compute_backward(self, grad_output):
        grad_input = super().compute_backward(grad_output)
        self.grads["b"] = 2 * self.grads["b"]
        return grad_input


def small_model(dtype: str = "float64") -> Sequential:
    layers = [Dense(3, 5, "tanh"), Dense(5, 4, "relu"), Activation("softmax")]
    return Sequential([*layers, Dense(4, 2)], seed=3, dtype=dtype)


def batch(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=(6, 3)), rng.normal(size=(6, 2))


def test_a_correct_model_passes_with_every_tensor_listed(rng) -> None:
    x, y = batch(rng)
    report = gradcheck(small_model(), x, y, MSE())
    assert isinstance(report, GradcheckReport) and report.passed
    names = [check.name for check in report.tensors]
    assert names == [
        "dense_0.W",
        "dense_0.b",
        "dense_1.W",
        "dense_1.b",
        "dense_2.W",
        "dense_2.b",
        "input",
    ]
    assert report.worst.error <= 1e-6
    assert all(check.checked == np.prod(check.shape) for check in report.tensors)


def test_a_single_layer_can_be_checked(rng) -> None:
    layer = Dense(3, 4, "sigmoid", seed=1)
    report = gradcheck(layer, rng.normal(size=(5, 3)), rng.integers(0, 4, 5), "nll")
    assert report.passed
    assert [c.name for c in report.tensors] == ["dense.W", "dense.b", "input"]


def test_a_layer_without_parameters_checks_its_input_gradient(rng) -> None:
    report = gradcheck(
        Activation("gelu"), rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), "mse"
    )
    assert report.passed and [c.name for c in report.tensors] == ["input"]


def test_a_wrong_gradient_is_found_and_named(rng) -> None:
    model = Sequential([Dense(3, 4, "tanh"), BadBiasDense(4, 2)], dtype="float64")
    x, y = batch(rng)
    report = gradcheck(model, x, y, MSE())
    assert not report.passed
    assert report.worst.name == "dense_1.b"
    assert report["dense_1.b"].error > 0.1
    assert report["dense_1.b"].analytic == pytest.approx(
        2 * report["dense_1.b"].numeric, rel=1e-6
    )
    assert report["dense_1.W"].passed and report["input"].passed
    assert "MISMATCH" in str(report) and "gradcheck FAILED" in str(report)


def test_weights_gradients_and_caches_are_left_exactly_as_they_were(rng) -> None:
    model = small_model()
    x, y = batch(rng)
    model.forward(x)
    model.backward(np.ones((6, 2)))
    params = {k: (v, v.copy()) for k, v in model.parameters().items()}
    grads = {k: v.copy() for k, v in model.gradients().items()}
    caches = [layer.cache for layer in model.layers]

    gradcheck(model, x + 1, y, MSE())

    for name, (array, saved) in params.items():
        assert model.parameters()[name] is array
        assert np.array_equal(array, saved)
    for name, saved in grads.items():
        assert np.array_equal(model.gradients()[name], saved)
    for layer, cache in zip(model.layers, caches, strict=True):
        assert layer.cache is cache


def test_hooks_stay_registered_but_do_not_fire_during_the_check(rng) -> None:
    model, seen = small_model(), []
    model.register_hook("forward", lambda layer, x, out: seen.append(layer.name))
    x, y = batch(rng)
    gradcheck(model, x, y, MSE())
    assert seen == []
    model.forward(x)
    assert len(seen) == 4


def test_a_float32_model_is_checked_through_a_float64_copy(rng) -> None:
    model = small_model("float32")
    saved = {k: v.copy() for k, v in model.parameters().items()}
    x, y = batch(rng)
    report = gradcheck(model, x, y, MSE())
    assert report.passed and "float64 copy" in report.note
    assert "float64 copy" in str(report)
    for name, value in model.parameters().items():
        assert value.dtype == np.float32 and np.array_equal(value, saved[name])


def test_dropout_and_batchnorm_in_training_mode_pass_and_keep_their_state(rng) -> None:
    layers = [Dense(3, 6, "relu"), BatchNorm(6), Dropout(0.3), Dense(6, 3)]
    model = Sequential(layers, seed=5, dtype="float64")
    model.train()
    running = {k: v.copy() for k, v in model.layers[1].buffers.items()}
    noise = model.state.rng.bit_generator.state
    x, labels = rng.normal(size=(8, 3)), rng.integers(0, 3, 8)

    report = gradcheck(model, x, labels, SoftmaxCrossEntropy())

    assert report.passed, str(report)
    for name, value in model.layers[1].buffers.items():
        assert np.array_equal(value, running[name])
    assert model.state.rng.bit_generator.state == noise


def test_max_entries_checks_a_random_subset(rng) -> None:
    x, y = batch(rng)
    report = gradcheck(small_model(), x, y, MSE(), max_entries=4)
    assert report.passed
    assert report["dense_0.W"].checked == 4 and report["dense_0.b"].checked == 4
    assert report["dense_2.b"].checked == 2


def test_the_report_reads_well(rng) -> None:
    x, y = batch(rng)
    report = gradcheck(small_model(), x, y, "mse")
    text = str(report)
    assert text.startswith("gradcheck passed: tolerance 1e-06")
    assert "dense_1.W" in text and "input" in text and "15 of 15 entries" in text
    assert repr(report).startswith("GradcheckReport(passed=True, tensors=7")
    with pytest.raises(KeyError, match="dense_0.W"):
        report["dense_9.W"]


def test_something_that_is_not_a_model_is_refused() -> None:
    with pytest.raises(ConfigError, match="Sequential or a Layer"):
        gradcheck(lambda x: x, np.zeros((1, 1)), np.zeros((1, 1)), "mse")


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("eps", 0.0, "eps must be a finite number > 0, got 0.0"),
        ("eps", -1e-6, "eps must be a finite number > 0"),
        ("tolerance", float("nan"), "tolerance must be a finite number > 0, got nan"),
        ("max_entries", 0, "max_entries must be an integer >= 1, got 0; or None"),
    ],
)
def test_a_step_tolerance_or_sample_that_cannot_give_a_verdict_is_refused(
    rng, setting, value, message
) -> None:
    model = Sequential([Dense(3, 2, "tanh")], seed=0, dtype="float64")
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))

    with pytest.raises(ConfigError, match=message):
        gradcheck(model, x, y, MSE(), **{setting: value})


def test_a_vanishing_gradient_is_compared_in_absolute_terms(rng) -> None:
    layers = [Dense(3, 3, "sigmoid"), Dense(3, 3, "sigmoid"), Dense(3, 2, "sigmoid")]
    model = Sequential(layers, seed=2, dtype="float64")
    model.layers[1].params["W"] *= 1e-4
    x, y = batch(rng)
    report = gradcheck(model, x, y, MSE())
    assert report.passed, str(report)
    assert report["dense_0.W"].below_resolution
    assert not report["dense_2.W"].below_resolution
    assert "compared in absolute terms" in str(report["dense_0.W"])


def test_an_input_with_nan_is_refused_naming_where():
    from annlens import Dense
    from annlens.errors import InputError

    x = np.ones((3, 4))
    x[1, 2] = np.nan
    with pytest.raises(InputError, match=r"holds NaN or Inf \(first at index \(1, 2\)"):
        gradcheck(Dense(4, 2), x, np.zeros((3, 2)), "mse")
