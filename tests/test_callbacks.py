"""Callbacks: the order of events, and callbacks that change the learning rate,
a hyperparameter, the parameters, or stop training; early stopping."""

from __future__ import annotations

import numpy as np
import pytest

from annlens.errors import ConfigError
from annlens.layers import Dense, Dropout
from annlens.losses import SoftmaxCrossEntropy
from annlens.model import Sequential
from annlens.optim import SGD
from annlens.training import Callback, EarlyStopping, LambdaCallback, Trainer


def blobs(n: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return np.eye(4)[y] * 2 + 0.3 * rng.normal(size=(n, 4)), y


def make(callbacks=(), lr: float = 0.1, epochs: int = 4, **kw) -> Trainer:
    model = Sequential([Dense(4, 8, "tanh"), Dense(8, 3)], seed=0, dtype="float64")
    return Trainer(
        model,
        SoftmaxCrossEntropy(),
        SGD(model, lr=lr, **kw),
        batch_size=8,
        epochs=epochs,
        callbacks=callbacks,
    )


class Events(Callback):
    def __init__(self) -> None:
        self.names: list[str] = []

    def __getattribute__(self, name: str):
        if name.startswith("on_"):
            return lambda trainer, logs: self.names.append(name)
        return super().__getattribute__(name)


# -- events -----------------------------------------------------------------------


def test_events_come_in_the_documented_order() -> None:
    events = Events()
    x, y = blobs(12)
    make([events], epochs=2).fit(x[:8], y[:8], validation_data=(x[8:], y[8:]))

    batch = ["on_batch_start", "on_after_backward", "on_after_update", "on_batch_end"]
    epoch = ["on_epoch_start", *batch, "on_validation", "on_epoch_end"]
    assert events.names == ["on_fit_start", *epoch, *epoch, "on_fit_end"]


def test_the_base_callback_does_nothing() -> None:
    x, y = blobs()
    plain, with_base = make(), make([Callback()])
    plain.fit(x, y)
    with_base.fit(x, y)
    assert plain.history.rows == with_base.history.rows


def test_epoch_end_logs_are_the_history_row_and_additions_are_kept() -> None:
    def add_norm(trainer, logs):
        logs["w_norm"] = float(np.linalg.norm(trainer.model.layers[0].params["W"]))

    x, y = blobs()
    trainer = make([LambdaCallback(on_epoch_end=add_norm)], epochs=2)
    history = trainer.fit(x, y)
    assert history["w_norm"][-1] == np.linalg.norm(trainer.model.layers[0].params["W"])


def test_lambda_callback_refuses_an_unknown_event() -> None:
    with pytest.raises(ConfigError, match="unknown event 'on_epoch_finish'"):
        LambdaCallback(on_epoch_finish=lambda trainer, logs: None)


# -- interventions ------------------------------------------------------------------


def test_a_callback_lowers_the_learning_rate_at_epoch_2() -> None:
    def lower(trainer, logs):
        if logs["epoch"] == 2:
            trainer.optimizer.set("lr", 0.01)

    trainer = make([LambdaCallback(on_epoch_start=lower)], lr=0.1)
    ratios = []

    def update_over_gradient(layer, name, update):
        ratios.append(float(np.mean(-update / layer.grads[name])))

    trainer.model.register_hook("dense_1.update", update_over_gradient)
    x, y = blobs()
    history = trainer.fit(x, y)

    assert history["lr"] == [0.1, 0.1, 0.01, 0.01]
    steps_per_epoch = 3
    updates_per_epoch = 2 * steps_per_epoch  # W and b
    np.testing.assert_allclose(ratios[: 2 * updates_per_epoch], 0.1, rtol=1e-12)
    np.testing.assert_allclose(ratios[2 * updates_per_epoch :], 0.01, rtol=1e-12)
    assert history.steps["lr"] == [0.1] * 6 + [0.01] * 6


def test_a_callback_changes_a_hyperparameter_for_one_layer() -> None:
    def no_momentum(trainer, logs):
        trainer.optimizer.set("momentum", 0.0, pattern="dense_0.*")

    trainer = make([LambdaCallback(on_fit_start=no_momentum)], momentum=0.9)
    x, y = blobs()
    trainer.fit(x, y)

    assert trainer.optimizer.hyperparameters("dense_0.W")["momentum"] == 0.0
    assert trainer.optimizer.hyperparameters("dense_1.W")["momentum"] == 0.9
    assert trainer.optimizer.state["dense_0.W"] == {}
    assert "velocity" in trainer.optimizer.state["dense_1.W"]


def test_a_callback_stops_training_after_the_current_batch() -> None:
    def stop_at_step_4(trainer, logs):
        if logs["step"] == 4:
            trainer.stop_training = True

    trainer = make([LambdaCallback(on_batch_end=stop_at_step_4)], epochs=10)
    x, y = blobs()
    history = trainer.fit(x, y)

    assert trainer.model.state.step == 5
    assert history["epoch"] == [0, 1]
    assert len(history.steps["loss"]) == 5


def test_a_callback_stops_training_at_an_epoch_end() -> None:
    def stop_after_epoch_1(trainer, logs):
        trainer.stop_training = logs["epoch"] == 1

    events = Events()
    trainer = make([LambdaCallback(on_epoch_end=stop_after_epoch_1), events])
    x, y = blobs()
    history = trainer.fit(x, y)

    assert len(history) == 2
    assert trainer.model.state.step == 6
    assert events.names[-1] == "on_fit_end"


def test_a_callback_edits_the_weights_after_every_update() -> None:
    def max_norm(trainer, logs):
        W = trainer.model.layers[0].params["W"]
        norms = np.linalg.norm(W, axis=0)
        W *= np.minimum(1.0, 0.5 / norms)

    trainer = make([LambdaCallback(on_after_update=max_norm)], lr=1.0)
    x, y = blobs()
    trainer.fit(x, y)

    norms = np.linalg.norm(trainer.model.layers[0].params["W"], axis=0)
    assert norms.max() <= 0.5 + 1e-12
    unconstrained = make(lr=1.0)
    unconstrained.fit(x, y)
    assert np.linalg.norm(unconstrained.model.layers[0].params["W"], axis=0).max() > 1


def test_weights_edited_before_a_batch_are_the_ones_the_forward_uses() -> None:
    def zero_weights(trainer, logs):
        trainer.model.layers[1].params["W"][:] = 0.0

    trainer = make([LambdaCallback(on_batch_start=zero_weights)], epochs=1)
    outputs = []
    trainer.model.register_hook(
        "dense_1.forward", lambda layer, x_in, out: outputs.append(out.copy())
    )
    x, y = blobs()
    trainer.fit(x, y)

    for output in outputs:
        np.testing.assert_array_equal(output, np.broadcast_to(output[0], output.shape))


def test_a_callback_may_change_gradients_after_backward() -> None:
    def freeze_first_layer(trainer, logs):
        layer = trainer.model.layers[0]
        layer.grads = {key: np.zeros_like(g) for key, g in layer.grads.items()}

    trainer = make([LambdaCallback(on_after_backward=freeze_first_layer)])
    before = trainer.model.layers[0].params["W"].copy()
    x, y = blobs()
    trainer.fit(x, y)
    np.testing.assert_array_equal(trainer.model.layers[0].params["W"], before)


# -- early stopping -------------------------------------------------------------------


class Scripted(Callback):
    """Writes a scripted value into each epoch's row and keeps the model state."""

    def __init__(self, values: list[float]) -> None:
        self.values = values
        self.states: list[dict] = []

    def on_epoch_end(self, trainer, logs):
        logs["score"] = self.values[logs["epoch"]]
        self.states.append(trainer.model.state_dict())


def test_early_stopping_stops_after_patience_epochs_without_improvement() -> None:
    scripted = Scripted([5.0, 4.0, 3.0, 3.5, 3.2, 1.0, 0.5])
    stopper = EarlyStopping(monitor="score", patience=2)
    trainer = make([scripted, stopper], epochs=7)
    x, y = blobs()
    history = trainer.fit(x, y)

    assert history["epoch"] == [0, 1, 2, 3, 4]
    assert (stopper.best, stopper.best_epoch, stopper.stopped_epoch) == (3.0, 2, 4)


def test_early_stopping_logs_epochs_from_1_as_the_trainer_does(caplog) -> None:
    scripted = Scripted([5.0, 4.0, 3.0, 3.5, 3.2, 1.0])
    stopper = EarlyStopping(monitor="score", patience=2, restore_best=True)
    trainer = make([scripted, stopper], epochs=6)
    x, y = blobs()
    with caplog.at_level("INFO", logger="annlens"):
        trainer.fit(x, y)

    # the third epoch (index 2) was best, the fifth (index 4) the last
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("epoch 5/6:") for m in messages)
    assert any(
        m.startswith(
            "early stopping after epoch 5: score has not improved on 3 "
            "(epoch 3) for 2 epochs"
        )
        for m in messages
    )
    assert "restored the parameters of epoch 3" in messages


def test_early_stopping_restores_the_best_weights_when_asked() -> None:
    scripted = Scripted([5.0, 4.0, 3.0, 3.5, 3.2, 1.0])
    trainer = make(
        [scripted, EarlyStopping(monitor="score", patience=2, restore_best=True)],
        epochs=6,
    )
    x, y = blobs()
    trainer.fit(x, y)

    best = scripted.states[2]
    for name, value in trainer.model.state_dict().items():
        np.testing.assert_array_equal(value, best[name])
    assert not np.array_equal(scripted.states[-1]["dense_0.W"], best["dense_0.W"])


def test_early_stopping_keeps_the_last_weights_by_default() -> None:
    scripted = Scripted([5.0, 4.0, 3.0, 3.5, 3.2])
    trainer = make([scripted, EarlyStopping(monitor="score", patience=2)], epochs=5)
    x, y = blobs()
    trainer.fit(x, y)
    np.testing.assert_array_equal(
        trainer.model.layers[0].params["W"], scripted.states[-1]["dense_0.W"]
    )


def test_early_stopping_min_delta_ignores_small_improvements() -> None:
    scripted = Scripted([5.0, 4.95, 4.9, 4.85, 1.0])
    stopper = EarlyStopping(monitor="score", patience=2, min_delta=0.1)
    make([scripted, stopper], epochs=5).fit(*blobs())
    assert stopper.stopped_epoch == 2 and stopper.best == 5.0


def test_early_stopping_on_accuracy_maximises() -> None:
    scripted = Scripted([0.5, 0.7, 0.6, 0.65, 0.9])
    stopper = EarlyStopping(monitor="score", patience=2, mode="max")
    make([scripted, stopper], epochs=5).fit(*blobs())
    assert (stopper.best, stopper.stopped_epoch) == (0.7, 3)
    assert EarlyStopping(monitor="val_accuracy").mode == "max"
    assert EarlyStopping(monitor="val_loss").mode == "min"


def test_early_stopping_on_a_misspelt_column_suggests_the_right_one() -> None:
    x, y = blobs(12)
    stopper = EarlyStopping(monitor="val_los", patience=2)

    with pytest.raises(ConfigError) as caught:
        make([stopper], epochs=2).fit(x[:8], y[:8], validation_data=(x[8:], y[8:]))
    message = str(caught.value)
    assert "(did you mean 'val_loss'?)" in message
    assert "give validation data" not in message


def test_early_stopping_on_val_loss_without_validation_data_says_to_give_it() -> None:
    with pytest.raises(ConfigError, match="help: give validation data"):
        make([EarlyStopping(monitor="val_loss")], epochs=2).fit(*blobs())


def test_early_stopping_on_validation_loss_of_a_real_run() -> None:
    x, y = blobs(48)
    model = Sequential(
        [Dense(4, 16, "relu"), Dropout(0.1), Dense(16, 3)], seed=0, dtype="float64"
    )
    stopper = EarlyStopping(patience=3, min_delta=1e-3, restore_best=True)
    trainer = Trainer(
        model,
        SoftmaxCrossEntropy(),
        SGD(model, lr=0.5),
        batch_size=8,
        epochs=200,
        callbacks=[stopper],
    )
    history = trainer.fit(x[:32], y[:32], validation_data=(x[32:], y[32:]))

    assert len(history) < 200
    assert len(history) == stopper.stopped_epoch + 1 == stopper.best_epoch + 4
    assert trainer.evaluate(x[32:], y[32:])["loss"] == pytest.approx(stopper.best)


def test_early_stopping_on_a_missing_column_says_which_exist() -> None:
    trainer = make([EarlyStopping(monitor="val_loss")])
    with pytest.raises(ConfigError, match="give validation data"):
        trainer.fit(*blobs())


@pytest.mark.parametrize(
    "kwargs", [{"patience": -1}, {"min_delta": -0.1}, {"mode": "lowest"}]
)
def test_early_stopping_refuses_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        EarlyStopping(**kwargs)


def test_an_event_method_that_cannot_take_trainer_and_logs_is_refused_up_front() -> (
    None
):
    class OneArgument(Callback):
        def on_epoch_end(self, trainer):  # type: ignore[override]
            pass

    with pytest.raises(ConfigError) as caught:
        make([OneArgument()])
    message = str(caught.value)
    assert "callback 0 (OneArgument): on_epoch_end(trainer) cannot be called" in message
    assert "help: define it as def on_epoch_end(self, trainer, logs)" in message


def test_a_misspelt_event_method_is_warned_about_since_it_is_never_called() -> None:
    class Typo(Callback):
        def on_epoch_ned(self, trainer, logs):
            pass

    with pytest.warns(UserWarning, match="on_epoch_ned, which is no training event"):
        make([Typo()])


def test_a_misspelt_lambda_callback_event_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean 'on_epoch_end'"):
        LambdaCallback(on_epoch_ned=lambda trainer, logs: None)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"monitor": 3}, "monitor must be a column name"),
        ({"restore_best": "yes"}, "restore_best must be True or False"),
        ({"min_delta": True}, "min_delta must be >= 0"),
    ],
)
def test_early_stopping_refuses_a_bad_monitor_flag_or_delta(settings, message) -> None:
    with pytest.raises(ConfigError, match=message):
        EarlyStopping(**settings)
