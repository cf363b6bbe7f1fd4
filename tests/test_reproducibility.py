"""Same seed, same configuration: bit-identical loss curves and final weights,
within one process and across processes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap

import numpy as np

from annlens.layers import BatchNorm, Dense, Dropout
from annlens.losses import SoftmaxCrossEntropy
from annlens.model import Sequential
from annlens.optim import SGD
from annlens.training import Trainer

# One run, written once: the test imports it and the subprocesses execute it.
RUN = textwrap.dedent(
    """
    import hashlib
    import numpy as np
    from annlens.layers import BatchNorm, Dense, Dropout
    from annlens.losses import SoftmaxCrossEntropy
    from annlens.model import Sequential
    from annlens.optim import SGD
    from annlens.training import Trainer

    def run(seed, trainer_seed=None, dtype="float32"):
        data = np.random.default_rng(123)
        y = np.arange(90) % 3
        x = np.eye(5)[y] * 2 + 0.5 * data.normal(size=(90, 5))
        model = Sequential(
            [Dense(5, 16, "relu"), BatchNorm(), Dropout(0.3), Dense(16, 3)],
            seed=seed,
            dtype=dtype,
        )
        trainer = Trainer(
            model,
            SoftmaxCrossEntropy(),
            SGD(model, lr=0.05, momentum=0.9),
            batch_size=16,
            epochs=4,
            seed=trainer_seed,
            validation_split=0.2,
        )
        history = trainer.fit(x, y)
        digest = hashlib.sha256()
        for name, value in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        return history.steps["loss"], history["val_loss"], digest.hexdigest()
    """
)
namespace: dict = {}
exec(RUN, namespace)  # noqa: S102 - the run above, shared with the subprocesses
run = namespace["run"]


def run_in_subprocess(seed: int) -> tuple[list[float], list[float], str]:
    script = RUN + f"\nimport json\nprint(json.dumps(run({seed})))\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    losses, val_losses, digest = json.loads(done.stdout)
    return losses, val_losses, digest


def test_two_runs_in_one_process_are_bit_identical() -> None:
    first, second = run(7), run(7)
    assert first[0] == second[0]
    assert first[1] == second[1]
    assert first[2] == second[2]


def test_two_runs_in_two_processes_match_this_one_bit_for_bit() -> None:
    here = run(7)
    for _ in range(2):
        losses, val_losses, digest = run_in_subprocess(7)
        assert losses == here[0]  # JSON keeps every bit of a float
        assert val_losses == here[1]
        assert digest == here[2]


def test_another_model_seed_gives_another_run() -> None:
    assert run(7)[2] != run(8)[2]


def test_the_trainer_seed_changes_the_data_order_only() -> None:
    default, same, other = run(7), run(7, trainer_seed=7), run(7, trainer_seed=99)
    assert same[0] == default[0]
    assert other[0] != default[0]


def test_float64_runs_are_bit_identical_too() -> None:
    assert run(3, dtype="float64") == run(3, dtype="float64")


def test_a_trainer_reused_for_a_second_fit_continues_the_data_order() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 4)), np.arange(20) % 2

    def fresh() -> Trainer:
        model = Sequential(
            [Dense(4, 6), BatchNorm(), Dropout(0.2), Dense(6, 2)], dtype="float64"
        )
        return Trainer(model, SoftmaxCrossEntropy(), SGD(model), batch_size=6)

    once, twice = fresh(), fresh()
    once.epochs = 2
    once.fit(x, y)
    twice.fit(x, y)
    twice.fit(x, y)

    digest = [
        hashlib.sha256(
            b"".join(v.tobytes() for _, v in sorted(t.model.state_dict().items()))
        ).hexdigest()
        for t in (once, twice)
    ]
    assert digest[0] == digest[1]


def test_a_run_resumed_from_an_epoch_checkpoint_ends_bit_identical() -> None:
    from annlens.optim import StepDecay
    from annlens.training import Callback, EarlyStopping

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 4)), np.arange(40) % 3

    class Checkpoint(Callback):
        """Keeps everything a checkpoint would, at the end of epoch 1."""

        saved: dict = {}

        def on_epoch_end(self, trainer, logs):
            if logs["epoch"] == 1:
                Checkpoint.saved = {
                    "model": trainer.model.state_dict(),
                    "rng": trainer.model.state.rng.bit_generator.state,
                    "step": trainer.model.state.step,
                    "optimizer": trainer.optimizer.state_dict(),
                    "schedule": trainer.schedule.state_dict(),
                    "trainer": trainer.state_dict(),
                }

    def build() -> Trainer:
        model = Sequential(
            [Dense(4, 8, "relu"), BatchNorm(), Dropout(0.3), Dense(8, 3)], seed=5
        )
        optimizer = SGD(model, lr=0.1, momentum=0.9)
        return Trainer(
            model,
            SoftmaxCrossEntropy(),
            optimizer,
            batch_size=16,
            epochs=4,
            schedule=StepDecay(optimizer, step_size=1, gamma=0.7),
            callbacks=[Checkpoint(), EarlyStopping("val_loss", patience=10)],
        )

    reference = build()
    reference.fit(x[:32], y[:32], validation_data=(x[32:], y[32:]))

    resumed = build()
    saved = Checkpoint.saved
    resumed.model.load_state_dict(saved["model"])
    resumed.model.state.rng.bit_generator.state = saved["rng"]
    resumed.model.state.step = saved["step"]
    resumed.optimizer.load_state_dict(saved["optimizer"])
    resumed.schedule.load_state_dict(saved["schedule"])
    resumed.load_state_dict(saved["trainer"])
    assert resumed.epochs_done == 2
    resumed.fit(x[:32], y[:32], validation_data=(x[32:], y[32:]), resume=True)

    assert resumed.history.rows == reference.history.rows
    assert resumed.history.steps == reference.history.steps
    for name, value in reference.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value)
    stoppers = [t.callbacks.callbacks[1] for t in (reference, resumed)]
    assert stoppers[0].state_dict()["best"] == stoppers[1].state_dict()["best"]
