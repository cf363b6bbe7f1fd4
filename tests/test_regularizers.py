"""Penalties (L1, L2, custom), L2 versus decoupled weight decay, gradient
clipping and parameter constraints."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from annlens.errors import ConfigError, NonFiniteError, ShapeError
from annlens.layers import Dense
from annlens.model import Sequential
from annlens.optim import (
    SGD,
    Adam,
    AdamW,
    CustomPenalty,
    L1Penalty,
    L2Penalty,
    MaxNorm,
    NonNegative,
    Penalty,
    clip_grad_norm,
    clip_grad_value,
    finite_difference,
    grad_norm,
)


def make_model(seed: int = 0) -> Sequential:
    return Sequential([Dense(3, 4, "tanh"), Dense(4, 2)], seed=seed, dtype="float64")


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(np.linalg.norm(a) + np.linalg.norm(b), 1e-30)
    return float(np.linalg.norm(a - b) / scale)


def fill_gradients(model: Sequential, rng: np.random.Generator, scale: float = 1.0):
    for layer in model.layers:
        for key, param in layer.params.items():
            layer.grads[key] = scale * rng.normal(size=param.shape)


def penalty_as_function(penalty: Penalty, model: Sequential, qualified: str):
    """The penalty as a function of one parameter, the others held fixed."""
    layer_name, key = qualified.split(".")
    layer = model.layer(layer_name)

    def value(param: np.ndarray) -> float:
        saved = layer.params[key]
        layer.params[key] = param
        try:
            return penalty.value(model)
        finally:
            layer.params[key] = saved

    return value


def orthogonality(W: np.ndarray) -> float:
    gap = W.T @ W - np.eye(W.shape[1])
    return float(np.sum(gap**2))


def orthogonality_grad(W: np.ndarray) -> np.ndarray:
    return 4 * W @ (W.T @ W - np.eye(W.shape[1]))


# -- L1 and L2 ------------------------------------------------------------------


def test_l2_value_is_half_strength_times_squared_weights() -> None:
    model = make_model()
    W0, W1 = model.layers[0].params["W"], model.layers[1].params["W"]
    expected = 0.5 * 0.01 * (np.sum(W0**2) + np.sum(W1**2))
    assert L2Penalty(0.01).value(model) == pytest.approx(expected, rel=1e-14)


def test_l1_value_is_strength_times_absolute_weights() -> None:
    model = make_model()
    W0, W1 = model.layers[0].params["W"], model.layers[1].params["W"]
    expected = 0.01 * (np.sum(np.abs(W0)) + np.sum(np.abs(W1)))
    assert L1Penalty(0.01).value(model) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("penalty", [L2Penalty(0.3), L1Penalty(0.3)], ids=repr)
@pytest.mark.parametrize("qualified", ["dense_0.W", "dense_1.W"])
def test_penalty_gradient_matches_finite_differences(
    penalty: Penalty, qualified: str
) -> None:
    model = make_model()
    param = model.parameters()[qualified]
    assert np.min(np.abs(param)) > 1e-3  # away from L1's kink

    numeric = finite_difference(penalty_as_function(penalty, model, qualified), param)

    assert relative_error(penalty.gradients(model)[qualified], numeric) <= 1e-6


def test_add_gradients_replaces_arrays_and_leaves_the_old_ones(
    rng: np.random.Generator,
) -> None:
    model = make_model()
    fill_gradients(model, rng)
    old = {q: g for q, g in model.gradients().items()}
    copies = {q: g.copy() for q, g in old.items()}

    L2Penalty(0.1).add_gradients(model)

    for qualified, grad in model.gradients().items():
        param = model.parameters()[qualified]
        np.testing.assert_array_equal(old[qualified], copies[qualified])
        if qualified.endswith(".W"):
            assert grad is not old[qualified]
            np.testing.assert_allclose(grad, copies[qualified] + 0.1 * param)
        else:
            assert grad is old[qualified]  # biases are not chosen by default


def test_pattern_chooses_which_parameters_are_penalised(
    rng: np.random.Generator,
) -> None:
    model = make_model()
    fill_gradients(model, rng)
    before = {q: g.copy() for q, g in model.gradients().items()}

    L1Penalty(0.5, pattern=["dense_1.*"]).add_gradients(model)

    after = model.gradients()
    for qualified in ("dense_0.W", "dense_0.b"):
        np.testing.assert_array_equal(after[qualified], before[qualified])
    for qualified in ("dense_1.W", "dense_1.b"):
        param = model.parameters()[qualified]
        np.testing.assert_allclose(
            after[qualified], before[qualified] + 0.5 * np.sign(param)
        )


def test_pattern_that_matches_nothing_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\['\*\.w'\] matches no parameter"):
        L2Penalty(0.1, pattern="*.w").value(make_model())


def test_negative_strength_is_refused() -> None:
    with pytest.raises(ConfigError, match="L2Penalty strength"):
        L2Penalty(-0.1)


def test_l2_penalty_with_sgd_equals_sgd_weight_decay(
    rng: np.random.Generator,
) -> None:
    penalised, decayed = make_model(), make_model()
    with_penalty, with_decay = (
        SGD(penalised, lr=0.1),
        SGD(decayed, lr=0.1, weight_decay=0.05),
    )
    for _ in range(5):
        fill_gradients(penalised, rng)
        for layer_a, layer_b in zip(penalised.layers, decayed.layers, strict=True):
            layer_b.grads = {k: v.copy() for k, v in layer_a.grads.items()}
        L2Penalty(0.05, pattern="*").add_gradients(penalised)
        with_penalty.step()
        with_decay.step()

    for qualified, param in penalised.parameters().items():
        np.testing.assert_allclose(param, decayed.parameters()[qualified], rtol=1e-13)


# -- L2 in the gradient versus decoupled weight decay -------------------------


def test_adam_with_l2_and_adamw_differ_as_the_adamw_paper_says() -> None:
    """With no loss gradient, one step from the same weights.

    Adam + L2: g = wd * w, m_hat = g, v_hat = g**2, so the step is
    ``-lr * wd * w / (wd * |w| + eps)``, close to ``-lr * sign(w)`` for every
    weight whatever its size. AdamW: the Adam step of a zero gradient is 0, and
    the decay is ``-lr * wd * w``, proportional to the weight.
    """
    lr, wd, eps = 0.01, 0.1, 1e-8
    start = make_model().parameters()
    changes = {}
    for name in ("adam+l2", "adamw"):
        model = make_model()
        model.zero_grad()
        if name == "adam+l2":
            optimizer = Adam(model, lr=lr, eps=eps)
            L2Penalty(wd).add_gradients(model)
        else:
            optimizer = AdamW(
                model,
                lr=lr,
                eps=eps,
                groups={"*.b": {"weight_decay": 0.0}},
                weight_decay=wd,
            )
        optimizer.step()
        changes[name] = {q: p - start[q] for q, p in model.parameters().items()}

    for qualified in ("dense_0.W", "dense_1.W"):
        w = start[qualified]
        np.testing.assert_allclose(
            changes["adam+l2"][qualified],
            -lr * wd * w / (wd * np.abs(w) + eps),
            rtol=1e-12,
        )
        np.testing.assert_allclose(
            changes["adamw"][qualified], -lr * wd * w, rtol=1e-12
        )
        np.testing.assert_allclose(np.abs(changes["adam+l2"][qualified]), lr, rtol=1e-5)
    for qualified in ("dense_0.b", "dense_1.b"):
        assert not np.any(changes["adam+l2"][qualified])
        assert not np.any(changes["adamw"][qualified])


def test_decoupled_decay_on_adam_is_adamw(rng: np.random.Generator) -> None:
    a, b = make_model(), make_model()
    adam = Adam(a, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)
    adamw = AdamW(b, lr=0.01, weight_decay=0.1)
    for _ in range(5):
        fill_gradients(a, rng)
        for la, lb in zip(a.layers, b.layers, strict=True):
            lb.grads = {k: v.copy() for k, v in la.grads.items()}
        adam.step()
        adamw.step()
    for qualified, param in a.parameters().items():
        assert param.tobytes() == b.parameters()[qualified].tobytes()


# -- custom penalties ---------------------------------------------------------


def test_custom_penalty_with_grad_fn_gives_value_and_gradient() -> None:
    model = make_model()
    penalty = CustomPenalty(orthogonality, orthogonality_grad, pattern="dense_0.W")
    W = model.layers[0].params["W"]

    assert penalty.value(model) == pytest.approx(orthogonality(W), rel=1e-14)
    np.testing.assert_allclose(
        penalty.gradients(model)["dense_0.W"], orthogonality_grad(W), rtol=1e-14
    )


def test_custom_penalty_check_accepts_a_right_grad_fn_and_flags_a_wrong_one() -> None:
    model = make_model()
    right = CustomPenalty(orthogonality, orthogonality_grad)
    wrong = CustomPenalty(orthogonality, lambda W: 2 * orthogonality_grad(W))

    assert max(right.check(model).values()) <= 1e-6
    errors = wrong.check(model)
    assert set(errors) == {"dense_0.W", "dense_1.W"}
    assert min(errors.values()) > 0.3


def test_custom_penalty_without_grad_fn_warns_and_uses_finite_differences() -> None:
    model = make_model()
    with pytest.warns(UserWarning, match="finite differences"):
        penalty = CustomPenalty(orthogonality)

    gradients = penalty.gradients(model)

    for qualified in ("dense_0.W", "dense_1.W"):
        W = model.parameters()[qualified]
        assert relative_error(gradients[qualified], orthogonality_grad(W)) <= 1e-6


def test_custom_penalty_leaves_parameters_untouched() -> None:
    model = make_model()
    before = {q: p.copy() for q, p in model.parameters().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        CustomPenalty(orthogonality).add_gradients(model)
    for qualified, param in model.parameters().items():
        assert param.tobytes() == before[qualified].tobytes()


def test_custom_penalty_refuses_a_grad_fn_of_the_wrong_shape() -> None:
    penalty = CustomPenalty(orthogonality, lambda W: W.T)
    with pytest.raises(ShapeError, match=r"shape \(4, 3\).*\(3, 4\)"):
        penalty.add_gradients(make_model())


def test_check_needs_a_grad_fn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        penalty = CustomPenalty(orthogonality)
    with pytest.raises(ConfigError, match="no grad_fn"):
        penalty.check(make_model())


# -- clipping -----------------------------------------------------------------


def test_clip_by_norm_brings_the_global_norm_to_max_norm(
    rng: np.random.Generator,
) -> None:
    model = make_model()
    fill_gradients(model, rng, scale=10.0)
    old = model.gradients()
    copies = {q: g.copy() for q, g in old.items()}
    expected = np.sqrt(sum(np.sum(g**2) for g in copies.values()))

    returned = clip_grad_norm(model, max_norm=1.5)

    assert returned == pytest.approx(expected, rel=1e-14)
    assert abs(grad_norm(model) - 1.5) <= 1e-12
    for qualified, grad in model.gradients().items():
        assert grad is not old[qualified]
        np.testing.assert_array_equal(old[qualified], copies[qualified])
        np.testing.assert_allclose(grad, copies[qualified] * 1.5 / expected, rtol=1e-14)


def test_clip_by_norm_leaves_small_gradients_alone(rng: np.random.Generator) -> None:
    model = make_model()
    fill_gradients(model, rng, scale=0.01)
    old = model.gradients()
    norm = clip_grad_norm(model, max_norm=100.0)
    assert norm < 100.0
    assert all(model.gradients()[q] is g for q, g in old.items())


def test_clip_by_value_bounds_every_entry(rng: np.random.Generator) -> None:
    model = make_model()
    fill_gradients(model, rng, scale=3.0)
    copies = {q: g.copy() for q, g in model.gradients().items()}
    expected = np.sqrt(sum(np.sum(g**2) for g in copies.values()))

    returned = clip_grad_value(model, clip_value=0.5)

    assert returned == pytest.approx(expected, rel=1e-14)
    for qualified, grad in model.gradients().items():
        assert np.max(np.abs(grad)) <= 0.5
        np.testing.assert_array_equal(grad, np.clip(copies[qualified], -0.5, 0.5))
    assert any(np.any(np.abs(g) > 0.5) for g in copies.values())


def test_clipping_a_non_finite_gradient_names_it_and_changes_nothing(
    rng: np.random.Generator,
) -> None:
    model = make_model()
    fill_gradients(model, rng)
    model.layers[1].grads["b"] = np.array([1.0, np.nan])
    before = model.gradients()
    with pytest.raises(NonFiniteError, match="dense_1.b") as error:
        clip_grad_norm(model, 1.0)
    assert error.value.layer == "dense_1" and error.value.stage == "gradient"
    assert all(model.gradients()[q] is g for q, g in before.items())


def test_clipping_refuses_a_non_positive_limit() -> None:
    with pytest.raises(ConfigError, match="max_norm"):
        clip_grad_norm(make_model(), 0.0)
    with pytest.raises(ConfigError, match="clip_value"):
        clip_grad_value(make_model(), -1.0)


# -- constraints --------------------------------------------------------------


def test_max_norm_caps_each_unit_and_leaves_small_units_exactly() -> None:
    model = make_model()
    W = model.layers[0].params["W"]
    W[:, 0] *= 10.0  # one unit far outside the ball
    norms = np.linalg.norm(W, axis=0)
    limit = float(np.sort(norms)[1]) * 1.01  # the two smallest columns stay inside
    before = W.copy()

    MaxNorm(limit, pattern="dense_0.W").apply(model)

    after = model.layers[0].params["W"]
    assert after is W  # written in place, references stay valid
    new_norms = np.linalg.norm(after, axis=0)
    for unit in range(W.shape[1]):
        if norms[unit] > limit:
            assert new_norms[unit] == pytest.approx(limit, rel=1e-14)
            np.testing.assert_allclose(
                after[:, unit], before[:, unit] * limit / norms[unit], rtol=1e-14
            )
        else:
            np.testing.assert_array_equal(after[:, unit], before[:, unit])


def test_max_norm_after_an_optimizer_step(rng: np.random.Generator) -> None:
    model = make_model()
    optimizer = SGD(model, lr=1.0)
    constraint = MaxNorm(0.5)
    for _ in range(3):
        fill_gradients(model, rng, scale=5.0)
        optimizer.step()
        constraint.apply(model)
    for layer in model.layers:
        assert np.all(np.linalg.norm(layer.params["W"], axis=0) <= 0.5 + 1e-12)


def test_non_negative_clips_weights_at_zero_and_leaves_biases() -> None:
    model = make_model()
    model.layers[1].params["b"][:] = -1.0
    before = {q: p.copy() for q, p in model.parameters().items()}

    NonNegative().apply(model)

    for qualified, param in model.parameters().items():
        if qualified.endswith(".W"):
            np.testing.assert_array_equal(param, np.maximum(before[qualified], 0))
            assert np.any(before[qualified] < 0)
        else:
            np.testing.assert_array_equal(param, before[qualified])


def test_constraint_and_penalty_reprs_show_their_settings() -> None:
    assert repr(MaxNorm(2.0)) == "MaxNorm(max_value=2.0, axis=0, pattern='*.W')"
    assert repr(L2Penalty(0.1)) == "L2Penalty(strength=0.1, pattern='*.W')"
    assert "grad_fn='given'" in repr(CustomPenalty(orthogonality, orthogonality_grad))


def test_a_constraint_that_refuses_one_parameter_changes_none() -> None:
    model = make_model()
    for layer in model.layers:
        layer.params["W"] *= 10.0
    before = model.state_dict()
    # axis 1 fits dense_0.W but no bias: the bias is refused after W was chosen
    with pytest.raises(ConfigError, match="axis 1 does not exist"):
        MaxNorm(1.0, axis=1, pattern="*").apply(model)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_a_penalty_whose_gradient_fails_adds_to_no_gradient() -> None:
    model = make_model()
    fill_gradients(model, np.random.default_rng(0))
    before = [layer.grads["W"].copy() for layer in model.layers]
    penalty = CustomPenalty(
        lambda W: float(np.sum(W**2)),
        grad_fn=lambda W: 2 * W if W.shape[0] == 3 else np.zeros(3),
    )
    with pytest.raises(ShapeError, match="grad_fn returned shape"):
        penalty.add_gradients(model)
    for layer, grad in zip(model.layers, before, strict=True):
        np.testing.assert_array_equal(layer.grads["W"], grad)


@pytest.mark.parametrize(
    ("constraint", "message"),
    [
        (MaxNorm(1.0, axis=3), "axis 3 does not exist"),
        (NonNegative(pattern="conv*"), "matches no parameter"),
    ],
)
def test_the_trainer_refuses_a_constraint_before_any_update(
    constraint, message
) -> None:
    from annlens.training import Trainer

    model = make_model()
    with pytest.raises(ConfigError, match=message):
        Trainer(model, "mse", SGD(model, lr=0.1), constraints=[constraint])
