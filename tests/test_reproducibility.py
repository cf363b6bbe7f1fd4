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
