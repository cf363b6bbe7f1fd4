"""meta.json carries the sha256 of its own content: an edited field is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from annlens.errors import CheckpointError
from annlens.io import load_checkpoint, restore, save_checkpoint, upgrade_checkpoint
from annlens.io.checkpoint_integrity import sha256_of
from annlens.layers import Dense
from annlens.model import Sequential
from annlens.optim import Adam, StepDecay

EXTRA: dict[str, Any] = {
    "trainer": {
        "epochs_done": 3,
        "stop_training": False,
        "history": [{"epoch": 0, "loss": 0.5}, {"epoch": 1, "loss": 0.25}],
    },
    "best": 0.25,
    "tags": ["plain", "wide"],
    "note": None,
}


def make_model(seed: int = 0) -> Sequential:
    return Sequential([Dense(3, 4, "relu"), Dense(4, 2)], seed=seed, dtype="float64")


@pytest.fixture
def saved(tmp_path) -> Path:
    model = make_model(seed=1)
    optimizer = Adam(model, lr=0.01)
    schedule = StepDecay(optimizer, step_size=2)
    return save_checkpoint(tmp_path / "ckpt", model, optimizer, schedule, EXTRA)


def read_meta(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / "meta.json").read_text()))


def write_meta(path: Path, meta: dict[str, Any]) -> None:
    (path / "meta.json").write_text(json.dumps(meta, indent=2))


def make_version_1(path: Path) -> None:
    """Turn a saved checkpoint into one as format version 1 wrote it."""
    meta = read_meta(path)
    del meta["integrity"]
    meta["format_version"] = 1
    write_meta(path, meta)


def weights(model: Sequential) -> dict[str, np.ndarray]:
    return {name: value.copy() for name, value in model.state_dict().items()}


# -- what is written ------------------------------------------------------------------


def test_meta_json_records_the_sha256_of_the_rest_of_its_content(saved):
    meta = read_meta(saved)
    record = meta.pop("integrity")

    assert meta["format_version"] == 2
    assert record["algorithm"] == "sha256"
    assert record["sha256"] == sha256_of(meta)


def test_the_part_digests_reach_three_levels_down(saved):
    parts = read_meta(saved)["integrity"]["parts"]

    assert {"extra", "extra.trainer", "extra.trainer.epochs_done"} <= set(parts)
    assert "model.architecture.layers" in parts
    assert all(len(digest) == 16 for digest in parts.values())


def test_a_reformatted_meta_json_still_loads(saved):
    meta = read_meta(saved)
    reordered = dict(reversed(list(meta.items())))
    (saved / "meta.json").write_text(json.dumps(reordered))

    checkpoint = load_checkpoint(saved)

    assert checkpoint.extra["trainer"]["epochs_done"] == 3


# -- edits of each kind of field ------------------------------------------------------


def set_epochs_done(meta):
    meta["extra"]["trainer"]["epochs_done"] = 4


def set_step(meta):
    meta["model"]["step"] = 100


def set_learning_rate(meta):
    meta["optimizer"]["base"]["lr"] = 0.02


def set_best(meta):
    meta["extra"]["best"] = 0.125


def set_stop_training(meta):
    meta["extra"]["trainer"]["stop_training"] = True


def set_version_string(meta):
    meta["annlens_version"] = "9.9.9"


def set_dtype(meta):
    meta["model"]["architecture"]["dtype"] = "float32"


def set_activation_in_a_list(meta):
    meta["model"]["architecture"]["layers"][0]["config"]["activation"] = "tanh"


def append_to_a_list(meta):
    meta["extra"]["tags"].append("edited")


def set_a_null(meta):
    meta["extra"]["note"] = "now set"


def set_the_schedule_to_null(meta):
    meta["schedule"] = None


def add_a_key(meta):
    meta["extra"]["trainer"]["epochs_total"] = 9


def remove_a_key(meta):
    del meta["extra"]["trainer"]["history"]


def edit_a_history_row(meta):
    meta["extra"]["trainer"]["history"][1]["loss"] = 0.0


def set_tensors_sha256(meta):
    meta["tensors"]["sha256"] = "0" * 64


def set_created(meta):
    meta["created"] = "2000-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (set_epochs_done, "extra.trainer.epochs_done"),
        (set_step, "model.step"),
        (set_learning_rate, "optimizer.base.lr"),
        (set_best, "extra.best"),
        (set_stop_training, "extra.trainer.stop_training"),
        (set_version_string, "annlens_version"),
        (set_dtype, "model.architecture.dtype"),
        (set_activation_in_a_list, "model.architecture.layers"),
        (append_to_a_list, "extra.tags"),
        (set_a_null, "extra.note"),
        (set_the_schedule_to_null, "schedule"),
        (add_a_key, "extra.trainer.epochs_total (added)"),
        (remove_a_key, "extra.trainer.history (removed)"),
        (edit_a_history_row, "extra.trainer.history"),
        (set_tensors_sha256, "tensors.sha256"),
        (set_created, "created"),
    ],
)
def test_an_edited_field_is_refused_and_named(saved, edit, named):
    meta = read_meta(saved)
    edit(meta)
    write_meta(saved, meta)

    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(saved)

    message = str(caught.value)
    assert str(saved) in message and "meta.json does not match the sha256" in message
    assert f"changed since it was saved: {named}" in message
    assert "nothing was loaded" in message


def test_only_the_deepest_changed_names_are_listed(saved):
    meta = read_meta(saved)
    set_epochs_done(meta)
    write_meta(saved, meta)

    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(saved)

    assert str(caught.value).count("extra") == 1


def test_an_edited_checkpoint_leaves_the_model_untouched(saved):
    meta = read_meta(saved)
    set_step(meta)
    write_meta(saved, meta)
    model = make_model(seed=5)
    before = weights(model)

    with pytest.raises(CheckpointError, match="model.step"):
        restore(saved, model)

    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    assert model.state.step == 0


# -- edits of the record itself -------------------------------------------------------


def test_an_altered_recorded_sha256_is_refused(saved):
    meta = read_meta(saved)
    meta["integrity"]["sha256"] = "0" * 64
    write_meta(saved, meta)

    with pytest.raises(CheckpointError, match="no longer gives the recorded sha256"):
        load_checkpoint(saved)


def test_an_edit_with_its_part_digests_updated_is_still_refused(saved):
    from annlens.io.checkpoint_integrity import part_digests

    meta = read_meta(saved)
    set_epochs_done(meta)
    body = {key: value for key, value in meta.items() if key != "integrity"}
    meta["integrity"]["parts"] = part_digests(body)
    write_meta(saved, meta)

    with pytest.raises(CheckpointError, match="no longer gives the recorded sha256"):
        load_checkpoint(saved)


def test_altered_part_digests_are_refused(saved):
    meta = read_meta(saved)
    meta["integrity"]["parts"]["model.step"] = "0" * 16
    write_meta(saved, meta)

    with pytest.raises(CheckpointError, match="part digests of model.step were"):
        load_checkpoint(saved)


def test_a_removed_record_is_refused(saved):
    meta = read_meta(saved)
    del meta["integrity"]
    write_meta(saved, meta)

    with pytest.raises(CheckpointError, match="lacks its 'integrity' record"):
        load_checkpoint(saved)


def test_a_damaged_record_is_refused(saved):
    meta = read_meta(saved)
    meta["integrity"] = {"algorithm": "md5", "sha256": "x", "parts": {}}
    write_meta(saved, meta)

    with pytest.raises(CheckpointError, match="'integrity' record.*is damaged"):
        load_checkpoint(saved)


def test_a_format_version_no_annlens_wrote_is_refused(saved):
    meta = read_meta(saved)
    meta["format_version"] = 0
    write_meta(saved, meta)

    with pytest.raises(CheckpointError, match="format version 0, which no annlens"):
        load_checkpoint(saved)


def test_a_sealed_meta_json_with_unreadable_layers_is_refused(saved):
    # as a foreign writer that seals its own meta.json might produce it
    from annlens.io.checkpoint_integrity import seal_meta

    meta = read_meta(saved)
    del meta["integrity"]
    meta["model"]["architecture"]["layers"] = "dense"
    write_meta(saved, seal_meta(meta))

    with pytest.raises(CheckpointError, match="no readable model.architecture"):
        load_checkpoint(saved)


# -- checkpoints of format version 1 --------------------------------------------------


def test_a_version_1_checkpoint_is_refused_with_the_way_to_upgrade(saved):
    make_version_1(saved)

    with pytest.raises(
        CheckpointError, match="format version 1.*no sha256 of its own.*upgrade_check"
    ):
        load_checkpoint(saved)


def test_an_edited_checkpoint_made_to_look_like_version_1_is_refused(saved):
    meta = read_meta(saved)
    set_epochs_done(meta)
    write_meta(saved, meta)
    make_version_1(saved)

    with pytest.raises(CheckpointError, match="format version 1"):
        load_checkpoint(saved)


def test_an_upgraded_version_1_checkpoint_loads_the_same_state(saved):
    tensors = (saved / "tensors.safetensors").read_bytes()
    make_version_1(saved)

    upgrade_checkpoint(saved)

    checkpoint = load_checkpoint(saved)
    assert checkpoint.meta["format_version"] == 2
    assert checkpoint.extra == EXTRA
    assert (saved / "tensors.safetensors").read_bytes() == tensors
    model = make_model(seed=9)
    restore(checkpoint, model)
    original = make_model(seed=1)
    for name, value in original.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name], value)


def test_an_edit_after_the_upgrade_is_refused(saved):
    make_version_1(saved)
    upgrade_checkpoint(saved)
    meta = read_meta(saved)
    set_epochs_done(meta)
    write_meta(saved, meta)

    with pytest.raises(CheckpointError, match="extra.trainer.epochs_done"):
        load_checkpoint(saved)


def test_a_version_1_checkpoint_with_altered_tensors_is_not_upgraded(saved):
    make_version_1(saved)
    tensors = saved / "tensors.safetensors"
    data = bytearray(tensors.read_bytes())
    data[-5] ^= 0xFF
    tensors.write_bytes(bytes(data))
    before = (saved / "meta.json").read_bytes()

    with pytest.raises(CheckpointError, match="does not match the sha256"):
        upgrade_checkpoint(saved)

    assert (saved / "meta.json").read_bytes() == before


def test_an_edited_current_checkpoint_is_not_resealed(saved):
    meta = read_meta(saved)
    set_epochs_done(meta)
    write_meta(saved, meta)
    before = (saved / "meta.json").read_bytes()

    with pytest.raises(CheckpointError, match="extra.trainer.epochs_done"):
        upgrade_checkpoint(saved)

    assert (saved / "meta.json").read_bytes() == before


def test_upgrading_a_current_checkpoint_changes_nothing(saved):
    before = (saved / "meta.json").read_bytes()

    assert upgrade_checkpoint(saved / "meta.json") == saved

    assert (saved / "meta.json").read_bytes() == before


def test_upgrading_where_there_is_no_checkpoint_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        upgrade_checkpoint(tmp_path / "missing")


# -- in a run -------------------------------------------------------------------------


def test_resuming_from_an_edited_last_checkpoint_is_refused(tmp_path):
    from annlens.experiment import resume_experiment, run_experiment
    from experiment_support import tiny

    run = run_experiment(tiny(), out=tmp_path)
    last = run.directory / "checkpoints" / "base-last"
    meta = read_meta(last)
    meta["extra"]["trainer"]["epochs_done"] = 1
    write_meta(last, meta)

    with pytest.raises(CheckpointError, match="extra.trainer.epochs_done"):
        resume_experiment(run.directory)
