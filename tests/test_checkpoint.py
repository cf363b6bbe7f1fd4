"""Checkpoints round-trip bit for bit: parameters, buffers, optimizer, schedule, RNG."""

from __future__ import annotations

import json

import numpy as np
import pytest

from annlens.activations import FunctionActivation, get_activation
from annlens.errors import CheckpointError
from annlens.io import (
    is_checkpoint,
    layer_classes,
    load_checkpoint,
    register_layer,
    restore,
    save_checkpoint,
)
from annlens.layers import Activation, BatchNorm, Dense, Dropout, Layer
from annlens.model import Sequential
from annlens.optim import Adam, CosineAnnealing


def make_model(seed: int = 1) -> Sequential:
    return Sequential(
        [
            Dense(4, 8, "tanh"),
            BatchNorm(),
            Dropout(0.3),
            Dense(8, 3),
            Activation("relu"),
        ],
        seed=seed,
        dtype="float64",
    )


def train(model, optimizer, schedule, steps, rng):
    """A few steps of a made-up regression; returns nothing, changes everything."""
    for _ in range(steps):
        x = rng.normal(size=(16, 4))
        output = model.forward(x)
        model.backward((output - 1.0) / len(x))
        optimizer.step()
        schedule.step()


@pytest.fixture
def trained(rng):
    model = make_model()
    optimizer = Adam(model, lr=0.01)
    schedule = CosineAnnealing(optimizer, T_max=10, unit="batch")
    train(model, optimizer, schedule, 3, rng)
    model.state.epoch = 2
    return model, optimizer, schedule


def test_checkpoint_is_a_folder_of_tensors_and_meta(tmp_path, trained):
    model, optimizer, schedule = trained

    path = save_checkpoint(tmp_path / "ckpt", model, optimizer, schedule)

    assert sorted(p.name for p in path.iterdir()) == [
        "meta.json",
        "tensors.safetensors",
    ]
    assert is_checkpoint(path) and not is_checkpoint(tmp_path)
    meta = json.loads((path / "meta.json").read_text())
    assert (
        meta["format"] == "annlens-checkpoint" and len(meta["tensors"]["sha256"]) == 64
    )


def test_parameters_and_buffers_round_trip_bit_for_bit(tmp_path, trained):
    model, optimizer, schedule = trained
    save_checkpoint(tmp_path / "ckpt", model, optimizer, schedule)

    fresh = make_model(seed=99)
    restore(load_checkpoint(tmp_path / "ckpt"), fresh)

    saved, loaded = model.state_dict(), fresh.state_dict()
    assert set(saved) == set(loaded)
    assert "batchnorm_0.running_mean" in loaded
    for name in saved:
        assert loaded[name].dtype == saved[name].dtype
        np.testing.assert_array_equal(loaded[name], saved[name])


def test_optimizer_and_schedule_state_round_trip_bit_for_bit(tmp_path, trained):
    model, optimizer, schedule = trained
    save_checkpoint(tmp_path / "ckpt", model, optimizer, schedule)

    fresh = make_model()
    fresh_optimizer = Adam(fresh, lr=0.01)
    fresh_schedule = CosineAnnealing(fresh_optimizer, T_max=10, unit="batch")
    restore(tmp_path / "ckpt", fresh, fresh_optimizer, fresh_schedule)

    before, after = optimizer.state_dict(), fresh_optimizer.state_dict()
    assert after["t"] == before["t"] == 3 and after["lr_scale"] == before["lr_scale"]
    for name, slots in before["state"].items():
        for key, value in slots.items():
            np.testing.assert_array_equal(after["state"][name][key], value)
    assert fresh_schedule.state_dict() == schedule.state_dict()


def test_step_epoch_and_noise_generator_are_restored(tmp_path, trained):
    model, optimizer, schedule = trained
    save_checkpoint(tmp_path / "ckpt", model, optimizer, schedule)

    fresh = make_model()
    restore(tmp_path / "ckpt", fresh)

    assert (fresh.state.step, fresh.state.epoch) == (3, 2)
    assert fresh.state.rng.bit_generator.state == model.state.rng.bit_generator.state


def test_training_continues_identically_after_restore(tmp_path, trained):
    model, optimizer, schedule = trained
    save_checkpoint(tmp_path / "ckpt", model, optimizer, schedule)
    fresh = load_checkpoint(tmp_path / "ckpt").build_model()
    fresh_optimizer = Adam(fresh, lr=0.01)
    fresh_schedule = CosineAnnealing(fresh_optimizer, T_max=10, unit="batch")
    restore(tmp_path / "ckpt", fresh, fresh_optimizer, fresh_schedule)

    # Dropout draws its masks from the restored generator, so the runs agree.
    train(model, optimizer, schedule, 2, np.random.default_rng(5))
    train(fresh, fresh_optimizer, fresh_schedule, 2, np.random.default_rng(5))

    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[name], value)


def test_build_model_rebuilds_architecture_and_predictions(tmp_path, trained, rng):
    model, _, _ = trained
    save_checkpoint(tmp_path / "ckpt", model)

    rebuilt = load_checkpoint(tmp_path / "ckpt").build_model()

    assert [type(layer) for layer in rebuilt.layers] == [
        type(layer) for layer in model.layers
    ]
    assert rebuilt.dtype == model.dtype and rebuilt.seed == model.seed
    x = rng.normal(size=(5, 4))
    np.testing.assert_array_equal(rebuilt.predict(x), model.predict(x))


def test_extra_state_round_trips_with_arrays_and_text(tmp_path, trained):
    model, _, _ = trained
    extra = {
        "best_val_loss": 0.25,
        "data_rng": np.random.default_rng(3).bit_generator.state,
        "collector": {"sums": np.arange(6.0).reshape(2, 3), "names": ["a", "b"]},
        "labels": np.array(["cat", "dog"]),
        "counts": (1, 2),
    }

    save_checkpoint(tmp_path / "ckpt", model, extra=extra)
    loaded = load_checkpoint(tmp_path / "ckpt").extra

    assert loaded["best_val_loss"] == 0.25 and loaded["counts"] == [1, 2]
    assert loaded["data_rng"] == extra["data_rng"]
    np.testing.assert_array_equal(
        loaded["collector"]["sums"], extra["collector"]["sums"]
    )
    assert loaded["collector"]["names"] == ["a", "b"]
    assert loaded["labels"].tolist() == ["cat", "dog"]


def test_arrays_keep_their_shape_zero_dimensional_ones_too(tmp_path, trained):
    model, _, _ = trained
    extra = {
        "scalar": np.array(2.5),
        "count": np.array(3, dtype=np.int32),
        "strided": np.arange(12.0).reshape(3, 4)[:, ::2],
    }

    save_checkpoint(tmp_path / "ckpt", model, extra=extra)
    loaded = load_checkpoint(tmp_path / "ckpt").extra

    for key, value in extra.items():
        assert loaded[key].shape == value.shape, key
        assert loaded[key].dtype == value.dtype, key
        np.testing.assert_array_equal(loaded[key], value)


def test_extra_state_that_would_need_pickling_is_refused(tmp_path, trained):
    model, _, _ = trained

    with pytest.raises(CheckpointError, match=r"cannot store set at 'extra.seen'"):
        save_checkpoint(tmp_path / "ckpt", model, extra={"seen": {1, 2}})
    assert not (tmp_path / "ckpt").exists()


def test_saving_again_replaces_the_checkpoint(tmp_path, trained, rng):
    model, optimizer, schedule = trained
    save_checkpoint(tmp_path / "ckpt", model, optimizer, schedule)
    train(model, optimizer, schedule, 1, rng)

    save_checkpoint(tmp_path / "ckpt", model, optimizer, schedule)

    assert load_checkpoint(tmp_path / "ckpt").step == 4
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_layer_classes_are_found_by_name_in_annlens_layers():
    classes = layer_classes()

    for cls in (Dense, Activation, BatchNorm, Dropout):
        assert classes[cls.__name__] is cls


class Scale(Layer):
    """A parameter-free layer defined outside annlens: output = factor * input."""

    kind = "scale"

    def __init__(self, factor: float = 2.0, name: str | None = None) -> None:
        super().__init__(name)
        self.factor = factor

    def compute(self, x):
        self.keep(x)
        return self.factor * x

    def compute_backward(self, grad_output):
        return self.factor * grad_output

    def config(self):
        return {"factor": self.factor, "name": self.name}


def test_layer_defined_elsewhere_rebuilds_once_registered(tmp_path):
    model = Sequential([Dense(2, 2), Scale(3.0)], seed=0, dtype="float64")
    save_checkpoint(tmp_path / "ckpt", model)

    with pytest.raises(CheckpointError, match="'Scale'.*register_layer"):
        load_checkpoint(tmp_path / "ckpt").build_model()
    register_layer(Scale)
    rebuilt = load_checkpoint(tmp_path / "ckpt").build_model()

    assert rebuilt.layers[1].factor == 3.0


def test_an_unknown_activation_is_refused_with_how_to_load_it(tmp_path):
    cube = FunctionActivation(lambda z: z**3, lambda z: 3 * z**2, name="cube")
    model = Sequential([Dense(2, 2, cube)], seed=0, dtype="float64")
    save_checkpoint(tmp_path / "ckpt", model)

    with pytest.raises(
        CheckpointError, match="unknown activation 'cube'.*register_activation.*restore"
    ):
        load_checkpoint(tmp_path / "ckpt").build_model()
    same = Sequential([Dense(2, 2, cube)], seed=1, dtype="float64")
    restore(tmp_path / "ckpt", same)
    np.testing.assert_array_equal(
        same.layers[0].params["W"], model.layers[0].params["W"]
    )


def test_activation_settings_survive_a_rebuild(tmp_path):
    leaky = get_activation("leaky_relu", alpha=0.3)
    model = Sequential([Dense(2, 2, leaky)], seed=0, dtype="float64")
    save_checkpoint(tmp_path / "ckpt", model)

    rebuilt = load_checkpoint(tmp_path / "ckpt").build_model()

    assert rebuilt.layers[0].activation.alpha == 0.3
    x = np.array([[-1.0, 2.0], [3.0, -4.0]])
    np.testing.assert_array_equal(rebuilt.forward(x), model.forward(x))
