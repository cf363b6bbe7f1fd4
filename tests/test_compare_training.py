"""Training side by side trains as the experiment trains, and the float32 rounding
allowance accepts rounding but not a real difference.

compare_training runs the annlens Trainer's own step next to a torch twin
with the same optimizer groups, penalties, clipping, constraints and
schedule; in float64 every step must agree to 1e-10. compare_models in
float32 measures both frameworks against a float64 evaluation.
"""

from __future__ import annotations

import numpy as np
import pytest

from annlens import Dense, Sequential
from annlens.analysis.compare import build_twin, compare_models, compare_training
from annlens.errors import ConfigError
from annlens.layers import BatchNorm, Dropout
from annlens.losses import SoftmaxCrossEntropy
from annlens.optim import L1Penalty, L2Penalty, MaxNorm, NonNegative
from annlens.optim.regularizers import CustomPenalty

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

TOLERANCE = 1e-10


def model(dtype: str = "float64") -> Sequential:
    return Sequential(
        [Dense(4, 8, "tanh"), BatchNorm(), Dropout(0.2), Dense(8, 3)],
        seed=5,
        dtype=dtype,
    )


def data(seed: int = 0, n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)) * 1.5, rng.integers(0, 3, n)


def train(**settings: object) -> object:
    x, y = data()
    optimizer = settings.pop("optimizer", "sgd")
    hyper = settings.pop("hyper", {"lr": 0.1, "momentum": 0.9})
    steps = settings.pop("steps", 8)
    return compare_training(
        model(), optimizer, hyper, x, y, SoftmaxCrossEntropy(), steps, 8, **settings
    )


def test_optimizer_groups_hold_in_torch_too() -> None:
    hyper = {"lr": 0.01, "weight_decay": 1.0, "groups": {"*.b": {"weight_decay": 0.0}}}
    result = train(optimizer="adamw", hyper=hyper)
    assert result.agrees_within(TOLERANCE), result.to_dataframe()
    assert result.steps[-1].differences["dense_0.b"][1] < TOLERANCE


@pytest.mark.parametrize(
    "penalty", [L2Penalty(0.1), L1Penalty(0.01), L2Penalty(0.1, pattern="dense_1.*")]
)
def test_penalties_join_the_loss_in_torch_too(penalty: object) -> None:
    result = train(penalties=[penalty])
    assert result.agrees_within(TOLERANCE), result.to_dataframe()
    assert repr(penalty) in result.recipe


@pytest.mark.parametrize(
    "clipping",
    [
        {"clip_norm": 0.05},
        {"clip_value": 0.01},
        {"clip_value": 0.02, "clip_norm": 0.05},
    ],
)
def test_clipping_matches_torch(clipping: dict[str, float]) -> None:
    result = train(**clipping)
    assert result.agrees_within(TOLERANCE), result.to_dataframe()


def test_clipping_changes_the_trajectory() -> None:
    plain, clipped = train(), train(clip_norm=0.05)
    assert plain.steps[-1].loss_annlens != clipped.steps[-1].loss_annlens


@pytest.mark.parametrize(
    "constraint", [MaxNorm(0.5), MaxNorm(0.5, axis=1), NonNegative(pattern="dense_1.W")]
)
def test_constraints_are_applied_in_torch_too(constraint: object) -> None:
    result = train(constraints=[constraint], hyper={"lr": 0.5})
    assert result.agrees_within(TOLERANCE), result.to_dataframe()


@pytest.mark.parametrize(
    ("name", "settings", "kind"),
    [
        ("step", {"step_size": 1, "gamma": 0.3}, "StepDecay"),
        ("cosine", {"T_max": 10, "unit": "batch"}, "CosineAnnealing"),
        ("plateau", {"patience": 0, "factor": 0.5}, "ReduceOnPlateau"),
    ],
)
def test_a_schedule_sets_the_same_learning_rate_in_torch(
    name: str, settings: dict[str, object], kind: str
) -> None:
    result = train(schedule=name, schedule_settings=settings, steps=12)
    assert result.agrees_within(TOLERANCE), result.to_dataframe()
    assert result.recipe.startswith(kind)


def test_a_schedule_changes_the_trajectory() -> None:
    plain = train(steps=12)
    settings = {"step_size": 1, "gamma": 0.1}
    decayed = train(steps=12, schedule="step", schedule_settings=settings)
    assert plain.steps[-1].loss_annlens != decayed.steps[-1].loss_annlens


def test_a_diverging_run_stops_where_the_nan_guard_stops_it() -> None:
    net = Sequential([Dense(4, 8, "relu"), Dense(8, 3)], seed=1, dtype="float32")
    x, y = data()
    loss = SoftmaxCrossEntropy()
    result = compare_training(net, "sgd", {"lr": 1e30}, x, y, loss, 6, 8)
    assert result.stopped is not None
    assert result.stopped.startswith(f"annlens stopped at step {len(result.steps) + 1}")
    assert len(result.steps) < 6
    assert not result.agrees


def test_a_penalty_without_a_torch_twin_is_refused_naming_it() -> None:
    penalty = CustomPenalty(lambda w: float(np.sum(w**4)), grad_fn=lambda w: 4 * w**3)
    with pytest.raises(NotImplementedError, match="penalty CustomPenalty"):
        train(penalties=[penalty])


def test_steps_below_one_are_refused_before_anything_runs() -> None:
    with pytest.raises(ConfigError, match="steps must be >= 1, got 0"):
        train(steps=0)


def test_a_negative_tolerance_is_refused() -> None:
    with pytest.raises(ConfigError, match="tolerance must be a finite number >= 0"):
        train(tolerance=-1.0)


def test_float32_rows_say_how_far_each_framework_is_from_float64() -> None:
    x, y = data(1, 16)
    result = compare_models(model("float32"), x, y, SoftmaxCrossEntropy())
    assert all(row.error_annlens is not None for row in result.rows)
    assert all(row.error_torch is not None for row in result.rows)
    assert result.agrees
    assert "4x PyTorch's own float32 error" in result.tolerance_text()


def test_float64_rows_have_no_wider_evaluation() -> None:
    x, y = data(2, 16)
    result = compare_models(model(), x, y, SoftmaxCrossEntropy())
    assert all(row.error_ratio is None for row in result.rows)
    assert "PyTorch's own" not in result.tolerance_text()


def test_the_rounding_allowance_accepts_amplified_rounding() -> None:
    # eight saturated tanh layers with weights eight times too large: float32
    # rounding grows layer by layer in both frameworks alike
    net = Sequential(
        [Dense(16, 64, "tanh", "normal")]
        + [Dense(64, 64, "tanh", "normal") for _ in range(7)]
        + [Dense(64, 10, init="normal")],  # normal(0, 1)
        seed=0,
        dtype="float32",
    )
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((32, 16)), rng.integers(0, 10, 32)
    plain = compare_models(net, x, y, SoftmaxCrossEntropy(), rounding=0)
    allowed = compare_models(net, x, y, SoftmaxCrossEntropy())
    assert plain.failures(), "this network should amplify rounding beyond 1e-4"
    assert allowed.agrees, allowed.failures()
    for row in plain.failures():
        assert row.error_ratio is not None and row.error_ratio <= 4


def test_the_rounding_allowance_does_not_hide_a_real_difference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from annlens.analysis.compare.twin import Twin

    load = Twin.load_from_model

    def perturbed(self: Twin) -> None:
        load(self)
        with torch.no_grad():
            self.pairs[0].tensor.add_(1e-3)

    monkeypatch.setattr(Twin, "load_from_model", perturbed)
    x, y = data(4, 16)
    result = compare_models(model("float32"), x, y, SoftmaxCrossEntropy())
    worst = result.worst()
    assert not result.agrees
    assert worst is not None and worst.error_ratio is not None
    assert worst.error_ratio > 100


def test_widened_twin_holds_the_same_weights_in_float64() -> None:
    twin = build_twin(model("float32"))
    wide = twin.widened()
    assert wide.dtype == torch.float64
    for narrow, broad in zip(twin.pairs, wide.pairs, strict=True):
        assert narrow.name == broad.name
        assert broad.tensor.dtype == torch.float64
        np.testing.assert_array_equal(narrow.torch_value(), broad.torch_value())
        assert broad.tensor is not narrow.tensor
