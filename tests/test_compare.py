"""The PyTorch twin and the comparison results: building, refusing, reporting."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from annlens import Dense, Sequential
from annlens.activations import FunctionActivation
from annlens.analysis.compare import (
    ParityResult,
    TrajectoryResult,
    build_twin,
    compare_models,
    compare_training,
    difference,
    require_torch,
)
from annlens.errors import ConfigError, ShapeError
from annlens.layers import BatchNorm, Dropout, Layer
from annlens.losses import MSE, Loss, SoftmaxCrossEntropy

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def small_model(dtype: str = "float64") -> Sequential:
    return Sequential(
        [Dense(4, 6, "tanh"), BatchNorm(), Dropout(0.25), Dense(6, 3)],
        seed=3,
        dtype=dtype,
    )


def batch(rng: np.random.Generator, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


def test_twin_linear_weight_is_the_transpose_of_w() -> None:
    model = small_model()
    twin = build_twin(model)
    linear = twin.module.blocks[0].linear
    np.testing.assert_array_equal(
        linear.weight.detach().numpy(), model.layers[0].params["W"].T
    )
    np.testing.assert_array_equal(
        linear.bias.detach().numpy(), model.layers[0].params["b"]
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_twin_has_the_model_dtype(dtype: str) -> None:
    twin = build_twin(small_model(dtype))
    assert {p.dtype for p in twin.module.parameters()} == {getattr(torch, dtype)}


def test_twin_copies_batchnorm_running_statistics() -> None:
    model = small_model()
    model.layers[1].buffers["running_var"] = np.full(6, 2.5)
    twin = build_twin(model)
    np.testing.assert_array_equal(
        twin.module.blocks[1].norm.running_var.numpy(), np.full(6, 2.5)
    )


def test_twin_of_dense_without_bias_has_no_bias() -> None:
    model = Sequential([Dense(3, 2, bias=False)], dtype="float64")
    assert build_twin(model).module.blocks[0].linear.bias is None


def test_layer_without_twin_is_refused_naming_it() -> None:
    class Doubler(Layer):
        kind = "doubler"

        def compute(self, x: np.ndarray) -> np.ndarray:
            return 2 * x

    model = Sequential([Dense(3, 2), Doubler()], dtype="float64")
    with pytest.raises(NotImplementedError, match="doubler_0.*Doubler"):
        build_twin(model)


def test_custom_activation_without_twin_is_refused_naming_it() -> None:
    cube = FunctionActivation(lambda z: z**3, lambda z: 3 * z**2, name="cube")
    model = Sequential([Dense(3, 2, cube)], dtype="float64")
    with pytest.raises(NotImplementedError, match="'cube' of layer 'dense_0'"):
        build_twin(model)


def test_custom_loss_without_twin_is_refused_naming_it() -> None:
    class Mine(Loss):
        name = "mine"

        def value_and_grad(self, output, target):  # type: ignore[no-untyped-def]
            return float(output.sum()), np.ones_like(output)

    rng = np.random.default_rng(0)
    x, y = batch(rng)
    with pytest.raises(NotImplementedError, match="'mine'"):
        compare_models(small_model(), x, y, Mine())


def test_missing_torch_is_reported_with_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"annlens\[torch\]"):
        require_torch()


def test_compare_models_leaves_the_model_unchanged() -> None:
    model = small_model()
    before = model.state_dict()
    draw_before = np.random.default_rng(0).bit_generator.state
    rng_state = model.state.rng.bit_generator.state
    x, y = batch(np.random.default_rng(1))
    compare_models(model, x, y, SoftmaxCrossEntropy())
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    assert model.state.rng.bit_generator.state == rng_state
    assert draw_before == np.random.default_rng(0).bit_generator.state


def test_compare_models_keeps_user_hooks_out_of_the_comparison() -> None:
    model = small_model()
    model.register_hook("dense_0.pre_activation", lambda layer, z: z * 0)
    x, y = batch(np.random.default_rng(2))
    assert compare_models(model, x, y, SoftmaxCrossEntropy()).agrees
    assert len(model.list_hooks()) == 1


def test_parity_rows_cover_every_hook_point_and_gradient() -> None:
    x, y = batch(np.random.default_rng(4))
    result = compare_models(small_model(), x, y, SoftmaxCrossEntropy())
    seen = {(row.point, row.quantity) for row in result.rows}
    assert ("dense_0.pre_activation", "z") in seen
    assert ("batchnorm_0.normalized", "x_hat") in seen
    assert ("batchnorm_0.normalized_grad", "grad_x_hat") in seen
    assert ("dense_1.pre_activation_grad", "delta") in seen
    assert ("dense_0.backward", "grad_input") in seen
    assert ("dense_0.backward_pre", "grad_output") in seen
    assert ("batchnorm_0.gradient", "grads[gamma]") in seen
    assert ("dense_1.gradient", "grads[W]") in seen
    assert ("batchnorm_0.running_var", "running_var") in seen
    assert ("loss", "value") in seen and ("loss", "grad") in seen


def test_parity_result_flags_rows_beyond_its_tolerance() -> None:
    x, y = batch(np.random.default_rng(5))
    result = compare_models(small_model(), x, y, SoftmaxCrossEntropy(), 1e-30, 1e-300)
    assert not result.agrees
    assert result.worst() in result.failures()


def _with_gradient_hook(monkeypatch: pytest.MonkeyPatch, hook: object) -> None:
    """Make the annlens side of compare_models run ``hook`` at its gradients."""
    from annlens.analysis.compare import one_batch

    copy = one_batch.detached_copy

    def hooked(model: Sequential) -> Sequential:
        ours = copy(model)
        ours.register_hook("dense_0.gradient", hook)
        return ours

    monkeypatch.setattr(one_batch, "detached_copy", hooked)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("wrong", ["zeroed", "flipped"])
def test_a_wrong_gradient_below_the_absolute_floor_still_fails(
    monkeypatch: pytest.MonkeyPatch, dtype: str, wrong: str
) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 10)), rng.integers(0, 3, 32)
    layers = [Dense(10, 10, "sigmoid") for _ in range(10)]
    model = Sequential([*layers, Dense(10, 3)], seed=0, dtype=dtype)
    assert compare_models(model, x, y, SoftmaxCrossEntropy()).agrees
    change = {"zeroed": lambda g: np.zeros_like(g), "flipped": lambda g: -5 * g}[wrong]
    _with_gradient_hook(monkeypatch, lambda layer, name, grad: change(grad))

    result = compare_models(model, x, y, SoftmaxCrossEntropy())

    failing = {(row.point, row.quantity) for row in result.failures()}
    assert ("dense_0.gradient", "grads[W]") in failing
    assert ("dense_0.gradient", "grads[b]") in failing
    if dtype == "float32":  # every difference is below the absolute floor
        wrong_rows = [r for r in result.rows if r.point == "dense_0.gradient"]
        assert all(r.max_abs < result.atol for r in wrong_rows)


def test_parity_result_to_dataframe_has_one_row_per_quantity() -> None:
    x, y = batch(np.random.default_rng(6))
    result = compare_models(small_model(), x, y, SoftmaxCrossEntropy())
    frame = result.to_dataframe()
    assert len(frame) == len(result.rows)
    assert list(frame.columns) == [
        "layer",
        "point",
        "quantity",
        "shape",
        "max_abs",
        "max_rel",
        "error_annlens",
        "error_torch",
    ]
    assert frame["max_rel"].max() == result.max_rel


def test_parity_table_shows_bracketed_gradient_names() -> None:
    from rich.console import Console

    x, y = batch(np.random.default_rng(7))
    result = compare_models(small_model(), x, y, SoftmaxCrossEntropy())
    console = Console(width=200, record=True)
    console.print(result.table())
    text = console.export_text()
    assert "grads[W]" in text and "grads[gamma]" in text
    assert result.table().row_count == len(result.rows)


def test_parity_html_is_an_escaped_table_fragment() -> None:
    x, y = batch(np.random.default_rng(8))
    fragment = compare_models(small_model(), x, y, SoftmaxCrossEntropy()).to_html()
    assert fragment.startswith('<table class="annlens-parity">')
    assert fragment.count("<tr") == 1 + fragment.count('<tr class="agrees">')
    assert "max |Δ|" in fragment and "<html" not in fragment


def test_trajectory_result_has_one_row_per_step() -> None:
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((24, 4)), rng.standard_normal((24, 3))
    result = compare_training(small_model(), "sgd", {"lr": 0.1}, x, y, MSE(), 7, 8)
    assert isinstance(result, TrajectoryResult)
    assert [s.step for s in result.steps] == list(range(1, 8))
    assert len(result.to_dataframe()) == 7
    assert result.table().row_count == 7
    assert result.to_html().count('<tr class="agrees">') == 7


def test_compare_training_leaves_the_model_unchanged() -> None:
    model = small_model()
    before = model.state_dict()
    rng = np.random.default_rng(10)
    x, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
    compare_training(model, "adam", {}, x, y, SoftmaxCrossEntropy(), 3, 4)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_compare_training_refuses_a_batch_larger_than_the_data() -> None:
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((4, 4)), rng.integers(0, 3, 4)
    with pytest.raises(ConfigError, match="batch_size"):
        compare_training(small_model(), "sgd", {}, x, y, SoftmaxCrossEntropy(), 1, 5)


def test_difference_is_relative_to_the_scale_of_the_array() -> None:
    max_abs, max_rel = difference(np.array([100.0, 0.0]), np.array([99.0, 1e-9]))
    assert max_abs == pytest.approx(1.0)
    assert max_rel == pytest.approx(0.01)


def test_difference_of_two_zero_arrays_is_zero() -> None:
    assert difference(np.zeros(3), np.zeros(3)) == (0.0, 0.0)


def test_difference_refuses_arrays_of_different_shapes() -> None:
    with pytest.raises(ShapeError, match=r"\(2,\).*\(3,\)"):
        difference(np.zeros(2), np.zeros(3))


def test_parity_result_repr_names_its_verdict() -> None:
    result = ParityResult([], "float64", 1.0, 1.0)
    assert "agrees" in repr(result) and "1e-10" in repr(result)


def test_compare_models_takes_a_loss_by_name() -> None:
    x, y = batch(np.random.default_rng(12))
    result = compare_models(small_model(), x, y, "cross_entropy")
    assert result.agrees


def test_compare_models_neither_copies_nor_fires_the_models_hooks() -> None:
    class Uncopyable:
        calls = 0

        def __call__(self, layer: object, x: np.ndarray, out: np.ndarray) -> None:
            self.calls += 1

        def __deepcopy__(self, memo: dict) -> None:
            raise TypeError("this hook holds something that cannot be copied")

    hook = Uncopyable()
    model = small_model()
    model.register_hook("forward", hook)
    x, y = batch(np.random.default_rng(13))
    assert compare_models(model, x, y, SoftmaxCrossEntropy()).agrees
    assert hook.calls == 0 and len(model.list_hooks()) == 4
