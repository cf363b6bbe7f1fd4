"""Checkpoints are written atomically; damaged ones load nothing and change nothing."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from annlens.errors import CheckpointError
from annlens.io import checkpoint as checkpoint_module
from annlens.io import load_checkpoint, restore, save_checkpoint
from annlens.layers import BatchNorm, Dense, Dropout
from annlens.model import Sequential
from annlens.optim import SGD, Adam


def make_model(seed: int = 0, width: int = 5) -> Sequential:
    return Sequential(
        [Dense(3, width, "relu"), Dense(width, 2)], seed=seed, dtype="float64"
    )


def weights(model):
    return {name: value.copy() for name, value in model.state_dict().items()}


def assert_same(model, expected):
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, expected[name])


@pytest.fixture
def saved(tmp_path):
    model = make_model(seed=1)
    path = save_checkpoint(tmp_path / "ckpt", model, Adam(model))
    return path, model


def _failing_replace(fail_on: int):
    """os.replace that raises on its ``fail_on``-th call (1-based)."""
    real, calls = os.replace, {"n": 0}

    def replace(source, target):
        calls["n"] += 1
        if calls["n"] == fail_on:
            raise OSError("simulated crash")
        return real(source, target)

    return replace


def test_a_crash_before_the_first_save_leaves_nothing_loadable(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "replace", _failing_replace(1))

    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(tmp_path / "ckpt", make_model())

    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "ckpt")


@pytest.mark.parametrize("fail_on", [1, 2])
def test_a_crash_while_replacing_keeps_the_old_checkpoint(saved, monkeypatch, fail_on):
    path, old_model = saved
    monkeypatch.setattr(os, "replace", _failing_replace(fail_on))

    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, make_model(seed=2))

    monkeypatch.undo()
    fresh = make_model(seed=7)
    restore(load_checkpoint(path), fresh)
    assert_same(fresh, weights(old_model))
    assert [p.name for p in path.parent.iterdir()] == ["ckpt"]


def test_a_crash_while_writing_tensors_keeps_the_old_checkpoint(saved, monkeypatch):
    path, old_model = saved

    def half_then_die(target, data):
        target.write_bytes(data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module, "_write_file", half_then_die)

    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, make_model(seed=2))

    fresh = make_model(seed=7)
    restore(load_checkpoint(path), fresh)
    assert_same(fresh, weights(old_model))


def test_truncated_tensors_file_is_refused_and_the_model_untouched(saved):
    path, _ = saved
    tensors = path / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-40])
    model = make_model(seed=3)
    before = weights(model)

    with pytest.raises(CheckpointError, match="bytes.*truncated.*nothing was loaded"):
        restore(path, model)

    assert_same(model, before)


def test_altered_tensors_file_is_refused_by_its_hash(saved):
    path, _ = saved
    tensors = path / "tensors.safetensors"
    data = bytearray(tensors.read_bytes())
    data[-5] ^= 0xFF
    tensors.write_bytes(bytes(data))

    with pytest.raises(CheckpointError, match="does not match the sha256"):
        load_checkpoint(path)


def test_tensors_from_another_checkpoint_are_refused(tmp_path, saved):
    path, _ = saved
    other = save_checkpoint(tmp_path / "other", make_model(seed=9, width=6))
    (path / "tensors.safetensors").write_bytes(
        (other / "tensors.safetensors").read_bytes()
    )

    with pytest.raises(CheckpointError, match="tensors.safetensors"):
        load_checkpoint(path)


def test_damaged_meta_json_is_refused(saved):
    path, _ = saved
    meta = path / "meta.json"
    meta.write_text(meta.read_text()[:100])

    with pytest.raises(CheckpointError, match="meta.json is damaged"):
        load_checkpoint(path)


def test_foreign_json_is_not_an_annlens_checkpoint(tmp_path):
    folder = tmp_path / "foreign"
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps({"model": "resnet"}))

    with pytest.raises(CheckpointError, match="not an annlens checkpoint"):
        load_checkpoint(folder)


def test_a_plain_file_is_not_a_checkpoint(tmp_path):
    stray = tmp_path / "model.pt"
    stray.write_bytes(b"\x80\x04pickle")

    with pytest.raises(CheckpointError, match="is a file, not an annlens checkpoint"):
        load_checkpoint(stray)


def test_a_folder_without_meta_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no meta.json"):
        load_checkpoint(tmp_path)


def test_a_newer_format_asks_for_an_upgrade(saved):
    path, _ = saved
    meta = json.loads((path / "meta.json").read_text())
    meta["format_version"] = 99
    (path / "meta.json").write_text(json.dumps(meta))

    with pytest.raises(CheckpointError, match="format version 99.*upgrade"):
        load_checkpoint(path)


def test_a_model_with_other_layers_is_refused_and_untouched(saved):
    path, _ = saved
    model = Sequential([Dense(3, 2)], seed=0, dtype="float64")
    before = weights(model)

    with pytest.raises(CheckpointError, match="holds layers.*but the model has"):
        restore(path, model)

    assert_same(model, before)


def test_a_model_with_another_activation_is_refused_and_untouched(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt", Sequential([Dense(4, 8, "relu")]))
    model = Sequential([Dense(4, 8, "tanh")], seed=3)
    before = weights(model)

    with pytest.raises(CheckpointError) as caught:
        restore(path, model)

    message = str(caught.value)
    assert "layer 'dense_0' was saved with activation 'relu'" in message
    assert "the model's has 'tanh'" in message
    assert "nothing was changed" in message
    assert_same(model, before)


@pytest.mark.parametrize(
    ("saved_layer", "current_layer", "setting"),
    [
        (BatchNorm(momentum=0.1), BatchNorm(momentum=0.3), "momentum 0.1"),
        (BatchNorm(eps=1e-5), BatchNorm(eps=1e-3), "eps 1e-05"),
        (Dropout(0.2), Dropout(0.5), "p 0.2"),
    ],
    ids=["momentum", "eps", "dropout"],
)
def test_a_model_with_other_layer_settings_is_refused(
    tmp_path, saved_layer, current_layer, setting
):
    def model_with(layer):
        return Sequential([Dense(3, 4), layer, Dense(4, 2)], seed=0)

    path = save_checkpoint(tmp_path / "ckpt", model_with(saved_layer))
    model = model_with(current_layer)
    before = weights(model)

    with pytest.raises(CheckpointError, match=f"was saved with {setting} but"):
        restore(path, model)

    assert_same(model, before)


def test_a_model_with_another_initializer_restores(tmp_path):
    original = Sequential([Dense(3, 4, "relu", init="xavier_uniform")], seed=1)
    path = save_checkpoint(tmp_path / "ckpt", original)
    model = Sequential([Dense(3, 4, "relu", init="he_normal")], seed=2)

    restore(path, model)

    assert_same(model, weights(original))


def test_a_shape_mismatch_is_refused_and_the_model_untouched(saved):
    path, _ = saved
    model = make_model(width=6)
    before = weights(model)

    with pytest.raises(CheckpointError, match="does not fit.*nothing was changed"):
        restore(path, model)

    assert_same(model, before)


def test_a_late_optimizer_mismatch_rolls_the_model_back(saved):
    path, _ = saved
    model = make_model(seed=4)
    model.state.step = 11
    before = weights(model)

    with pytest.raises(CheckpointError, match="'Adam', not 'SGD'"):
        restore(path, model, SGD(model))

    assert_same(model, before)
    assert model.state.step == 11


def test_an_optimizer_without_saved_state_is_refused(tmp_path):
    model = make_model()
    path = save_checkpoint(tmp_path / "ckpt", model)

    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        restore(path, make_model(), SGD(make_model()))


def test_saving_over_a_folder_that_is_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "notes.txt").write_text("keep me")

    with pytest.raises(CheckpointError, match="not a checkpoint to replace"):
        save_checkpoint(tmp_path / "results", make_model())

    assert (tmp_path / "results" / "notes.txt").read_text() == "keep me"


def test_a_crash_between_the_renames_points_to_the_old_checkpoint(saved, monkeypatch):
    path, _ = saved
    real = os.replace
    calls = {"n": 0}

    def replace(source, target):
        calls["n"] += 1
        if calls["n"] > 1:  # the old one moved aside, then the process "died"
            raise OSError("simulated crash")
        return real(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        save_checkpoint(path, make_model(seed=2))
    monkeypatch.undo()

    with pytest.raises(
        CheckpointError, match=r"previous checkpoint is at '.*\.ckpt\.old-"
    ):
        load_checkpoint(path)


def test_a_checkpoint_under_a_file_or_of_mismatched_parts_is_refused(tmp_path):
    from annlens.optim import SGD, get_schedule

    model = Sequential([Dense(2, 2)], seed=0)
    other = Sequential([Dense(3, 3)], seed=0)
    blocker = tmp_path / "afile"
    blocker.write_text("x")

    with pytest.raises(CheckpointError, match="afile' is a file, not a folder"):
        save_checkpoint(blocker / "ckpt", model)
    with pytest.raises(CheckpointError, match="model must be a Sequential, got str"):
        save_checkpoint(tmp_path / "a", "model")
    with pytest.raises(CheckpointError, match="was not built on this model"):
        save_checkpoint(tmp_path / "b", model, SGD(other, lr=0.1))
    optimizer = SGD(model, lr=0.1)
    with pytest.raises(CheckpointError, match="was not made on this optimizer"):
        save_checkpoint(
            tmp_path / "c",
            model,
            optimizer,
            get_schedule("cosine", SGD(model), T_max=2),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_restore_refuses_an_optimizer_of_another_model_and_changes_nothing(tmp_path):
    from annlens.optim import SGD

    model = Sequential([Dense(2, 2)], seed=0)
    optimizer = SGD(model, lr=0.1, momentum=0.9)
    save_checkpoint(tmp_path / "ckpt", model, optimizer)
    twin = Sequential([Dense(2, 2)], seed=1)
    before = twin.state_dict()

    with pytest.raises(CheckpointError, match="was not built on the model being"):
        restore(tmp_path / "ckpt", twin, optimizer)
    assert all(np.array_equal(twin.state_dict()[k], v) for k, v in before.items())
