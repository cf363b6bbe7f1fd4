"""The Trainer: batches, shuffling, the order of one step, metrics, history,
penalties, clipping, schedules, the NaN guard, argument checks, and a slow
end-to-end run on the digits data."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from annlens.errors import (
    ConfigError,
    HookError,
    InputError,
    LabelError,
    NonFiniteError,
    ShapeError,
    UnknownNameError,
)
from annlens.layers import BatchNorm, Dense, Dropout
from annlens.losses import MSE, SoftmaxCrossEntropy
from annlens.model import Sequential, seeded_generator
from annlens.optim import SGD, Adam
from annlens.training import (
    Callback,
    LambdaCallback,
    Trainer,
    accuracy,
    register_metric,
)
from annlens.training.metrics import get_metric


def blobs(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three separable classes in 4 dimensions."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = np.array([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]], dtype=float)
    return centres[y] + 0.3 * rng.normal(size=(n, 4)), y


def make(model_seed: int = 0, lr: float = 0.1, **trainer_kw) -> Trainer:
    model = Sequential(
        [Dense(4, 8, "tanh"), Dense(8, 3)], seed=model_seed, dtype="float64"
    )
    options = {"batch_size": 8, "epochs": 3, **trainer_kw}
    return Trainer(model, SoftmaxCrossEntropy(), SGD(model, lr=lr), **options)


class Recorder(Callback):
    """Remembers every event with a copy of its logs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def _record(self, name: str, logs: dict) -> None:
        self.events.append((name, dict(logs)))

    def on_fit_start(self, trainer, logs):
        self._record("on_fit_start", logs)

    def on_epoch_start(self, trainer, logs):
        self._record("on_epoch_start", logs)

    def on_batch_start(self, trainer, logs):
        self._record("on_batch_start", logs)

    def on_after_backward(self, trainer, logs):
        self._record("on_after_backward", logs)

    def on_after_update(self, trainer, logs):
        self._record("on_after_update", logs)

    def on_batch_end(self, trainer, logs):
        self._record("on_batch_end", logs)

    def on_validation(self, trainer, logs):
        self._record("on_validation", logs)

    def on_epoch_end(self, trainer, logs):
        self._record("on_epoch_end", logs)

    def on_fit_end(self, trainer, logs):
        self._record("on_fit_end", logs)


# -- the loop -----------------------------------------------------------------


def test_fit_returns_one_history_row_per_epoch_with_every_column() -> None:
    x, y = blobs()
    trainer = make(epochs=4)
    history = trainer.fit(x[:48], y[:48], validation_data=(x[48:], y[48:]))

    assert len(history) == 4
    assert history["epoch"] == [0, 1, 2, 3]
    assert list(history.to_dict()) == [
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
    ]
    assert history["lr"] == [0.1] * 4
    assert len(history.steps["loss"]) == 4 * 6
    assert history.steps["step"] == list(range(24))


def test_training_lowers_the_loss_and_reaches_full_accuracy() -> None:
    x, y = blobs()
    history = make(epochs=15).fit(x, y)
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    assert history["accuracy"][-1] == 1.0


def test_the_last_partial_batch_is_kept() -> None:
    x, y = blobs(10)
    recorder = Recorder()
    make(batch_size=4, epochs=1, callbacks=[recorder]).fit(x, y)
    sizes = [logs["size"] for name, logs in recorder.events if name == "on_batch_end"]
    assert sizes == [4, 4, 2]


def test_each_epoch_sees_every_sample_in_a_seeded_new_order() -> None:
    x, y = blobs(12)
    x[:, 3] = np.arange(12)  # a feature that names the sample
    trainer = make(batch_size=5, epochs=2)
    seen: list[float] = []
    trainer.model.register_hook(
        "dense_0.forward_pre", lambda layer, x_in: seen.extend(x_in[:, 3])
    )
    trainer.fit(x, y)

    expected = seeded_generator(0, 2)
    first, second = expected.permutation(12), expected.permutation(12)
    np.testing.assert_array_equal(seen, np.concatenate([first, second]))
    assert not np.array_equal(first, second)


def test_shuffle_false_keeps_the_data_order() -> None:
    x, y = blobs(6)
    x[:, 3] = np.arange(6)
    trainer = make(batch_size=4, epochs=1, shuffle=False)
    seen: list[float] = []
    trainer.model.register_hook(
        "dense_0.forward_pre", lambda layer, x_in: seen.extend(x_in[:, 3])
    )
    trainer.fit(x, y)
    assert seen == list(range(6))


def test_validation_split_holds_out_the_last_rows() -> None:
    x, y = blobs(20)
    trainer = make(epochs=1, validation_split=0.25)
    recorder = Recorder()
    trainer.callbacks.append(recorder)
    trainer.fit(x, y)

    start = recorder.events[0][1]
    assert (start["samples"], start["validation_samples"]) == (15, 5)
    expected = trainer.evaluate(x[15:], y[15:])
    assert trainer.history.last["val_loss"] == expected["loss"]


def test_one_step_runs_hooks_and_events_in_the_documented_order() -> None:
    x, y = blobs(8)
    order: list[str] = []
    model = Sequential([Dense(4, 3)], dtype="float64")
    model.register_hook("forward", lambda *a: order.append("forward hook"))
    model.register_hook("loss", lambda *a: order.append("loss hook"))
    model.register_hook("backward", lambda *a: order.append("backward hook"))
    model.register_hook("dense_0.gradient", lambda layer, name, g: order.append(name))
    model.register_hook("update", lambda layer, name, u: order.append(f"update {name}"))
    events = {
        event: (lambda e: lambda trainer, logs: order.append(e))(event)
        for event in (
            "on_batch_start",
            "on_after_backward",
            "on_after_update",
            "on_batch_end",
        )
    }
    trainer = Trainer(
        model,
        SoftmaxCrossEntropy(),
        SGD(model),
        batch_size=8,
        callbacks=[LambdaCallback(**events)],
    )
    trainer.step(x, y)

    assert order == [
        "on_batch_start",
        "forward hook",
        "loss hook",
        "backward hook",
        "W",
        "b",
        "on_after_backward",
        "update W",
        "update b",
        "on_after_update",
        "on_batch_end",
    ]


def test_step_by_hand_updates_the_parameters_and_returns_its_logs() -> None:
    x, y = blobs(8)
    trainer = make(lr=0.5)
    before = trainer.model.layers[1].params["b"].copy()

    logs = trainer.step(x, y)

    grad = trainer.model.layers[1].grads["b"]
    np.testing.assert_allclose(trainer.model.layers[1].params["b"], before - 0.5 * grad)
    assert logs["step"] == 0 and trainer.model.state.step == 1
    assert logs["lr"] == 0.5 and 0 <= logs["accuracy"] <= 1
    assert trainer.history.steps["loss"] == [logs["loss"]]
    assert trainer.model.list_hooks() == []


def test_evaluate_gives_the_loss_and_metrics_of_evaluation_mode() -> None:
    x, y = blobs(30)
    model = Sequential(
        [Dense(4, 8, "relu"), Dropout(0.5), Dense(8, 3)], seed=1, dtype="float64"
    )
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model), batch_size=7)

    scores = trainer.evaluate(x, y)

    output = model.predict(x)
    assert scores["loss"] == pytest.approx(SoftmaxCrossEntropy().value(output, y))
    assert scores["accuracy"] == accuracy(output, y)
    assert model.training


# -- metrics --------------------------------------------------------------------


def test_accuracy_takes_indices_one_hot_rows_and_binary_logits() -> None:
    output = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0]])
    assert accuracy(output, np.array([0, 1, 0])) == pytest.approx(2 / 3)
    assert accuracy(output, np.eye(3)[[0, 1, 2]]) == 1.0
    logits = np.array([[1.5], [-0.5], [0.2], [-2.0]])
    assert accuracy(logits, np.array([1, 0, 0, 0])) == 0.75
    assert accuracy(logits, np.array([[1], [0], [1], [0]])) == 1.0


def test_accuracy_refuses_continuous_targets_naming_the_first() -> None:
    logits = np.array([[1.5], [-0.5], [0.2]])
    assert accuracy(logits, np.array([0.9, 0.2, 0.6])) == 1.0  # probabilities
    with pytest.raises(LabelError, match=r"got 3\.5 at position 1.*'mae'"):
        accuracy(logits, np.array([0.2, 3.5, 1.0]))
    with pytest.raises(LabelError, match=r"\[0, 1\], got nan at position 2"):
        accuracy(logits, np.array([0.0, 1.0, np.nan]))
    scores = np.zeros((3, 3))
    assert accuracy(scores, np.array([0.0, 1.0, 2.0])) == pytest.approx(1 / 3)
    with pytest.raises(
        LabelError, match=r"whole class indices, got 0\.5 at position 0"
    ):
        accuracy(scores, np.array([0.5, 1.0, 2.0]))


def test_accuracy_on_a_continuous_target_is_refused_by_the_trainer() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 3.0
    model = Sequential([Dense(3, 1)], dtype="float64")
    trainer = Trainer(
        model, MSE(), SGD(model, lr=0.1), batch_size=8, metrics=["accuracy"]
    )
    with pytest.raises(LabelError, match="single binary output"):
        trainer.fit(x, y)


def test_a_user_metric_is_recorded_for_training_and_validation() -> None:
    x, y = blobs(24)

    def mean_output(output, target) -> float:
        return float(output.mean())

    trainer = make(epochs=1, metrics=["accuracy", ("mean_output", mean_output)])
    trainer.add_metric("batch_rows", lambda output, target: float(len(output)))
    history = trainer.fit(x[:16], y[:16], validation_data=(x[16:], y[16:]))

    assert history["batch_rows"] == [8.0]
    assert history["val_batch_rows"] == [8.0]
    output = trainer.model.predict(x[16:])
    assert history["val_mean_output"][0] == pytest.approx(output.mean())


def test_a_registered_metric_can_be_named() -> None:
    register_metric("always_one", lambda output, target: 1.0, overwrite=True)
    x, y = blobs(8)
    history = make(epochs=1, metrics=["always_one"]).fit(x, y)
    assert history["always_one"] == [1.0]


def test_an_unknown_metric_name_is_refused_with_a_suggestion() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'accuracy'"):
        make(metrics=["acuracy"])


# -- penalties, clipping, schedules ---------------------------------------------------


class HalfSquare:
    """A local stand-in penalty: strength/2 * sum(W^2) over dense_1.W."""

    def __init__(self, strength: float) -> None:
        self.strength = strength

    def value(self, model) -> float:
        return 0.5 * self.strength * float(np.sum(model.layers[1].params["W"] ** 2))

    def add_gradients(self, model) -> None:
        layer = model.layers[1]
        layer.grads["W"] = layer.grads["W"] + self.strength * layer.params["W"]


def test_penalties_join_the_loss_and_the_gradients() -> None:
    x, y = blobs(8)
    plain, penalised = make(lr=0.1), make(lr=0.1, penalties=[HalfSquare(0.3)])
    W = penalised.model.layers[1].params["W"].copy()
    seen = []
    penalised.model.register_hook(
        "dense_1.gradient", lambda layer, name, g: seen.append(g.copy())
    )

    plain_logs, logs = plain.step(x, y), penalised.step(x, y)

    assert logs["penalty"] == pytest.approx(0.15 * np.sum(W**2))
    assert logs["loss"] == plain_logs["loss"]
    expected = plain.model.layers[1].grads["W"] + 0.3 * W
    np.testing.assert_allclose(seen[0], expected, atol=1e-15)


def test_real_penalties_from_optim_train() -> None:
    regularizers = pytest.importorskip("annlens.optim.regularizers")
    x, y = blobs(16)
    trainer = make(epochs=2, penalties=[regularizers.L2Penalty(0.01)])
    history = trainer.fit(x, y)
    assert "penalty" in history.keys and history["penalty"][0] > 0


def test_clip_value_bounds_every_gradient_the_optimizer_sees() -> None:
    x, y = blobs(8)
    trainer = make(lr=1.0, clip_value=1e-3)
    updates = []
    trainer.model.register_hook("update", lambda layer, name, u: updates.append(u))
    trainer.step(x, y)
    assert max(float(np.abs(u).max()) for u in updates) <= 1e-3 + 1e-15


def test_clip_norm_scales_the_gradients_to_the_limit_before_the_update() -> None:
    x, y = blobs(8)
    trainer = make(lr=1.0, clip_norm=0.05)
    model = trainer.model
    model.backward(SoftmaxCrossEntropy().gradient(model.forward(x), y))
    raw = {name: g.copy() for name, g in model.gradients().items()}
    norm = np.sqrt(sum(np.sum(g**2) for g in raw.values()))
    updates = {}
    model.register_hook(
        "update", lambda layer, name, u: updates.update({f"{layer.name}.{name}": u})
    )

    logs = trainer.step(x, y)

    assert logs["grad_norm"] == pytest.approx(norm, rel=1e-12)
    assert norm > 0.05
    for name, grad in raw.items():
        np.testing.assert_allclose(-updates[name], grad * 0.05 / norm, rtol=1e-12)


def test_constraints_apply_after_every_update_before_the_callbacks() -> None:
    optim = pytest.importorskip("annlens.optim")
    x, y = blobs(16)
    norms = []

    def first_layer_norm(trainer, logs):
        W = trainer.model.layers[0].params["W"]
        norms.append(float(np.linalg.norm(W, axis=0).max()))

    trainer = make(
        lr=1.0,
        constraints=[optim.MaxNorm(0.5, pattern="dense_0.W")],
        callbacks=[LambdaCallback(on_after_update=first_layer_norm)],
    )
    trainer.fit(x, y)
    assert max(norms) <= 0.5 + 1e-12
    assert np.linalg.norm(trainer.model.layers[1].params["W"], axis=0).max() > 0.5


def test_a_constraint_without_apply_is_refused() -> None:
    with pytest.raises(ConfigError, match="constraint must have apply"):
        make(constraints=[object()])


def test_an_epoch_schedule_steps_after_each_epoch() -> None:
    schedules = pytest.importorskip("annlens.optim.schedules")
    x, y = blobs(16)
    trainer = make(epochs=4)
    trainer.schedule = schedules.StepDecay(trainer.optimizer, step_size=2, gamma=0.5)
    history = trainer.fit(x, y)
    assert history["lr"] == [0.1, 0.1, 0.05, 0.05]


def test_a_batch_schedule_steps_after_each_update() -> None:
    schedules = pytest.importorskip("annlens.optim.schedules")
    x, y = blobs(16)
    trainer = make(epochs=1)
    schedule = schedules.ExponentialDecay(trainer.optimizer, gamma=0.5, unit="batch")
    trainer.schedule = schedule
    history = trainer.fit(x, y)
    assert history.steps["lr"] == [0.1, 0.05]
    assert trainer.optimizer.lr == 0.025


def test_a_plateau_schedule_is_given_the_monitored_value() -> None:
    plateau = pytest.importorskip("annlens.optim.plateau")
    x, y = blobs(24)
    model = Sequential([Dense(4, 3)], dtype="float64")
    optimizer = SGD(model, lr=0.0)
    schedule = plateau.ReduceOnPlateau(optimizer, patience=0, factor=0.5)
    seen = []
    original = schedule.step

    def spy(metric=None):
        seen.append(metric)
        return original(metric)

    schedule.step = spy
    trainer = Trainer(
        model,
        SoftmaxCrossEntropy(),
        optimizer,
        batch_size=8,
        epochs=2,
        schedule=schedule,
    )
    history = trainer.fit(x[:16], y[:16], validation_data=(x[16:], y[16:]))
    assert seen == history["val_loss"]


def test_a_plateau_schedule_without_its_column_is_refused_before_training() -> None:
    plateau = pytest.importorskip("annlens.optim.plateau")
    trainer = make()
    trainer.schedule = plateau.ReduceOnPlateau(trainer.optimizer)
    x, y = blobs(8)
    with pytest.raises(ConfigError, match="schedule_monitor='val_loss'"):
        trainer.fit(x, y)
    assert trainer.model.state.step == 0


def test_a_misspelt_schedule_monitor_is_refused_with_a_suggestion() -> None:
    plateau = pytest.importorskip("annlens.optim.plateau")
    trainer = make(schedule_monitor="val_los")
    trainer.schedule = plateau.ReduceOnPlateau(trainer.optimizer)
    x, y = blobs(16)

    with pytest.raises(ConfigError) as caught:
        trainer.fit(x[:8], y[:8], validation_data=(x[8:], y[8:]))
    message = str(caught.value)
    assert "(did you mean 'val_loss'?), but an epoch of this run gives" in message
    assert "give validation data" not in message


def test_a_shuffle_that_is_not_a_bool_is_refused() -> None:
    with pytest.raises(ConfigError, match="shuffle must be True or False, got 'no'"):
        make(shuffle="no")


# -- the NaN guard -----------------------------------------------------------------


class Snapshots(Callback):
    """The model state after every update."""

    def __init__(self) -> None:
        self.states: list[dict] = []

    def on_fit_start(self, trainer, logs):
        self.states.append(trainer.model.state_dict())

    def on_after_update(self, trainer, logs):
        self.states.append(trainer.model.state_dict())


def assert_state_equal(model: Sequential, state: dict) -> None:
    current = model.state_dict()
    assert current.keys() == state.keys()
    for name in state:
        np.testing.assert_array_equal(current[name], state[name], err_msg=name)


def test_an_injected_nan_stops_training_naming_step_layer_and_stage() -> None:
    x, y = blobs(40)
    snapshots = Snapshots()
    trainer = make(epochs=2, callbacks=[snapshots])

    def poison(layer, z, ctx):
        if ctx.step == 3:
            z = z.copy()
            z[1, 2] = np.nan
            return z

    trainer.model.register_hook("dense_1.pre_activation", poison)
    with pytest.raises(NonFiniteError) as caught:
        trainer.fit(x, y)

    error = caught.value
    assert (error.step, error.layer, error.stage) == (3, "dense_1", "pre_activation")
    assert "1 NaN" in str(error)
    assert trainer.model.state.step == 3
    assert_state_equal(trainer.model, snapshots.states[3])


@pytest.mark.filterwarnings("error::RuntimeWarning")  # the guard speaks instead
def test_a_huge_learning_rate_stops_with_the_last_good_parameters() -> None:
    x, y = blobs(40)
    model = Sequential([Dense(4, 8, "relu"), Dense(8, 3)], dtype="float64")
    snapshots = Snapshots()
    trainer = Trainer(
        model,
        SoftmaxCrossEntropy(),
        SGD(model, lr=1e300),
        batch_size=8,
        epochs=5,
        callbacks=[snapshots],
    )

    with pytest.raises(NonFiniteError) as caught:
        trainer.fit(x, y)

    # the first update makes the weights ~1e300; the next z overflows
    error = caught.value
    assert (error.step, error.layer, error.stage) == (1, "dense_1", "pre_activation")
    assert "step 1, layer 'dense_1', stage 'pre_activation'" in str(error)
    assert model.state.step == 1
    assert_state_equal(model, snapshots.states[1])
    assert model.list_hooks() == []


def test_a_nan_gradient_leaves_parameters_and_optimizer_untouched() -> None:
    x, y = blobs(8)
    model = Sequential([Dense(4, 3)], dtype="float64")
    optimizer = SGD(model, lr=0.1, momentum=0.9)
    trainer = Trainer(model, SoftmaxCrossEntropy(), optimizer, batch_size=8)
    trainer.step(x, y)
    before, velocity = model.state_dict(), optimizer.state_dict()

    model.register_hook(
        "dense_0.gradient",
        lambda layer, name, g: np.full_like(g, np.inf) if name == "b" else None,
    )
    with pytest.raises(NonFiniteError) as caught:
        trainer.step(x, y)

    assert (caught.value.layer, caught.value.stage) == ("dense_0", "gradient")
    assert "'b'" in str(caught.value)
    assert_state_equal(model, before)
    assert optimizer.t == 1
    np.testing.assert_array_equal(
        optimizer.state_dict()["state"]["dense_0.W"]["velocity"],
        velocity["state"]["dense_0.W"]["velocity"],
    )


def test_a_nan_loss_is_named_at_the_loss_stage() -> None:
    x, y = blobs(8)
    trainer = make()
    trainer.model.register_hook("loss", lambda point, value, grad: grad * np.nan)
    with pytest.raises(NonFiniteError) as caught:
        trainer.step(x, y)
    assert (caught.value.layer, caught.value.stage) == (None, "loss")


def test_batchnorm_running_statistics_are_restored_after_a_nan() -> None:
    x, y = blobs(8)
    model = Sequential([Dense(4, 6), BatchNorm(), Dense(6, 3)], dtype="float64")
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model), batch_size=8)
    trainer.step(x, y)
    running = model.layers[1].buffers["running_mean"].copy()
    model.register_hook("dense_1.forward", lambda layer, x_in, out: out * np.nan)

    with pytest.raises(NonFiniteError):
        trainer.step(x, y)
    np.testing.assert_array_equal(model.layers[1].buffers["running_mean"], running)


def test_without_the_guard_a_nan_loss_is_just_recorded() -> None:
    x, y = blobs(8)
    trainer = make(nan_guard=False)
    trainer.model.register_hook(
        "dense_1.forward", lambda layer, x_in, out: out * np.nan
    )
    logs = trainer.step(x, y)
    assert np.isnan(logs["loss"])


def test_other_hook_errors_still_come_as_hook_errors() -> None:
    x, y = blobs(8)
    trainer = make()

    def broken(layer, x_in, out):
        raise RuntimeError("broken hook")

    trainer.model.register_hook("dense_0.forward", broken)
    with pytest.raises(HookError, match="broken hook"):
        trainer.fit(x, y)
    assert [label for _, label in trainer.model.list_hooks()] == [broken.__qualname__]


def test_a_healthy_step_runs_without_the_guard_hooks() -> None:
    x, y = blobs(16)
    seen = []
    watcher = LambdaCallback(
        on_after_backward=lambda trainer, logs: seen.append(trainer.model.list_hooks())
    )
    trainer = make(epochs=1, callbacks=[watcher])
    trainer.fit(x, y)
    assert seen == [[], []]


def test_a_nan_in_the_backward_pass_is_named_at_its_stage() -> None:
    x, y = blobs(16)
    trainer = make()
    trainer.step(x[:8], y[:8])
    before = trainer.model.state_dict()

    def poison(layer, delta):
        delta = delta.copy()
        delta[0, 1] = np.inf
        return delta

    trainer.model.register_hook("dense_1.pre_activation_grad", poison)
    with pytest.raises(NonFiniteError) as caught:
        trainer.step(x[8:], y[8:])

    error = caught.value
    assert (error.step, error.layer, error.stage) == (
        1,
        "dense_1",
        "pre_activation_grad",
    )
    assert "0 NaN and 1 Inf" in str(error)
    assert_state_equal(trainer.model, before)


def test_a_nan_update_from_finite_gradients_is_never_applied() -> None:
    x, y = blobs(8)
    model = Sequential([Dense(4, 3)], dtype="float64")
    optimizer = Adam(model, lr=0.1, eps=0.0)
    trainer = Trainer(model, SoftmaxCrossEntropy(), optimizer, batch_size=8)
    before = model.state_dict()

    # a feature that is 0 in every row: its weights get the gradient 0, and
    # Adam without eps proposes 0 / 0 for them at its first step
    x[:, 2] = 0.0
    with pytest.raises(NonFiniteError) as caught:
        trainer.step(x, y)

    error = caught.value
    assert (error.step, error.layer, error.stage) == (0, "dense_0", "update")
    assert "the update of parameter 'W' holds 3 NaN and 0 Inf" in str(error)
    assert_state_equal(model, before)
    assert (optimizer.t, optimizer.state, model.state.step) == (0, {}, 0)


def test_an_update_that_overflows_its_parameter_is_never_applied() -> None:
    x, y = blobs(8)
    trainer = make()
    model = trainer.model
    model.layers[1].params["b"][:] = 1e308
    before = model.state_dict()
    model.register_hook(
        "dense_1.update",
        lambda layer, name, u: np.full_like(u, 1e308) if name == "b" else None,
    )

    with pytest.raises(NonFiniteError) as caught:
        trainer.step(x, y)

    error = caught.value
    assert (error.step, error.layer, error.stage) == (0, "dense_1", "update")
    assert "parameter 'b' after its update holds 0 NaN and 3 Inf" in str(error)
    assert_state_equal(model, before)
    assert model.state.step == 0


@pytest.mark.filterwarnings("error::RuntimeWarning")  # the guard speaks instead
def test_a_huge_finite_update_that_fits_is_applied() -> None:
    x, y = blobs(8)
    trainer = make()
    model = trainer.model
    model.register_hook(
        "dense_1.update",
        lambda layer, name, u: np.full_like(u, 1e200) if name == "b" else None,
    )
    start = model.layers[1].params["b"].copy()

    trainer.step(x, y)  # u . u overflows; the exact check lets it through

    np.testing.assert_array_equal(model.layers[1].params["b"], start + 1e200)


def test_the_replay_of_a_failed_step_sees_the_same_dropout_masks() -> None:
    x, y = blobs(8)
    model = Sequential(
        [Dense(4, 16, "relu"), Dropout(0.5), Dense(16, 3)], dtype="float64"
    )
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model), batch_size=8)
    noise = model.state.rng.bit_generator.state
    masks = []
    model.register_hook("dropout_0.mask", lambda layer, mask: masks.append(mask.copy()))
    model.register_hook("dense_1.forward", lambda layer, x_in, out: out * np.nan)

    with pytest.raises(NonFiniteError) as caught:
        trainer.step(x, y)

    assert (caught.value.layer, caught.value.stage) == ("dense_1", "forward")
    assert len(masks) == 2  # the failed pass and its replay
    np.testing.assert_array_equal(masks[0], masks[1])
    assert model.state.rng.bit_generator.state == noise


def test_a_nan_the_replay_does_not_meet_is_still_reported_at_its_step() -> None:
    x, y = blobs(8)
    trainer = make()
    calls = []

    def once(layer, x_in, out):
        calls.append(1)
        return out * np.nan if len(calls) == 1 else None

    trainer.model.register_hook("dense_1.forward", once)
    with pytest.raises(NonFiniteError) as caught:
        trainer.step(x, y)

    error = caught.value
    assert (error.step, error.layer, error.stage) == (0, None, "loss")
    assert "the loss value holds 1 NaN" in str(error)
    assert len(calls) == 2


def test_evaluate_names_the_layer_where_a_nan_appeared() -> None:
    x, y = blobs(8)
    trainer = make()
    trainer.model.register_hook(
        "dense_0.post_activation",
        lambda layer, a: None if layer.state.training else a * np.nan,
    )
    with pytest.raises(NonFiniteError) as caught:
        trainer.evaluate(x, y)
    assert (caught.value.layer, caught.value.stage) == ("dense_0", "post_activation")
    assert len(trainer.model.list_hooks()) == 1  # the guard's hooks are gone


def test_evaluate_of_a_nan_model_says_evaluation_stopped_not_training() -> None:
    x, y = blobs(8)
    trainer = make()
    trainer.model.layers[0].params["W"][0, 0] = np.nan

    with pytest.raises(NonFiniteError) as caught:
        trainer.evaluate(x, y)

    message = str(caught.value)
    assert "non-finite value in evaluation after 0 training steps" in message
    assert "evaluation stopped; it changes no parameter" in message
    assert "check the parameters for NaN" in message
    assert "training stopped" not in message and "learning rate" not in message


def test_a_saturated_overflow_needs_the_guard_hooks_installed() -> None:
    x, y = blobs(8)
    trainer = make()
    trainer.model.layers[0].params["W"][:, 0] = np.finfo(np.float64).max
    trainer.step(x, y)  # z overflows, tanh saturates: nothing non-finite is kept

    trainer.guard.install()
    with pytest.raises(NonFiniteError) as caught:
        trainer.step(x, y)
    assert (caught.value.layer, caught.value.stage) == ("dense_0", "pre_activation")
    trainer.guard.remove()
    assert trainer.model.list_hooks() == []


# -- argument checks ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": -3}, "batch_size must be an integer >= 1"),
        ({"batch_size": 2.5}, "batch_size must be an integer"),
        ({"batch_size": True}, "batch_size must be an integer"),
        ({"epochs": -1}, "epochs must be an integer >= 0, got -1"),
        ({"clip_norm": 0.0}, "clip_norm must be a number > 0"),
        ({"clip_value": -1.0}, "clip_value must be a number > 0"),
        ({"validation_split": 1.0}, r"validation_split must be in \[0, 1\)"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"callbacks": [object()]}, "callback 0 must be a Callback"),
    ],
)
def test_bad_trainer_arguments_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make(**options)


def test_an_optimizer_of_another_model_is_refused() -> None:
    model = Sequential([Dense(4, 3)])
    other = Sequential([Dense(4, 3)])
    with pytest.raises(ConfigError, match="not built on this model"):
        Trainer(model, SoftmaxCrossEntropy(), SGD(other))


def test_a_model_that_is_not_a_sequential_is_refused_as_the_model() -> None:
    model = Sequential([Dense(4, 3)])
    with pytest.raises(ConfigError, match="Trainer model must be a Sequential, got"):
        Trainer(None, SoftmaxCrossEntropy(), SGD(model))


def test_a_loss_without_value_and_grad_is_refused() -> None:
    model = Sequential([Dense(4, 3)])
    with pytest.raises(ConfigError, match="value_and_grad"):
        Trainer(model, lambda output, target: 0.0, SGD(model))


def test_x_and_y_of_different_lengths_are_refused() -> None:
    x, y = blobs(10)
    with pytest.raises(ShapeError, match="x has 10 samples but y has 9"):
        make().fit(x, y[:9])


def test_empty_and_one_dimensional_data_are_refused() -> None:
    with pytest.raises(InputError, match="no samples"):
        make().fit(np.zeros((0, 4)), np.zeros(0))
    with pytest.raises(ShapeError, match="must be 2-D"):
        make().fit(np.zeros(4), np.zeros(4))


def test_data_too_large_for_a_float32_model_is_refused_before_any_step() -> None:
    model = Sequential([Dense(4, 3)], seed=0, dtype="float32")
    before = model.state_dict()
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), epochs=1)
    x, y = np.zeros((6, 4)), np.arange(6) % 3
    x[4, 3] = 1e300
    with pytest.raises(InputError, match=r"training data: x holds 1 values too large"):
        trainer.fit(x, y)
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())


def test_too_few_samples_for_the_validation_split_are_refused() -> None:
    x, y = blobs(1)
    with pytest.raises(ConfigError, match="both parts need at least one sample"):
        make(validation_split=0.5).fit(x, y)


def test_validation_data_and_split_together_are_refused() -> None:
    x, y = blobs(10)
    with pytest.raises(ConfigError, match="not both"):
        make(validation_split=0.2).fit(x, y, validation_data=(x, y))


def test_a_last_batch_of_one_with_batchnorm_is_refused_before_training() -> None:
    x, y = blobs(9)
    model = Sequential([Dense(4, 6), BatchNorm(), Dense(6, 3)])
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model), batch_size=4)
    with pytest.raises(ConfigError, match="last batch of every epoch holds 1 sample"):
        trainer.fit(x, y)
    assert model.state.step == 0


def test_a_loss_class_instead_of_a_loss_object_is_refused() -> None:
    model = Sequential([Dense(4, 3)])
    with pytest.raises(ConfigError, match=r"the class SoftmaxCrossEntropy; help: pass"):
        Trainer(model, SoftmaxCrossEntropy, SGD(model))
    with pytest.raises(ConfigError, match=r"help: pass SoftmaxCrossEntropy\(\)"):
        model.loss(SoftmaxCrossEntropy, np.zeros((2, 3)), np.array([0, 1]))


def test_a_batch_size_of_one_with_batchnorm_is_refused_before_training() -> None:
    x, y = blobs(8)
    model = Sequential([Dense(4, 6), BatchNorm(), Dense(6, 3)])
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model), batch_size=1)
    with pytest.raises(ConfigError, match="batch_size=1 every batch holds 1 sample"):
        trainer.fit(x, y)
    assert model.state.step == 0


def test_zero_epochs_train_nothing() -> None:
    x, y = blobs(8)
    trainer = make(epochs=0)
    before = trainer.model.state_dict()
    history = trainer.fit(x, y)
    assert len(history) == 0
    assert_state_equal(trainer.model, before)


def test_regression_with_mse_and_no_accuracy() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]])
    model = Sequential([Dense(3, 1)], dtype="float64")
    trainer = Trainer(
        model, MSE(), SGD(model, lr=0.1), batch_size=8, epochs=30, metrics=()
    )
    history = trainer.fit(x, y)
    assert list(history.to_dict()) == ["epoch", "loss", "lr"]
    assert history["loss"][-1] < 1e-3


def test_repr_names_the_settings() -> None:
    text = repr(make())
    assert text.startswith("Trainer(loss=SoftmaxCrossEntropy(")
    assert "batch_size=8, epochs=3, metrics=['accuracy'], seed=0" in text


# -- end to end ---------------------------------------------------------------------

OPTIMIZERS = {
    "sgd_momentum": ("annlens.optim", "SGD", {"lr": 0.05, "momentum": 0.9}),
    "nesterov": (
        "annlens.optim",
        "SGD",
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    ),
    "adagrad": ("annlens.optim.adaptive", "Adagrad", {"lr": 0.05}),
    "rmsprop": ("annlens.optim.adaptive", "RMSProp", {"lr": 1e-3}),
    "adam": ("annlens.optim.adam", "Adam", {"lr": 1e-3}),
    "adamw": ("annlens.optim.adam", "AdamW", {"lr": 1e-3}),
    "nadam": ("annlens.optim.adam", "NAdam", {"lr": 1e-3}),
    "adamax": ("annlens.optim.adam", "Adamax", {"lr": 2e-3}),
}


def optimizer_class(name: str):
    module_name, class_name, _ = OPTIMIZERS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        pytest.skip(f"{module_name} is not there yet")
    if not hasattr(module, class_name):
        pytest.skip(f"{module_name}.{class_name} is not there yet")
    return getattr(module, class_name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_digits_network_with_batchnorm_and_dropout_beats_95_percent(name: str) -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    model_selection = pytest.importorskip("sklearn.model_selection")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    cls = optimizer_class(name)
    x, y = datasets.load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = model_selection.train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=y
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0  # pixels that are blank in every training image
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    model = Sequential(
        [
            Dense(64, 128, "relu"),
            BatchNorm(),
            Dropout(0.2),
            Dense(128, 128, "relu"),
            BatchNorm(),
            Dropout(0.2),
            Dense(128, 64, "relu"),
            BatchNorm(),
            Dense(64, 10),
        ],
        seed=0,
    )
    trainer = Trainer(
        model,
        SoftmaxCrossEntropy(),
        cls(model, **OPTIMIZERS[name][2]),
        batch_size=32,
        epochs=10,
    )
    # BLAS threads only slow products this small down, badly so on a busy machine
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        trainer.fit(x_train, y_train)

    accuracy = trainer.evaluate(x_test, y_test)["accuracy"]
    assert accuracy > 0.95, f"{name}: held-out accuracy {accuracy:.4f}"


def test_a_loss_can_be_given_by_its_registered_name():
    from annlens import SGD, Dense, Sequential, Trainer
    from annlens.losses import MSE

    model = Sequential([Dense(2, 1)], seed=0, dtype="float64")
    trainer = Trainer(model, "mse", SGD(model, lr=0.1), batch_size=4, epochs=1)
    assert isinstance(trainer.loss, MSE)


# -- targets are checked before anything trains ------------------------------------


def test_a_bad_label_in_the_last_batch_is_refused_before_the_first_step() -> None:
    trainer = make(shuffle=False)
    x, y = blobs()
    y = y.copy()
    y[57] = 7  # three classes; the last batch holds rows 56 to 59
    before = {k: v.copy() for k, v in trainer.model.layers[0].params.items()}

    with pytest.raises(LabelError, match=r"training data.*got 7 at position 57"):
        trainer.fit(x, y)

    assert trainer.model.state.step == 0
    for name, value in trainer.model.layers[0].params.items():
        np.testing.assert_array_equal(value, before[name])


def test_a_bad_validation_label_is_refused_before_training() -> None:
    trainer = make()
    x, y = blobs()
    x_val, y_val = blobs(12, seed=1)
    y_val = y_val.astype(float)
    y_val[4] = 1.5

    with pytest.raises(LabelError, match=r"validation data.*1\.5 at position 4"):
        trainer.fit(x, y, validation_data=(x_val, y_val))
    assert trainer.model.state.step == 0


# -- checks of x before the first step ---------------------------------------------


def test_a_nan_in_training_x_is_refused_at_its_data_row_before_any_step() -> None:
    trainer = make()
    x, y = blobs(400)
    x[300, 1] = np.nan
    before = {k: v.copy() for k, v in trainer.model.parameters().items()}
    with pytest.raises(
        InputError, match=r"training data: .*1 NaN.*first at row 300, column 1"
    ):
        trainer.fit(x, y)
    after = trainer.model.parameters()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_an_inf_in_validation_x_is_refused_naming_validation_data() -> None:
    trainer = make()
    x, y = blobs()
    x_val, y_val = blobs(10, seed=1)
    x_val[7, 3] = np.inf
    with pytest.raises(InputError, match=r"validation data: .*row 7, column 3"):
        trainer.fit(x, y, validation_data=(x_val, y_val))


def test_validation_x_of_the_wrong_width_is_refused_before_any_step() -> None:
    trainer = make()
    x, y = blobs()
    x_val, y_val = blobs(10, seed=1)
    before = {k: v.copy() for k, v in trainer.model.parameters().items()}
    with pytest.raises(ShapeError, match=r"validation data: x must have 4 columns"):
        trainer.fit(x, y, validation_data=(x_val[:, :3], y_val))
    after = trainer.model.parameters()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_training_x_of_the_wrong_width_is_refused() -> None:
    x, y = blobs()
    with pytest.raises(ShapeError, match=r"training data: x must have 4 columns"):
        make().fit(np.hstack([x, x]), y)


def test_non_numeric_training_x_is_refused() -> None:
    x, y = blobs()
    with pytest.raises(InputError, match=r"training data: x must be numeric"):
        make().fit(x.astype(str), y)


def test_accuracy_is_recorded_by_default_only_for_classification_losses() -> None:
    model = Sequential([Dense(4, 1)], seed=0, dtype="float64")
    regression = Trainer(model, MSE(), SGD(model, lr=0.01), epochs=1)
    assert list(regression.metrics) == []
    x = np.random.default_rng(0).normal(size=(16, 4))
    history = regression.fit(x, x.sum(axis=1, keepdims=True))
    assert "accuracy" not in history.rows[0]

    assert list(make().metrics) == ["accuracy"]


@pytest.mark.parametrize("stage", ["gradient", "update"])
def test_the_nan_guard_names_the_hooks_that_ran_where_it_found_the_nan(stage) -> None:
    trainer = make()

    def poison(layer, name, value):
        return value * np.nan

    trainer.model.register_hook(f"dense_1.{stage}", poison)
    x, y = blobs(16)

    with pytest.raises(NonFiniteError) as caught:
        trainer.fit(x, y)
    message = str(caught.value)
    assert f"layer 'dense_1', stage '{stage}'" in message
    assert f"the hooks at dense_1.{stage} (" in message and "poison" in message


def test_the_nan_guard_names_only_the_hooks_at_the_failing_point() -> None:
    trainer = make()

    def observer(layer, name, grad):
        return None

    def poison(layer, name, grad):
        return grad * np.nan

    trainer.model.register_hook("dense_0.gradient", observer)
    trainer.model.register_hook("dense_1.gradient", poison)
    x, y = blobs(16)

    with pytest.raises(NonFiniteError) as caught:
        trainer.fit(x, y)
    assert "poison" in str(caught.value) and "observer" not in str(caught.value)


def test_mae_and_rmse_are_metrics_by_name_for_regression(rng) -> None:
    model = Sequential([Dense(3, 2)], seed=0, dtype="float64")
    trainer = Trainer(
        model, MSE(), SGD(model, lr=0.1), metrics=["mae", "rmse"], batch_size=8
    )
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))

    result = trainer.evaluate(x, y)

    errors = model.predict(x) - y
    assert result["mae"] == pytest.approx(np.mean(np.abs(errors)), rel=1e-12)
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)), rel=1e-12)
    with pytest.raises(LabelError, match="rmse expects targets of the output's shape"):
        get_metric("rmse")(np.zeros((8, 2)), np.zeros((8, 1)))


def test_the_training_rmse_of_an_epoch_is_over_its_samples_not_a_mean_of_roots(
    rng,
) -> None:
    model = Sequential([Dense(3, 2)], seed=0, dtype="float64")
    trainer = Trainer(
        model,
        MSE(),
        SGD(model, lr=0.0),
        metrics=["mae", "rmse"],
        batch_size=4,
        epochs=1,
        shuffle=False,
    )
    x, y = rng.normal(size=(10, 3)), 5 * rng.normal(size=(10, 2))
    errors = model.predict(x) - y

    row = trainer.fit(x, y).rows[-1]

    assert row["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)), rel=1e-12)
    assert row["mae"] == pytest.approx(np.mean(np.abs(errors)), rel=1e-12)
    roots = [np.sqrt(np.mean(errors[i : i + 4] ** 2)) for i in (0, 4, 8)]
    assert row["rmse"] != pytest.approx(np.average(roots, weights=[4, 4, 2]))


def test_evaluate_refuses_a_bad_batch_size_width_or_label_naming_the_data() -> None:
    x, y = blobs(12)
    model = Sequential([Dense(4, 3)], seed=0)
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model, lr=0.1))

    with pytest.raises(ConfigError, match="evaluate batch_size must be an integer"):
        trainer.evaluate(x, y, batch_size=0)
    with pytest.raises(ShapeError, match="evaluation data: x must have 4 columns"):
        trainer.evaluate(x[:, :3], y)
    with pytest.raises(LabelError, match="^evaluation data: "):
        trainer.evaluate(x, y + 5)
    assert trainer.evaluate(x, y, batch_size=5) == trainer.evaluate(x, y)


def test_a_single_callback_not_in_a_list_is_refused_with_a_hint() -> None:
    model = Sequential([Dense(4, 3)], seed=0)
    from annlens.training import EarlyStopping

    with pytest.raises(ConfigError, match=r"callbacks=\[EarlyStopping\(\.\.\.\)\]"):
        Trainer(
            model,
            SoftmaxCrossEntropy(),
            SGD(model, lr=0.1),
            callbacks=EarlyStopping(),  # type: ignore[arg-type]
        )


def test_a_single_penalty_constraint_or_metric_name_outside_a_list_is_refused() -> None:
    from annlens.optim import L2Penalty, MaxNorm

    model = Sequential([Dense(4, 3)], seed=0)
    optimizer = SGD(model, lr=0.1)
    with pytest.raises(ConfigError, match=r"penalties=\[L2Penalty\(\.\.\.\)\]"):
        Trainer(model, MSE(), optimizer, penalties=L2Penalty(0.1))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"constraints=\[MaxNorm\(\.\.\.\)\]"):
        Trainer(model, MSE(), optimizer, constraints=MaxNorm(1.0))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"metrics=\['mae'\]"):
        Trainer(model, MSE(), optimizer, metrics="mae")


@pytest.mark.parametrize("flag", ["nan_guard", "record_steps", "shuffle"])
def test_a_flag_that_is_not_a_bool_is_refused_naming_it(flag: str) -> None:
    model = Sequential([Dense(4, 3)], seed=0)
    with pytest.raises(ConfigError, match=f"Trainer {flag} must be True or False"):
        Trainer(model, MSE(), SGD(model, lr=0.1), **{flag: "no"})


def test_a_schedule_monitor_that_is_not_a_name_is_refused() -> None:
    model = Sequential([Dense(4, 3)], seed=0)
    with pytest.raises(ConfigError, match="schedule_monitor must be a column name"):
        Trainer(model, MSE(), SGD(model, lr=0.1), schedule_monitor=3)  # type: ignore[arg-type]


def test_a_damaged_trainer_state_is_refused_naming_the_entry_and_changes_nothing() -> (
    None
):
    from annlens.training import EarlyStopping

    x, y = blobs(12)
    model = Sequential([Dense(4, 3)], seed=0)
    stopper = EarlyStopping(monitor="loss", patience=3)
    trainer = Trainer(
        model, SoftmaxCrossEntropy(), SGD(model, lr=0.1), epochs=2, callbacks=[stopper]
    )
    trainer.fit(x, y)
    good = trainer.state_dict()
    before = (trainer.rng.bit_generator.state, trainer.epochs_done, stopper.best)

    damaged = [
        ({"epochs_done": "two"}, "epochs_done must be an integer >= 0"),
        ({"epochs_done": -1}, "epochs_done must be an integer >= 0"),
        ({"history": 5}, "history must be a list of rows"),
        ({"rng": {"bit_generator": "MT19937"}}, "rng is not the state of a PCG64"),
        ({"callbacks": [{"wait": 1}]}, r"callback 0 \(EarlyStopping\) cannot load"),
    ]
    for change, message in damaged:
        fresh = Trainer(
            model,
            SoftmaxCrossEntropy(),
            SGD(model, lr=0.1),
            callbacks=[EarlyStopping(monitor="loss")],
        )
        with pytest.raises(ConfigError, match=message):
            fresh.load_state_dict({**good, "epochs_done": 0, **change})
        assert fresh.epochs_done == 0 and fresh.callbacks.callbacks[0].best == np.inf
    with pytest.raises(ConfigError, match="must be a mapping"):
        trainer.load_state_dict([1])  # type: ignore[arg-type]
    assert (
        trainer.rng.bit_generator.state,
        trainer.epochs_done,
        stopper.best,
    ) == before


def test_a_one_cycle_shorter_than_the_fit_is_refused_before_any_step() -> None:
    from annlens.optim import OneCycle

    x, y = blobs(20)
    model = Sequential([Dense(4, 3)], seed=0, dtype="float64")
    optimizer = SGD(model, lr=0.1)
    before = model.state_dict()
    schedule = OneCycle(optimizer, total_steps=5, max_lr=1.0)
    trainer = Trainer(
        model,
        SoftmaxCrossEntropy(),
        optimizer,
        batch_size=8,
        epochs=3,
        schedule=schedule,
    )

    with pytest.raises(ConfigError, match=r"9 in all, but its total_steps is 5"):
        trainer.fit(x, y)
    assert all(np.array_equal(model.state_dict()[k], v) for k, v in before.items())

    exact = OneCycle(SGD(model, lr=0.1), total_steps=9, max_lr=1.0)
    Trainer(
        model,
        SoftmaxCrossEntropy(),
        exact.optimizer,
        batch_size=8,
        epochs=3,
        schedule=exact,
    ).fit(x, y)
    assert exact.count == 9


def test_a_one_cycle_after_a_warm_up_that_the_fit_would_pass_is_refused() -> None:
    from annlens.optim import LinearWarmup, OneCycle

    x, y = blobs(20)
    model = Sequential([Dense(4, 3)], seed=0, dtype="float64")
    optimizer = SGD(model, lr=0.1)
    before = model.state_dict()
    # 9 steps: 2 of warm-up, then 7 of the one-cycle
    schedule = LinearWarmup(optimizer, 2, after=OneCycle(optimizer, total_steps=6))
    trainer = Trainer(
        model,
        SoftmaxCrossEntropy(),
        optimizer,
        batch_size=8,
        epochs=3,
        schedule=schedule,
    )
    with pytest.raises(ConfigError, match=r"7 in all, but its total_steps is 6"):
        trainer.fit(x, y)
    assert optimizer.t == 0
    assert all(np.array_equal(model.state_dict()[k], v) for k, v in before.items())

    optimizer = SGD(model, lr=0.1)
    schedule = LinearWarmup(optimizer, 2, after=OneCycle(optimizer, total_steps=7))
    Trainer(
        model,
        SoftmaxCrossEntropy(),
        optimizer,
        batch_size=8,
        epochs=3,
        schedule=schedule,
    ).fit(x, y)
    assert schedule.count == 9 and schedule.after.count == 7


@pytest.mark.parametrize("name", ["lr", "epoch", "step", "grad_norm", "val_score"])
def test_a_metric_cannot_take_a_column_the_trainer_writes(name: str) -> None:
    model = Sequential([Dense(4, 3)], seed=0)
    with pytest.raises(ConfigError, match=f"got '{name}'"):
        Trainer(
            model, MSE(), SGD(model, lr=0.1), metrics=[(name, lambda out, tgt: 1.0)]
        )


def test_a_metric_that_returns_no_single_number_is_named() -> None:
    x, y = blobs(12)
    model = Sequential([Dense(4, 3)], seed=0)
    trainer = Trainer(
        model,
        SoftmaxCrossEntropy(),
        SGD(model, lr=0.1),
        metrics=[("per_class", lambda out, tgt: out.mean(axis=0))],
    )
    with pytest.raises(ConfigError, match=r"metric 'per_class' must return one number"):
        trainer.evaluate(x, y)
    with pytest.raises(ConfigError, match=r"metric 'per_class' .* shape \(3,\)"):
        trainer.fit(x, y)


def test_stopping_at_the_start_of_an_epoch_runs_and_records_nothing_of_it() -> None:
    x, y = blobs(12)
    model = Sequential([Dense(4, 3)], seed=0, dtype="float64")
    before = model.state_dict()
    ends: list[dict] = []

    def stop_second(trainer, logs):
        trainer.stop_training = logs["epoch"] == 1

    trainer = Trainer(
        model,
        SoftmaxCrossEntropy(),
        SGD(model, lr=0.1),
        batch_size=4,
        epochs=3,
        callbacks=[
            LambdaCallback(
                on_epoch_start=stop_second,
                on_fit_end=lambda trainer, logs: ends.append(logs),
            )
        ],
    )
    history = trainer.fit(x, y)

    assert [row["epoch"] for row in history.rows] == [0]
    assert trainer.epochs_done == 1 and model.state.step == 3
    assert ends == [{"epochs_run": 1, "stopped": True}]
    assert not np.array_equal(model.state_dict()["dense_0.W"], before["dense_0.W"])


@pytest.mark.parametrize(
    ("samples", "split", "held"),
    [(10, 0.8, 8), (50, 0.34, 17), (10, 0.25, 3), (10, 0.1, 1)],
)
def test_validation_split_holds_out_the_fraction_rounded_up(
    samples, split, held
) -> None:
    from annlens.training.checks import split_validation

    x, y = np.arange(samples * 2.0).reshape(samples, 2), np.arange(samples)
    train_x, _, validation = split_validation(x, y, None, split)

    assert validation is not None and len(validation[0]) == held
    assert len(train_x) == samples - held and validation[1][0] == samples - held


def test_a_metric_that_fails_leaves_the_step_undone() -> None:
    x, y = blobs(20)
    model = Sequential([Dense(4, 3)], seed=0, dtype="float64")
    optimizer = SGD(model, lr=0.1, momentum=0.9)
    trainer = Trainer(
        model,
        SoftmaxCrossEntropy(),
        optimizer,
        metrics=[("raw", lambda output, target: output)],
    )
    before = model.state_dict()
    with pytest.raises(ConfigError, match="metric 'raw' must return one number"):
        trainer.step(x, y)
    assert optimizer.t == 0 and optimizer.state == {} and model.state.step == 0
    assert all(np.array_equal(model.state_dict()[k], v) for k, v in before.items())
