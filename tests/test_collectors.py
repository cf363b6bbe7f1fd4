"""Collector values equal direct NumPy computations on the captured tensors.

Each test trains a small float64 network for a few steps with a Recorder
attached and, through ``model.register_hook``, keeps a copy of every value the
recorder saw; then it recomputes the recorded statistic from those copies with
plain NumPy and compares.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from annlens import Dense, Sequential
from annlens.analysis.collectors import (
    DeadUnits,
    Drift,
    GradCosine,
    GradNoise,
    GradNorm,
    Histograms,
    LossValue,
    Recorder,
    Saturation,
    Spectra,
    Summary,
    UpdateRatio,
)
from annlens.analysis.collectors.summary import ALL_STAGES, SUMMARY_QUANTITIES
from annlens.optim import SGD

try:
    from annlens.losses import SoftmaxCrossEntropy as _Loss
except ImportError:  # pragma: no cover - until the losses exist

    class _Loss:  # type: ignore[no-redef]
        """Softmax cross-entropy on logits, mean over the batch."""

        reduction = "mean"

        def value_and_grad(self, output, target):
            shifted = output - output.max(axis=1, keepdims=True)
            p = np.exp(shifted)
            p /= p.sum(axis=1, keepdims=True)
            rows = np.arange(len(target))
            value = float(-np.log(p[rows, target]).mean())
            grad = p.copy()
            grad[rows, target] -= 1
            return value, grad / len(target)


class Captured:
    """Copies of every value a recorder can see, by (step, layer, stage)."""

    def __init__(self, model: Sequential) -> None:
        self.model = model
        self.values: dict[tuple[int, str, str], np.ndarray] = {}
        self.losses: dict[int, float] = {}
        put = self.put
        model.register_hook("forward_pre", lambda layer, x: put(layer, "input", x))
        model.register_hook(
            "pre_activation", lambda layer, z: put(layer, "pre_activation", z)
        )
        model.register_hook(
            "post_activation", lambda layer, a: put(layer, "post_activation", a)
        )
        model.register_hook(
            "backward_pre", lambda layer, g: put(layer, "grad_output", g)
        )
        model.register_hook(
            "pre_activation_grad", lambda layer, d: put(layer, "delta", d)
        )
        model.register_hook(
            "backward", lambda layer, gi, go: put(layer, "grad_input", gi)
        )
        model.register_hook("gradient", self.gradient)
        model.register_hook("update", lambda layer, n, u: put(layer, f"update:{n}", u))
        model.register_hook("loss", self.loss)

    def put(self, layer, stage: str, value: np.ndarray) -> None:
        self.values[(self.model.state.step, layer.name, stage)] = np.array(value)

    def gradient(self, layer, name: str, grad: np.ndarray) -> None:
        self.put(layer, f"gradient:{name}", grad)
        self.put(layer, f"param:{name}", layer.params[name])

    def loss(self, point, value: float, grad: np.ndarray) -> None:
        self.losses[self.model.state.step] = float(value)

    def __getitem__(self, key: tuple[int, str, str]) -> np.ndarray:
        return self.values[key]


def make_model(dtype: str = "float64", seed: int = 0) -> Sequential:
    return Sequential(
        [Dense(6, 8, "relu"), Dense(8, 5, "tanh"), Dense(5, 3)], seed=seed, dtype=dtype
    )


def make_data(rng: np.random.Generator, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=(n, 6)), rng.integers(0, 3, size=n)


def train(model, recorder, batches, epochs: int = 1, lr: float = 0.1):
    """A plain loop: forward, loss, backward, optimizer step; end_epoch each epoch."""
    optimizer = SGD(model, lr=lr, momentum=0.9)
    loss = _Loss()
    for epoch in range(epochs):
        model.state.epoch = epoch
        for x, y in batches:
            output = model.forward(x)
            _, grad = model.loss(loss, output, y)
            model.backward(grad)
            optimizer.step()
        if recorder is not None:
            recorder.end_epoch(epoch)
    return optimizer


def run(stats, rng, steps: int = 3, epochs: int = 1, dtype: str = "float64", **kw):
    """Train with a recorder and a capture; return (recorder, captured, frame).

    Parameter-level rows are written at every recorded step unless ``kw``
    says otherwise.
    """
    model = make_model(dtype)
    kw.setdefault("parameter_every", 1)
    recorder = Recorder(model, stats=stats, **kw).attach()
    captured = Captured(model)
    batches = [make_data(rng) for _ in range(steps)]
    train(model, recorder, batches, epochs=epochs)
    return recorder, captured, recorder.to_dataframe()


def value(frame, step: int, layer: str, stage: str, quantity: str) -> float:
    rows = frame[
        (frame.step == step)
        & (frame.layer == layer)
        & (frame.stage == stage)
        & (frame.quantity == quantity)
    ]
    assert len(rows) == 1, f"{len(rows)} rows for {step} {layer} {stage} {quantity}"
    return float(rows.value.iloc[0])


STAGES = [
    ("dense_0", "pre_activation"),
    ("dense_0", "post_activation"),
    ("dense_1", "grad_output"),
    ("dense_1", "delta"),
    ("dense_2", "post_activation"),
]


@pytest.mark.parametrize(("layer", "stage"), STAGES)
def test_summary_of_activations_and_deltas_equals_numpy(rng, layer, stage):
    _, captured, frame = run([Summary(stages=ALL_STAGES)], rng)
    x = captured[(1, layer, stage)]
    expected = {
        "mean": x.mean(),
        "std": x.std(),
        "var": x.var(),
        "min": x.min(),
        "max": x.max(),
        "l2": np.linalg.norm(x),
        "rms": np.sqrt(np.mean(x**2)),
        "mean_abs": np.abs(x).mean(),
    }
    for quantity, want in expected.items():
        got = value(frame, 1, layer, stage, quantity)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15), quantity


@pytest.mark.parametrize("stage", ["param:W", "gradient:W", "update:W", "param:b"])
def test_summary_of_parameters_gradients_and_updates_equals_numpy(rng, stage):
    _, captured, frame = run([Summary(parameter_quantities=None)], rng)
    x = captured[(2, "dense_1", stage)]
    assert value(frame, 2, "dense_1", stage, "l2") == pytest.approx(np.linalg.norm(x))
    assert value(frame, 2, "dense_1", stage, "rms") == pytest.approx(
        np.sqrt(np.mean(x**2))
    )
    assert value(frame, 2, "dense_1", stage, "std") == pytest.approx(x.std())
    assert value(frame, 2, "dense_1", stage, "min") == x.min()


def test_default_summary_of_a_delta_has_every_quantity(rng):
    _, _, frame = run([Summary()], rng)
    assert set(frame[frame.stage == "delta"].quantity) == set(SUMMARY_QUANTITIES)


def test_default_summary_leaves_out_grad_output_where_delta_exists(rng):
    _, _, frame = run([Summary()], rng)
    assert "grad_output" not in set(frame.stage)
    assert "delta" in set(frame.stage)


def test_default_parameter_summary_is_the_norms_only(rng):
    _, _, frame = run([Summary()], rng)
    quantities = set(frame[frame.stage == "gradient:W"].quantity)
    assert quantities == {"l2", "rms"}


def test_float32_summary_matches_float64_numpy_within_float32_precision(rng):
    _, captured, frame = run([Summary()], rng, dtype="float32")
    x = captured[(0, "dense_0", "pre_activation")].astype(np.float64)
    assert value(frame, 0, "dense_0", "pre_activation", "std") == pytest.approx(
        x.std(), rel=1e-5
    )
    assert value(frame, 0, "dense_0", "pre_activation", "l2") == pytest.approx(
        np.linalg.norm(x), rel=1e-5
    )


def test_param_rows_hold_the_weights_the_forward_used(rng):
    recorder, captured, frame = run([Summary()], rng)
    before_step_1 = captured[(1, "dense_0", "param:W")]
    assert value(frame, 1, "dense_0", "param:W", "l2") == pytest.approx(
        np.linalg.norm(before_step_1)
    )
    after_step_0 = (
        captured[(0, "dense_0", "param:W")] + captured[(0, "dense_0", "update:W")]
    )
    np.testing.assert_allclose(before_step_1, after_step_0, rtol=1e-14)


def test_histogram_counts_equal_numpy_histogram_over_min_max(rng):
    recorder, captured, _ = run([Histograms(bins=16, every=1)], rng)
    hist = recorder.histograms()
    x = captured[(1, "dense_1", "delta")]
    rows = hist[(hist.step == 1) & (hist.layer == "dense_1") & (hist.stage == "delta")]
    expected, edges = np.histogram(x, bins=16, range=(x.min(), x.max()))
    np.testing.assert_array_equal(rows["count"].to_numpy(), expected)
    np.testing.assert_allclose(rows.bin_lo.to_numpy(), edges[:-1])
    np.testing.assert_allclose(rows.bin_hi.to_numpy(), edges[1:])


def test_histogram_quantiles_lie_within_one_bin_of_numpy_quantiles(rng):
    recorder, captured, frame = run([Histograms(bins=64, every=1)], rng, steps=2)
    x = captured[(0, "dense_0", "pre_activation")]
    width = (x.max() - x.min()) / 64
    for name, level in [("q01", 0.01), ("q25", 0.25), ("q50", 0.5), ("q99", 0.99)]:
        got = value(frame, 0, "dense_0", "pre_activation", name)
        assert abs(got - np.quantile(x, level)) <= width * (1 + 1e-9), name


def test_histograms_are_taken_at_the_first_recorded_step_of_each_epoch(rng):
    recorder, _, _ = run([Histograms()], rng, steps=3, epochs=2)
    assert sorted(recorder.histograms().step.unique()) == [0, 3]


def test_histogram_size_is_fixed_whatever_the_array_size(rng):
    recorder, _, _ = run([Histograms(bins=10, every=1)], rng)
    sizes = recorder.histograms().groupby(["step", "layer", "stage"]).size()
    assert set(sizes) == {10}


def test_dead_fraction_counts_units_with_z_at_most_zero_for_the_whole_batch(rng):
    _, captured, frame = run([DeadUnits()], rng)
    z = captured[(2, "dense_0", "pre_activation")]
    expected = np.mean(np.all(z <= 0, axis=0))
    assert value(frame, 2, "dense_0", "post_activation", "dead_fraction") == expected


def test_dead_units_are_only_counted_for_relu_layers(rng):
    _, _, frame = run([DeadUnits()], rng)
    assert set(frame.layer) == {"dense_0"}


def test_dead_epoch_fraction_counts_units_silent_in_every_batch_of_the_epoch(rng):
    model = Sequential(
        [Dense(6, 30, "relu", bias_init="zeros"), Dense(30, 3)], seed=1, dtype="float64"
    )
    model.layers[0].params["b"][:] = -2.0  # many units rarely fire
    recorder = Recorder(model, stats=[DeadUnits()]).attach()
    captured = Captured(model)
    train(model, recorder, [make_data(rng, n=4) for _ in range(5)], lr=1e-6)
    z = np.concatenate([captured[(s, "dense_0", "pre_activation")] for s in range(5)])
    expected = np.mean(np.all(z <= 0, axis=0))
    frame = recorder.to_dataframe()
    got = value(frame, 4, "dense_0", "post_activation", "dead_epoch_fraction")
    assert got == expected
    assert 0 < expected < 1


def test_saturation_bounds_follow_the_slope_rule():
    from annlens.activations import get_activation
    from annlens.analysis.collectors import saturation_bounds

    low, high = saturation_bounds(get_activation("tanh"), 0.02)
    assert high == pytest.approx(-low)
    assert 1 - np.tanh(high) ** 2 == pytest.approx(0.02)
    _, high = saturation_bounds(get_activation("sigmoid"), 0.02)
    s = 1 / (1 + np.exp(-high))
    assert s * (1 - s) == pytest.approx(0.02 * 0.25)


def test_saturated_fraction_counts_entries_beyond_the_bound(rng):
    saturation = Saturation(bounds={"tanh": (-0.5, 0.5)})
    _, captured, frame = run([saturation], rng)
    z = captured[(1, "dense_1", "pre_activation")]
    expected = np.mean((z <= -0.5) | (z >= 0.5))
    assert (
        value(frame, 1, "dense_1", "pre_activation", "saturated_fraction") == expected
    )
    assert set(frame.layer) == {"dense_1"}


def test_drift_is_the_mean_change_of_per_unit_means_between_epochs(rng):
    recorder, captured, frame = run([Drift()], rng, steps=2, epochs=2)

    def epoch_means(steps):
        return np.concatenate(
            [captured[(s, "dense_1", "pre_activation")] for s in steps]
        )

    first, second = epoch_means([0, 1]), epoch_means([2, 3])
    drift = np.abs(second.mean(axis=0) - first.mean(axis=0)).mean()
    assert value(frame, 3, "dense_1", "pre_activation", "drift") == pytest.approx(drift)
    relative = value(frame, 3, "dense_1", "pre_activation", "drift_relative")
    assert relative == pytest.approx(drift / first.std())


def test_update_ratio_is_update_norm_over_parameter_norm_before_the_update(rng):
    _, captured, frame = run([UpdateRatio()], rng)
    update = captured[(1, "dense_2", "update:W")]
    param = captured[(1, "dense_2", "param:W")]
    expected = np.linalg.norm(update) / np.linalg.norm(param)
    assert value(frame, 1, "dense_2", "update:W", "update_ratio") == pytest.approx(
        expected
    )


def test_grad_cosine_compares_the_gradients_of_successive_steps(rng):
    _, captured, frame = run([GradCosine()], rng)
    now, before = (
        captured[(2, "dense_0", "gradient:W")],
        captured[(1, "dense_0", "gradient:W")],
    )
    expected = np.sum(now * before) / (np.linalg.norm(now) * np.linalg.norm(before))
    assert value(frame, 2, "dense_0", "gradient:W", "grad_cosine") == pytest.approx(
        expected
    )
    assert 0 not in set(frame.step)


def test_grad_cosine_with_every_uses_the_step_just_before(rng):
    _, captured, frame = run([GradCosine()], rng, steps=5, every=2)
    now, before = (
        captured[(4, "dense_1", "gradient:b")],
        captured[(3, "dense_1", "gradient:b")],
    )
    expected = np.sum(now * before) / (np.linalg.norm(now) * np.linalg.norm(before))
    assert value(frame, 4, "dense_1", "gradient:b", "grad_cosine") == pytest.approx(
        expected
    )
    assert sorted(frame.step.unique()) == [2, 4]


def test_grad_cosine_with_copies_equals_the_cosine_by_reference(rng):
    _, captured, frame = run([GradCosine(copy=True)], rng)
    now, before = (
        captured[(2, "dense_2", "gradient:W")],
        captured[(1, "dense_2", "gradient:W")],
    )
    expected = np.sum(now * before) / (np.linalg.norm(now) * np.linalg.norm(before))
    assert value(frame, 2, "dense_2", "gradient:W", "grad_cosine") == pytest.approx(
        expected
    )


def test_grad_noise_equals_the_noise_scale_of_explicit_per_sample_gradients(rng):
    _, captured, frame = run([GradNoise()], rng)
    x = captured[(1, "dense_1", "input")]
    delta = captured[(1, "dense_1", "delta")]
    batch = len(x)
    # per-sample gradients of the per-sample losses (the mean loss scales by 1/B)
    per_sample = batch * np.einsum("bi,bj->bij", x, delta)
    mean = per_sample.mean(axis=0)
    np.testing.assert_allclose(mean, captured[(1, "dense_1", "gradient:W")], rtol=1e-12)
    trace_cov = np.mean(np.sum((per_sample - mean) ** 2, axis=(1, 2)))
    expected = trace_cov / np.sum(mean**2)
    assert value(frame, 1, "dense_1", "gradient:W", "grad_noise") == pytest.approx(
        expected
    )


def test_grad_noise_of_the_bias_uses_per_sample_deltas(rng):
    _, captured, frame = run([GradNoise()], rng)
    delta = captured[(0, "dense_2", "delta")]
    per_sample = len(delta) * delta
    mean = per_sample.mean(axis=0)
    expected = np.mean(np.sum((per_sample - mean) ** 2, axis=1)) / np.sum(mean**2)
    assert value(frame, 0, "dense_2", "gradient:b", "grad_noise") == pytest.approx(
        expected
    )


def test_spectra_hold_the_singular_values_of_the_initial_and_epoch_end_weights(rng):
    recorder, captured, frame = run([Spectra()], rng, steps=2)
    spectra = recorder.spectra()
    initial = spectra[(spectra.step == 0) & (spectra.layer == "dense_0")]
    expected = np.linalg.svd(captured[(0, "dense_0", "param:W")], compute_uv=False)
    np.testing.assert_allclose(initial.value.to_numpy(), expected, rtol=1e-12)
    assert list(initial["index"]) == list(range(len(expected)))
    final = recorder.model.layers[0].params["W"]
    end = spectra[(spectra.step == 2) & (spectra.layer == "dense_0")]
    np.testing.assert_allclose(
        end.value.to_numpy(), np.linalg.svd(final, compute_uv=False), rtol=1e-12
    )
    assert value(frame, 0, "dense_0", "param:W", "sv_max") == pytest.approx(expected[0])
    assert value(frame, 0, "dense_0", "param:W", "sv_min") == pytest.approx(
        expected[-1]
    )


def test_effective_rank_is_k_for_equal_values_and_one_for_a_single_value():
    from annlens.analysis.collectors import effective_rank

    assert effective_rank(np.ones(7)) == pytest.approx(7)
    assert effective_rank(np.array([3.0, 0.0, 0.0])) == pytest.approx(1)
    assert effective_rank(np.ones(7), "participation") == pytest.approx(7)
    s = np.array([2.0, 1.0])
    p = s / s.sum()
    assert effective_rank(s) == pytest.approx(np.exp(-np.sum(p * np.log(p))))
    assert effective_rank(s, "participation") == pytest.approx(25 / 17)


def test_loss_rows_equal_the_loss_of_each_step(rng):
    _, captured, frame = run([LossValue()], rng)
    for step, loss in captured.losses.items():
        assert value(frame, step, "model", "model", "loss") == loss


def test_grad_norm_is_the_norm_of_all_gradients_together(rng):
    _, captured, frame = run([GradNorm()], rng, layers="dense_0")
    total = sum(
        np.sum(captured[(1, layer, f"gradient:{p}")] ** 2)
        for layer in ("dense_0", "dense_1", "dense_2")
        for p in ("W", "b")
    )
    assert value(frame, 1, "model", "model", "grad_norm") == pytest.approx(
        math.sqrt(total)
    )


@pytest.mark.parametrize("size", [1, 100, 4096, 65536, 65537, 300_000])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_the_sum_of_an_array_of_any_size_equals_the_float64_sum(rng, size, dtype):
    from annlens.analysis.collectors.reductions import Reductions

    x = (rng.normal(size=size) * 10 + 1).astype(dtype)
    exact = float(x.astype(np.float64).sum())
    scale = float(np.abs(x.astype(np.float64)).sum())

    found = Reductions(x).sum()

    assert abs(found - exact) <= {"float32": 1e-6, "float64": 1e-14, "int64": 0}[
        dtype
    ] * max(scale, 1.0)
