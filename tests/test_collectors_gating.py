"""Gating: a recorder pauses its hooks at steps where no collector reads them.

Between recorded steps no hook of the recorder runs (it watches the model's
step instead); what is recorded is the same as with every hook live.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from annlens.analysis.collectors import DeadUnits, GradCosine, Recorder, Summary
from annlens.analysis.collectors.snapshots import KeepTensors
from test_collectors import make_data, make_model, train


def activation_rows(frame: pd.DataFrame) -> pd.DataFrame:
    stages = ("pre_activation", "post_activation", "delta", "output")
    kept = frame[frame.stage.isin(stages)]
    return kept.sort_values(["step", "layer", "stage", "quantity"]).reset_index(
        drop=True
    )


def test_between_recorded_steps_no_layer_is_hooked(rng):
    model = make_model()
    Recorder(model, every=4, stats=["summary"]).attach()
    train(model, None, [make_data(rng) for _ in range(2)])  # steps 0 and 1
    # the model is at step 2 now, off the grid: every hook sleeps
    assert not any(layer.hooked for layer in model.layers)
    assert all(
        hook.paused for layer in model.layers for hook in layer.hook_table.hooks()
    )


def test_recorded_steps_open_every_hook_again(rng):
    model = make_model()
    Recorder(model, every=4, stats=["summary"]).attach()
    train(model, None, [make_data(rng) for _ in range(4)])  # steps 0 to 3
    # the model is at step 4 now, a recorded step
    assert all(layer.hooked for layer in model.layers)
    hooks = [hook for layer in model.layers for hook in layer.hook_table.hooks()]
    per_parameter = ("gradient", "update")
    # activations and deltas are read; parameter rows wait for step 10
    assert not any(h.paused for h in hooks if h.stage.name not in per_parameter)
    assert all(h.paused for h in hooks if h.stage.name in per_parameter)


def test_a_sampled_recorder_writes_what_an_every_step_recorder_writes_there(rng):
    model = make_model()
    dense = Recorder(model, every=1, stats=["summary", "dead_units"]).attach()
    sampled = Recorder(model, every=3, stats=["summary", "dead_units"]).attach()
    train(model, None, [make_data(rng) for _ in range(7)])

    every_step = dense.to_dataframe()
    expected = activation_rows(every_step[every_step.step % 3 == 0])
    got = activation_rows(sampled.to_dataframe())

    assert sorted(got.step.unique()) == [0, 3, 6]
    pd.testing.assert_frame_equal(got, expected)


def test_the_gradient_cosine_reads_the_step_before_each_recorded_step(rng):
    model = make_model()
    recorder = Recorder(
        model, every=3, parameter_every=1, stats=[GradCosine()]
    ).attach()
    train(model, None, [make_data(rng) for _ in range(7)])
    frame = recorder.to_dataframe()
    cosine = frame[frame.quantity == "grad_cosine"]
    # step 0 has no step before it; steps 3 and 6 have theirs
    assert sorted(cosine.step.unique()) == [3, 6]
    assert np.all(np.abs(cosine.value) <= 1.0)


def test_the_cosine_of_a_sampled_recorder_equals_the_every_step_one(rng):
    model = make_model()
    dense = Recorder(model, every=1, parameter_every=1, stats=[GradCosine()]).attach()
    sampled = Recorder(model, every=3, parameter_every=1, stats=[GradCosine()]).attach()
    train(model, None, [make_data(rng) for _ in range(7)])
    every_step = dense.to_dataframe()
    expected = every_step[every_step.step.isin([3, 6])].reset_index(drop=True)
    got = sampled.to_dataframe().reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)


def test_dead_units_over_all_steps_listens_between_recorded_steps(rng):
    model = make_model()
    x, y = make_data(rng)
    sampled = DeadUnits()
    every_step = DeadUnits(all_steps=True)
    Recorder(model, every=5, stats=[sampled]).attach()
    Recorder(model, every=5, stats=[every_step]).attach()
    train(model, None, [(x, y)] * 3)
    # step 0 only, for the sampled one; steps 0, 1, 2 for the other
    assert sampled._alive.keys() == every_step._alive.keys() == {"dense_0"}
    assert every_step.listens_at(1, None) and not sampled.listens_at(1, None)


def test_kept_tensors_are_kept_at_chosen_steps_off_the_grid(rng):
    model = make_model()
    keep = KeepTensors(steps=[2], stages=("pre_activation",))
    recorder = Recorder(model, every=10, stats=[Summary(), keep]).attach()
    batches = [make_data(rng) for _ in range(3)]
    train(model, None, batches)
    kept = recorder.tensors()
    assert sorted(kept) == [
        (2, "dense_0", "pre_activation"),
        (2, "dense_1", "pre_activation"),
        (2, "dense_2", "pre_activation"),
    ]
    z = model.layers[0].cache[1]  # the last forward was step 2's
    np.testing.assert_array_equal(kept[(2, "dense_0", "pre_activation")], z)


def test_detaching_a_sampled_recorder_leaves_no_hook_and_no_paused_state(rng):
    model = make_model()
    recorder = Recorder(model, every=4).attach()
    train(model, None, [make_data(rng) for _ in range(2)])
    recorder.detach()
    assert not any(layer.hooked for layer in model.layers)
    assert all(len(layer.hook_table) == 0 for layer in model.layers)

    recorder.attach()
    train(model, None, [make_data(rng)])
    assert len(recorder.to_dataframe()) > 0


def test_a_recorder_attached_off_the_grid_sleeps_until_its_next_step(rng):
    model = make_model()
    train(model, None, [make_data(rng)])  # the model is at step 1
    recorder = Recorder(model, every=2, stats=["summary"]).attach()
    assert not any(layer.hooked for layer in model.layers)
    train(model, None, [make_data(rng) for _ in range(2)])  # steps 1 and 2
    assert sorted(recorder.to_dataframe().step.unique()) == [2]


def test_a_new_epoch_opens_the_parameter_hooks_at_its_first_recorded_step(rng):
    model = make_model()
    recorder = Recorder(model, every=1, parameter_every=100, stats=["summary"])
    recorder.attach()
    train(model, None, [make_data(rng) for _ in range(3)], epochs=2)
    frame = recorder.to_dataframe()
    # step 3 starts epoch 1: the epoch changes after the step, and the gates follow
    assert sorted(frame[frame.stage == "gradient:W"].step.unique()) == [0, 3]
