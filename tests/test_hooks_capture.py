"""model.capture: copies of every internal quantity of one pass, nothing left behind."""

from __future__ import annotations

import numpy as np
import pytest

from annlens import Dense, Sequential, gradcheck, hessian
from annlens.errors import ConfigError, HookError
from annlens.hooks.recipes import stop_forward
from annlens.layers.batchnorm import BatchNorm
from annlens.layers.dropout import Dropout
from annlens.losses import MSE
from annlens.model.capture import Capture
from hooks_support import (
    BACKWARD_STAGES,
    FORWARD_STAGES,
    assert_same,
    make_batch,
    make_model,
    reference_pass,
)


def test_a_forward_capture_holds_every_forward_point_equal_to_numpy() -> None:
    model = make_model()
    x, _ = make_batch()
    expected = reference_pass(model, x)

    cache = model.capture(x)

    names = [layer.name for layer in model.layers]
    assert list(cache) == [f"{n}.{s}" for n in names for s in FORWARD_STAGES]
    for point in cache:
        assert_same(cache[point], expected[point], point)
    assert_same(cache.output, expected["output"])
    assert cache.loss_value is None and cache.stopped_at is None


def test_a_capture_with_target_and_loss_holds_backward_points_equal_to_numpy() -> None:
    model = make_model()
    x, y = make_batch()
    expected = reference_pass(model, x, y)

    cache = model.capture(x, y, loss=MSE())

    for point, value in expected.items():
        if point != "output":
            assert_same(cache[point], value, point)
    assert cache.loss_value == pytest.approx(expected["loss.loss"]["value"], rel=1e-12)
    for layer in model.layers:
        for stage in BACKWARD_STAGES:
            assert f"{layer.name}.{stage}" in cache


def test_documented_keys_hold_output_grad_input_and_parameter_gradients() -> None:
    model = make_model()
    x, y = make_batch()
    expected = reference_pass(model, x, y)

    cache = model.capture(x, y, loss=MSE())

    assert_same(cache["dense_0.forward"], expected["dense_0.post_activation"])
    assert cache["dense_0.backward"].shape == x.shape
    assert set(cache["dense_0.gradient"]) == {"W", "b"}
    assert cache["dense_0.gradient"]["W"].shape == (3, 5)
    assert set(cache["loss.loss"]) == {"value", "grad"}


def test_captured_values_are_copies_the_model_never_changes_afterwards() -> None:
    model = make_model()
    x, y = make_batch()
    cache = model.capture(x, y, loss=MSE())
    kept = {p: (v.copy() if isinstance(v, np.ndarray) else v) for p, v in cache.items()}

    cache["dense_0.forward"][...] = 7.0  # a copy is the caller's to change
    model.forward(x + 1)
    model.backward(np.ones((len(x), 2)))

    assert np.all(cache["dense_0.forward"] == 7.0)
    for point in kept:
        if point != "dense_0.forward" and isinstance(kept[point], np.ndarray):
            np.testing.assert_array_equal(cache[point], kept[point])
    assert model.layers[0].cache[2] is not None and not np.all(
        model.layers[0].cache[2] == 7.0
    )


def test_points_filter_by_stage_name_and_pattern() -> None:
    model = make_model()
    x, y = make_batch()

    by_stage = model.capture(x, points="post_activation")
    by_name = model.capture(x, y, MSE(), points="dense_1.pre_activation_grad")
    by_pattern = model.capture(x, y, MSE(), points=["dense_2.*", "loss"])
    by_layer = model.capture(x, points="forward", layers=Dense)

    assert list(by_stage) == [f"{layer.name}.post_activation" for layer in model.layers]
    assert list(by_name) == ["dense_1.pre_activation_grad"]
    assert list(by_pattern) == [  # in firing order
        *(f"dense_2.{s}" for s in FORWARD_STAGES),
        "loss.loss",
        *(f"dense_2.{s}" for s in BACKWARD_STAGES + ("gradient",)),
    ]
    assert list(by_layer) == ["dense_0.forward", "dense_1.forward", "dense_2.forward"]


def test_stage_and_layer_views_regroup_the_capture() -> None:
    model = make_model()
    x, y = make_batch()
    cache = model.capture(x, y, loss=MSE())

    assert list(cache.stage("gradient")) == ["dense_2", "dense_1", "dense_0"]
    assert list(cache.layer("activation_0")) == list(FORWARD_STAGES + BACKWARD_STAGES)
    assert cache.nbytes > 0 and "points" in repr(cache)


def test_a_missing_key_raises_a_key_error_that_lists_what_was_captured() -> None:
    model = make_model()
    cache = model.capture(np.ones((2, 3)), points="forward")

    with pytest.raises(KeyError, match="nothing captured at 'dense_0.backward'"):
        cache["dense_0.backward"]
    assert cache.get("dense_0.backward") is None
    assert "dense_0.forward" in cache


def test_capture_installs_nothing_that_outlives_it_even_on_error() -> None:
    model = make_model()
    x, y = make_batch()
    model.register_hook("dense_0.forward", lambda *a: None)
    before = model.list_hooks()

    model.capture(x, y, loss=MSE())
    assert model.list_hooks() == before

    model.register_hook("dense_1.backward", lambda *a: 1 / 0)
    with pytest.raises(HookError):
        model.capture(x, y, loss=MSE())
    assert len(model.list_hooks()) == len(before) + 1


def test_capture_changes_no_parameter_gradient_cache_or_generator() -> None:
    model = Sequential(
        [Dense(3, 5, "tanh"), BatchNorm(), Dropout(0.5), Dense(5, 2)],
        dtype="float64",
    )
    x, y = make_batch()
    output = model.forward(x)
    model.backward(MSE().gradient(output, y))
    params, grads = model.state_dict(), model.gradients()
    grads = {k: v.copy() for k, v in grads.items()}
    caches = [layer.cache for layer in model.layers]

    model.capture(x + 1, y, loss=MSE())

    for key, value in params.items():  # parameters and BatchNorm running stats
        np.testing.assert_array_equal(model.state_dict()[key], value)
    for key, value in grads.items():
        np.testing.assert_array_equal(model.gradients()[key], value)
    assert all(
        layer.cache is kept for layer, kept in zip(model.layers, caches, strict=True)
    )
    after = model.forward(x)
    # the dropout mask drawn after the capture is the one drawn without it
    twin = Sequential(
        [Dense(3, 5, "tanh"), BatchNorm(), Dropout(0.5), Dense(5, 2)],
        dtype="float64",
    )
    twin.forward(x)
    np.testing.assert_array_equal(after, twin.forward(x))


def test_capture_restores_what_layers_kept_so_backward_uses_earlier_forward() -> None:
    model = make_model()
    x, y = make_batch()
    output = model.forward(x)

    model.capture(x * 2, y, loss=MSE())
    model.backward(MSE().gradient(output, y))

    assert_same(model.layers[0].grads, reference_pass(model, x, y)["dense_0.gradient"])


def test_capture_sees_the_values_after_hooks_registered_before_it() -> None:
    model = make_model()
    x, _ = make_batch()
    z = reference_pass(model, x)["dense_1.pre_activation"]
    model.register_hook("dense_1.pre_activation", lambda layer, z: -z)

    cache = model.capture(x, points="dense_1.pre_activation")

    assert_same(cache["dense_1.pre_activation"], -z)


def test_capture_runs_backward_even_inside_no_grad_and_keeps_the_mode() -> None:
    model = make_model()
    x, y = make_batch()

    with model.no_grad():
        cache = model.capture(x, y, loss=MSE())
        assert model.state.grad_enabled is False

    assert "dense_0.gradient" in cache


def test_a_stopped_forward_returns_the_partial_capture() -> None:
    model = make_model()
    x, y = make_batch()
    expected = reference_pass(model, x)

    with stop_forward(model, after="dense_1"):
        cache = model.capture(x, y, loss=MSE())

    assert cache.stopped_at == "dense_1.forward"
    assert list(cache)[-1] == "dense_1.forward"
    assert_same(cache["dense_1.forward"], expected["dense_1.forward"])
    assert "activation_0.forward_pre" not in cache and "loss.loss" not in cache
    assert cache.output is None
    assert model.list_hooks() == []


def test_asking_for_points_a_forward_pass_cannot_reach_is_refused() -> None:
    model = make_model()
    x, y = make_batch()

    with pytest.raises(ConfigError, match="y= and loss="):
        model.capture(x, points="pre_activation_grad")
    with pytest.raises(ConfigError, match="update stage fires in the optimizer"):
        model.capture(x, y, MSE(), points="update")
    with pytest.raises(ConfigError, match="both y= and loss="):
        model.capture(x, y)


def test_an_empty_list_of_points_is_refused_saying_what_to_give() -> None:
    with pytest.raises(ConfigError, match="points is an empty list; help:"):
        make_model().capture(np.ones((2, 3)), points=[])


def test_a_forward_capture_asked_for_backward_points_names_only_that_reason() -> None:
    with pytest.raises(ConfigError) as caught:
        make_model().capture(np.ones((2, 3)), points="backward")
    assert "needs y= and loss=" in str(caught.value)
    assert "update" not in str(caught.value)


def test_a_misspelt_stage_or_layer_view_is_refused_with_a_suggestion() -> None:
    cache = make_model().capture(np.ones((2, 3)))

    with pytest.raises(KeyError, match="did you mean 'forward'"):
        cache.stage("froward")
    with pytest.raises(KeyError, match="nothing captured for layer 'dense_7'"):
        cache.layer("dense_7")
    assert cache.stage("mask") == {}


def test_capture_and_model_loss_take_a_loss_by_name() -> None:
    model = make_model()
    x, y = make_batch()

    cache = model.capture(x, y, loss="mse")

    assert cache.loss_value == pytest.approx(model.loss(MSE(), model.predict(x), y)[0])
    assert model.loss("mse", model.predict(x), y)[0] == cache.loss_value


def test_predict_refuses_a_batch_size_below_one() -> None:
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1"):
        make_model().predict(np.ones((2, 3)), batch_size=0)


def test_capture_result_is_a_read_only_mapping() -> None:
    cache = make_model().capture(np.ones((2, 3)))

    assert isinstance(cache, Capture)
    with pytest.raises(TypeError):
        cache["x"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    "look",
    [
        lambda model, x, y: model.capture(x),
        lambda model, x, y: model.capture(x, y, loss=MSE()),
        lambda model, x, y: hessian(model, x, y, MSE()),
        lambda model, x, y: gradcheck(model, x, y, MSE()),
    ],
    ids=["capture", "capture-backward", "hessian", "gradcheck"],
)
def test_a_look_at_another_batch_leaves_the_pending_backward_intact(look) -> None:
    model = Sequential([Dense(3, 4, "tanh"), Dense(4, 2)], seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    expected = model.capture(x, y, loss=MSE())["dense_0.gradient"]["W"]

    output = model.forward(x)
    look(model, x[:3], y[:3])  # a smaller batch between forward and backward
    _, grad = model.loss(MSE(), output, y)
    model.backward(grad)
    np.testing.assert_array_equal(model.gradients()["dense_0.W"], expected)
