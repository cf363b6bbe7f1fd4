"""The ready-made hooks of annlens.hooks.recipes, each doing what it says."""

from __future__ import annotations

import numpy as np
import pytest

from annlens import Sequential
from annlens.errors import ConfigError, HookError, UnknownNameError
from annlens.hooks import StopForward
from annlens.hooks.recipes import (
    add_noise,
    clip_gradient,
    freeze,
    max_norm,
    non_negative,
    record_stats,
    scale_gradient,
    stop_forward,
    store_tensors,
)
from annlens.losses import MSE
from annlens.optim import SGD
from hooks_support import assert_same, make_batch, make_model, reference_pass


def train(model: Sequential, steps: int, lr: float = 0.1, **options: float) -> SGD:
    optimizer = SGD(model, lr=lr, **options)
    x, y = make_batch()
    for _ in range(steps):
        output = model.forward(x)
        _, grad = model.loss(MSE(), output, y)
        model.backward(grad)
        optimizer.step()
    return optimizer


# -- record_stats ----------------------------------------------------------------------


def test_record_stats_records_scalar_statistics_every_n_steps() -> None:
    model = make_model()
    recorder = record_stats(model, "dense_0.post_activation", every=2)

    train(model, steps=5)

    assert [row["step"] for row in recorder.rows] == [0, 2, 4]
    assert set(recorder.rows[0]) == {"step", "point", "mean", "std", "abs_max", "norm"}


def test_record_stats_values_are_those_of_the_value_at_the_point() -> None:
    model = make_model()
    x, _ = make_batch()
    a = reference_pass(model, x)["dense_0.post_activation"]
    recorder = record_stats(model, "dense_0.post_activation", stats={"mean": np.mean})

    model.forward(x)

    assert recorder.rows == [
        {"step": 0, "point": "dense_0.post_activation", "mean": pytest.approx(a.mean())}
    ]
    assert recorder.series("dense_0.post_activation", "mean")[0] == [0]


def test_record_stats_labels_gradient_rows_by_parameter_and_stops_on_remove() -> None:
    model = make_model()
    with record_stats(model, "gradient", layers="dense_2") as recorder:
        train(model, steps=1)
    train(model, steps=1)

    assert [row["point"] for row in recorder.rows] == [
        "dense_2.gradient.W",
        "dense_2.gradient.b",
    ]
    assert model.list_hooks() == []


# -- store_tensors ---------------------------------------------------------------------


def test_store_tensors_keeps_copies_for_the_chosen_steps_only() -> None:
    model = make_model()
    store = store_tensors(model, "dense_1.forward", steps={1, 3})
    x, _ = make_batch()

    train(model, steps=4)

    assert sorted(store.tensors) == [(1, "dense_1.forward"), (3, "dense_1.forward")]
    assert store.nbytes == 2 * len(x) * 4 * 8
    last = reference_pass(model, x)  # weights after step 4 differ from step 3
    assert not np.allclose(
        store.tensors[(3, "dense_1.forward")], last["dense_1.forward"]
    )


def test_store_tensors_refuses_past_the_budget_with_one_warning() -> None:
    model = make_model()
    one = 6 * 4 * 8  # batch 6, width 4, float64
    store = store_tensors(model, "dense_1.forward", budget=2 * one)

    with pytest.warns(UserWarning, match="budget of 384 bytes is full") as caught:
        train(model, steps=5)

    assert len(store.tensors) == 2 and store.nbytes == 2 * one
    assert store.refused == 3 and len(caught) == 1


def test_store_tensors_can_raise_when_the_budget_is_full() -> None:
    model = make_model()
    store_tensors(model, "dense_1.forward", budget=10, on_full="raise")

    with pytest.raises(HookError, match="budget of 10 bytes is full"):
        model.forward(np.ones((2, 3)))


def test_store_tensors_refuses_a_bad_budget() -> None:
    with pytest.raises(ConfigError, match="budget"):
        store_tensors(make_model(), "forward", budget=-1)


def test_record_stats_takes_default_statistics_by_name() -> None:
    model = make_model()

    with record_stats(model, "dense_0.forward", stats=["mean", "norm"]) as recorder:
        train(model, 1)
    assert set(recorder.rows[0]) == {"step", "point", "mean", "norm"}


def test_record_stats_refuses_an_unknown_statistic_with_a_suggestion() -> None:
    with pytest.raises(UnknownNameError, match="'meen' \\(did you mean 'mean'\\?\\)"):
        record_stats(make_model(), "forward", stats=["meen"])
    with pytest.raises(ConfigError, match="'mean' maps to 3"):
        record_stats(make_model(), "forward", stats={"mean": 3})


def test_record_stats_series_names_what_it_recorded_for_an_unknown_key() -> None:
    model = make_model()
    with record_stats(model, "dense_0.forward") as recorder:
        train(model, 1)

    with pytest.raises(UnknownNameError, match="did you mean 'dense_0.forward'"):
        recorder.series("dense_9.forward", "mean")
    with pytest.raises(UnknownNameError, match="it records mean, std, abs_max, norm"):
        recorder.series("dense_0.forward", "median")


@pytest.mark.parametrize(
    ("recipe", "bad", "message"),
    [
        (lambda m, v: scale_gradient(m, "dense_0", v), float("nan"), "a finite number"),
        (lambda m, v: scale_gradient(m, "dense_0", v), "2", "a finite number"),
        (lambda m, v: clip_gradient(m, "dense_0", v), "1", "a number > 0"),
        (lambda m, v: add_noise(m, std=v), float("inf"), "a number >= 0"),
        (lambda m, v: max_norm(m, "dense_0", limit=v), True, "a number > 0"),
    ],
)
def test_recipes_refuse_a_setting_that_is_not_a_usable_number(
    recipe, bad, message
) -> None:
    model = make_model()

    with pytest.raises(ConfigError, match=message):
        recipe(model, bad)
    assert model.list_hooks() == []


# -- gradients -------------------------------------------------------------------------


def test_scale_gradient_multiplies_the_final_gradient() -> None:
    model = make_model()
    x, y = make_batch()
    expected = reference_pass(model, x, y)["dense_1.gradient"]
    scale_gradient(model, "dense_1", 0.5)

    cache = model.capture(x, y, loss=MSE())

    assert_same(cache["dense_1.gradient"], {k: 0.5 * v for k, v in expected.items()})


def test_clip_gradient_caps_each_parameter_gradient_norm() -> None:
    model = make_model()
    x, y = make_batch()
    expected = reference_pass(model, x, y)["dense_0.gradient"]
    limit = 0.5 * np.linalg.norm(expected["W"])
    clip_gradient(model, "dense_0", limit)

    cache = model.capture(x, y, loss=MSE())

    clipped = cache["dense_0.gradient"]["W"]
    assert np.linalg.norm(clipped) == pytest.approx(limit, rel=1e-12)
    np.testing.assert_allclose(clipped, expected["W"] * 0.5, rtol=1e-12)
    if np.linalg.norm(expected["b"]) <= limit:
        assert_same(cache["dense_0.gradient"]["b"], expected["b"])


def test_freeze_leaves_the_layer_unchanged_by_sgd_and_others_moving() -> None:
    model = make_model()
    before = model.state_dict()
    freeze(model, "dense_1")

    train(model, steps=3)

    after = model.state_dict()
    for key in ("dense_1.W", "dense_1.b"):
        np.testing.assert_array_equal(after[key], before[key])
    assert not np.allclose(after["dense_0.W"], before["dense_0.W"])


# -- activations -----------------------------------------------------------------------


def test_add_noise_is_seeded_and_has_the_asked_spread() -> None:
    x = np.random.default_rng(2).normal(size=(400, 3))
    outputs = []
    for _ in range(2):
        model = make_model()
        clean = model.capture(x, points="dense_0.post_activation")
        add_noise(model, std=0.1, seed=7, layers="dense_0")
        noisy = model.capture(x, points="dense_0.post_activation")
        outputs.append(noisy["dense_0.post_activation"])

    noise = outputs[0] - clean["dense_0.post_activation"]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert noise.std() == pytest.approx(0.1, rel=0.05)
    assert abs(noise.mean()) < 0.01


def test_add_noise_stays_off_in_evaluation_mode() -> None:
    model = make_model()
    x, _ = make_batch()
    clean = model.predict(x)
    add_noise(model, std=1.0)

    np.testing.assert_array_equal(model.predict(x), clean)
    assert not np.allclose(model.forward(x), clean)


# -- constraints -----------------------------------------------------------------------


def test_max_norm_keeps_each_units_incoming_weights_within_the_limit() -> None:
    model = make_model()
    max_norm(model, "dense_0", limit=0.3)

    train(model, steps=3, lr=0.5)

    norms = np.linalg.norm(model.layers[0].params["W"], axis=0)
    assert np.all(norms <= 0.3 * (1 + 1e-12))
    assert np.any(norms > 0.3 * (1 - 1e-9))


def test_max_norm_leaves_an_update_alone_when_the_weights_stay_inside() -> None:
    model = make_model()
    seen = []
    max_norm(model, "dense_2", limit=1e6)
    model.register_hook("dense_2.update", lambda layer, name, u: seen.append(u.copy()))

    optimizer = train(model, steps=1)

    grads = model.gradients()
    np.testing.assert_allclose(seen[0], -optimizer.lr * grads["dense_2.W"], rtol=1e-9)


def test_non_negative_keeps_weights_at_or_above_zero_after_every_step() -> None:
    model = make_model()
    non_negative(model, ["dense_0", "dense_1"])

    train(model, steps=3, lr=0.5, momentum=0.9)

    assert np.all(model.layers[0].params["W"] >= 0)
    assert np.all(model.layers[1].params["W"] >= 0)
    assert np.any(model.layers[3].params["W"] < 0)  # dense_2 is untouched


# -- stopping --------------------------------------------------------------------------


def test_stop_forward_ends_model_forward_with_the_layer_output() -> None:
    model = make_model()
    x, _ = make_batch()
    handle = stop_forward(model, after="dense_0")

    with pytest.raises(StopForward) as signal:
        model.forward(x)
    handle.remove()

    assert signal.value.point == "dense_0.forward"
    assert_same(signal.value.value, reference_pass(model, x)["dense_0.forward"])
    assert model.forward(x).shape == (len(x), 2)


def test_recipes_can_be_handed_to_a_scope() -> None:
    model = make_model()

    with model.hooks() as scope:
        recorder = scope.add(record_stats(model, "forward"))
        scope.add(freeze(model, "dense_0"))
        assert len(model.list_hooks()) == 4 + 1
        model.forward(np.ones((1, 3)))

    model.forward(np.ones((1, 3)))
    assert model.list_hooks() == []
    assert len(recorder.rows) == 4 and "4 rows" in repr(recorder)
