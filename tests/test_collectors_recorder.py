"""The Recorder: when it records, what it keeps, its tables, its state and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from annlens import Dense, Sequential
from annlens.analysis.collectors import (
    HISTOGRAM_COLUMNS,
    SPECTRA_COLUMNS,
    STATS_COLUMNS,
    LossValue,
    Recorder,
    Reductions,
    Summary,
)
from annlens.analysis.collectors.base import Collector
from annlens.analysis.collectors.tables import encode_floats
from annlens.errors import ConfigError, HookError, StateError, UnknownNameError
from annlens.optim import SGD
from test_collectors import Captured, _Loss, make_data, make_model, train


def step(model, optimizer, x, y):
    output = model.forward(x)
    _, grad = model.loss(_Loss(), output, y)
    model.backward(grad)
    optimizer.step()


def test_rows_are_written_at_multiples_of_every(rng):
    model = make_model()
    recorder = Recorder(model, every=3, stats=["summary"]).attach()
    train(model, recorder, [make_data(rng) for _ in range(7)])
    assert sorted(recorder.to_dataframe().step.unique()) == [0, 3, 6]


def test_parameter_rows_follow_their_own_grid_and_each_epoch_start(rng):
    model = make_model()
    recorder = Recorder(model, every=2, parameter_every=3, stats=["summary"]).attach()
    train(model, recorder, [make_data(rng) for _ in range(8)], epochs=2)
    frame = recorder.to_dataframe()
    steps = sorted(frame[frame.stage == "gradient:W"].step.unique())
    assert steps == [0, 6, 8, 12]  # the grid of 6, and step 8 starts epoch 1
    assert sorted(frame[frame.stage == "delta"].step.unique()) == list(range(0, 16, 2))


def test_evaluation_and_no_grad_passes_are_not_recorded(rng):
    model = make_model()
    recorder = Recorder(model, stats=["summary"]).attach()
    x, _ = make_data(rng)
    model.predict(x)
    with model.no_grad():
        model.forward(x)
    assert len(recorder.to_dataframe()) == 0


def test_a_second_pass_at_the_same_step_replaces_the_first(rng):
    model = make_model()
    recorder = Recorder(model, stats=[Summary(stages=("pre_activation",))]).attach()
    first, second = make_data(rng)[0], make_data(rng)[0]
    model.forward(first)
    model.forward(second)
    frame = recorder.to_dataframe()
    rows = frame[(frame.layer == "dense_0") & (frame.quantity == "max")]
    z = second @ model.layers[0].params["W"] + model.layers[0].params["b"]
    assert len(rows) == 1
    assert rows.value.iloc[0] == pytest.approx(z.max())


def test_statistics_table_has_the_schema_columns_and_types(rng):
    model = make_model()
    recorder = Recorder(model, variant="base").attach()
    train(model, recorder, [make_data(rng) for _ in range(2)])
    frame = recorder.to_dataframe()
    assert tuple(frame.columns) == STATS_COLUMNS
    assert frame.step.dtype == np.int64 and frame.epoch.dtype == np.int64
    assert frame.value.dtype == np.float64
    assert set(frame.variant) == {"base"}
    assert tuple(recorder.histograms().columns) == HISTOGRAM_COLUMNS
    assert tuple(recorder.spectra().columns) == SPECTRA_COLUMNS


def test_rows_are_sorted_by_step_then_layer_order(rng):
    model = make_model()
    recorder = Recorder(model).attach()
    train(model, recorder, [make_data(rng) for _ in range(2)])
    frame = recorder.to_dataframe()
    assert frame.step.is_monotonic_increasing
    assert frame.attrs["layer_order"] == ["dense_0", "dense_1", "dense_2", "model"]
    first_step = frame[frame.step == 0]
    assert list(dict.fromkeys(first_step.layer)) == [
        "dense_0",
        "dense_1",
        "dense_2",
        "model",
    ]


def test_default_stats_write_every_documented_quantity(rng):
    model = make_model()
    recorder = Recorder(model).attach()
    train(model, recorder, [make_data(rng) for _ in range(3)], epochs=2)
    quantities = set(recorder.to_dataframe().quantity)
    expected = {
        "mean", "std", "var", "min", "max", "l2", "rms", "mean_abs",
        "q01", "q05", "q25", "q50", "q75", "q95", "q99",
        "dead_fraction", "dead_epoch_fraction", "saturated_fraction",
        "drift", "drift_relative", "update_ratio", "grad_cosine", "grad_noise",
        "sv_max", "sv_min", "effective_rank", "loss", "grad_norm",
    }  # fmt: skip
    assert quantities == expected


def test_layer_filter_limits_per_layer_rows(rng):
    model = make_model()
    recorder = Recorder(model, stats=["summary", "loss"], layers="dense_1").attach()
    train(model, recorder, [make_data(rng)])
    assert set(recorder.to_dataframe().layer) == {"dense_1", "model"}


def test_log_adds_a_model_row_at_the_current_step(rng):
    model = make_model()
    recorder = Recorder(model, stats=["loss"])
    model.state.step, model.state.epoch = 7, 2
    recorder.log("accuracy", 0.75)
    row = recorder.to_dataframe().iloc[0]
    assert (row.step, row.epoch, row.layer, row.stage, row.quantity, row.value) == (
        7, 2, "model", "model", "accuracy", 0.75,
    )  # fmt: skip


def test_detach_removes_every_hook_and_keeps_the_tables(rng):
    model = make_model()
    with Recorder(model) as recorder:
        assert model.list_hooks()
        train(model, recorder, [make_data(rng)])
    assert model.list_hooks() == []
    assert len(recorder.to_dataframe()) > 0
    assert not recorder.attached


def test_attaching_twice_is_refused():
    recorder = Recorder(make_model()).attach()
    with pytest.raises(StateError, match="already attached"):
        recorder.attach()


def test_unknown_collector_name_is_refused_with_a_suggestion():
    with pytest.raises(UnknownNameError, match="did you mean 'summary'"):
        Recorder(make_model(), stats=["sumary"])


def test_every_must_be_a_positive_integer():
    with pytest.raises(ConfigError, match="every"):
        Recorder(make_model(), every=0)


def test_the_same_collector_twice_is_refused():
    with pytest.raises(ConfigError, match="more than once"):
        Recorder(make_model(), stats=["summary", Summary()])


def test_kept_tensors_are_copies_at_the_named_steps(rng):
    model = make_model()
    recorder = Recorder(model, stats=["loss"], keep_steps=[1], keep_stages=["delta"])
    recorder.attach()
    captured = Captured(model)
    train(model, recorder, [make_data(rng) for _ in range(3)])
    kept = recorder.tensors()
    assert set(kept) == {
        (1, name, "delta") for name in ("dense_0", "dense_1", "dense_2")
    }
    np.testing.assert_array_equal(
        kept[(1, "dense_1", "delta")], captured[(1, "dense_1", "delta")]
    )


def test_kept_tensors_past_the_budget_are_refused_with_a_warning(rng):
    model = make_model()
    budget = 16 * 8 * 8  # one (16, 8) float64 array
    recorder = Recorder(
        model, stats=["loss"], keep_steps=[0], keep_stages=["pre_activation"],
        keep_bytes=budget,
    ).attach()  # fmt: skip
    with pytest.warns(RuntimeWarning, match="refused"):
        train(model, recorder, [make_data(rng) for _ in range(2)])
    assert list(recorder.tensors()) == [(0, "dense_0", "pre_activation")]
    assert any(r.quantity == "loss" for r in recorder.to_dataframe().itertuples())
    assert recorder.nbytes() > budget


def as_json(value):
    """Arrays (table columns, the gradient cosine's latest gradients) as lists,
    NaN and infinities spelt as strings; the rest is JSON already."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            return [encode_floats(row) for row in np.atleast_2d(value)]
        return value.tolist()
    raise TypeError(f"not JSON: {type(value).__name__}")


def test_state_dict_is_json_and_restores_the_tables(rng):
    model = make_model()
    recorder = Recorder(model, variant="v").attach()
    train(model, recorder, [make_data(rng) for _ in range(3)], epochs=2)
    text = json.dumps(recorder.state_dict(), allow_nan=False, default=as_json)

    restored = Recorder(make_model(), variant="v")
    restored.load_state_dict(json.loads(text))
    before, after = recorder.to_dataframe(), restored.to_dataframe()
    assert before.drop(columns="value").equals(after.drop(columns="value"))
    np.testing.assert_array_equal(before.value.to_numpy(), after.value.to_numpy())
    assert restored.histograms().equals(recorder.histograms())
    assert restored.spectra().equals(recorder.spectra())


def test_loaded_state_lets_epoch_accumulators_continue(rng):
    model = make_model()
    recorder = Recorder(model, stats=["drift"]).attach()
    train(model, recorder, [make_data(rng)], epochs=1)
    restored = Recorder(model, stats=["drift"])
    restored.load_state_dict(
        json.loads(json.dumps(recorder.state_dict(), default=as_json))
    )
    recorder.detach()
    restored.attach()
    model.state.epoch = 1
    step(model, SGD(model, lr=0.1), *make_data(rng))
    restored.end_epoch(1)
    assert "drift" in set(restored.to_dataframe().quantity)


def test_loading_a_foreign_state_is_refused():
    recorder = Recorder(make_model())
    with pytest.raises(ConfigError, match="format"):
        recorder.load_state_dict({"format": "something else"})


def test_loading_state_with_unknown_collectors_changes_nothing(rng):
    model = make_model()
    full = Recorder(model).attach()
    train(model, full, [make_data(rng)])
    lean = Recorder(make_model(), stats=[LossValue()])
    with pytest.raises(ConfigError, match="does not have"):
        lean.load_state_dict(full.state_dict())
    assert len(lean.to_dataframe()) == 0


def test_what_is_kept_per_step_does_not_grow_with_layer_width(rng):
    sizes = []
    for width in (40, 400):
        model = Sequential(
            [Dense(6, width, "relu"), Dense(width, 3)], seed=0, dtype="float64"
        )
        recorder = Recorder(model).attach()
        train(model, recorder, [make_data(rng) for _ in range(5)], epochs=2)
        sizes.append((len(recorder.stats), len(recorder.histograms())))
    assert sizes[0] == sizes[1]


def test_layers_without_activation_stages_report_their_output(rng):
    from annlens.layers import BatchNorm

    model = Sequential(
        [Dense(6, 8, "relu"), BatchNorm(), Dense(8, 3)], seed=0, dtype="float64"
    )
    recorder = Recorder(model, stats=["summary"]).attach()
    captured: dict[str, np.ndarray] = {}
    model.register_hook(
        "forward", lambda layer, x, out: captured.__setitem__(layer.name, out.copy())
    )
    train(model, recorder, [make_data(rng)])
    frame = recorder.to_dataframe()
    rows = frame[(frame.layer == "batchnorm_0") & (frame.stage == "output")]
    mean = rows[rows.quantity == "mean"].value.iloc[0]
    assert mean == pytest.approx(captured["batchnorm_0"].mean(), abs=1e-12)
    assert "output" not in set(frame[frame.layer == "dense_0"].stage)
    assert "grad_output" in set(frame[frame.layer == "batchnorm_0"].stage)


def test_variance_is_recomputed_when_the_one_pass_formula_would_cancel():
    x = (1e4 + np.random.default_rng(0).normal(size=1000)).astype(np.float32)
    assert Reductions(x).var() == pytest.approx(x.astype(np.float64).var(), rel=1e-5)


def test_repr_says_what_the_recorder_holds():
    recorder = Recorder(make_model(), every=5, stats=["loss"], variant="a")
    assert repr(recorder) == (
        "Recorder(every=5, parameter_every=10, variant='a', stats=[loss]; "
        "detached, 0 rows)"
    )


def test_epoch_rows_under_trainer_fit_need_the_end_epoch_callback_readme_names():
    from pathlib import Path

    import annlens as al
    from annlens.experiment.callbacks import EndEpoch

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)), rng.integers(0, 3, 32)

    def epoch_rows(with_callback: bool) -> int:
        model = al.Sequential([al.Dense(4, 8, "relu"), al.Dense(8, 3)], seed=0)
        recorder = al.Recorder(model)
        callbacks = [EndEpoch(recorder)] if with_callback else []
        trainer = al.Trainer(
            model,
            al.SoftmaxCrossEntropy(),
            al.SGD(model, lr=0.1),
            batch_size=16,
            epochs=2,
            callbacks=callbacks,
        )
        with recorder:
            trainer.fit(x, y)
        frame = recorder.to_dataframe()
        return int((frame["quantity"] == "dead_epoch_fraction").sum())

    assert epoch_rows(False) == 0
    assert epoch_rows(True) > 0
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "callbacks=[EndEpoch(recorder)]" in readme


@pytest.mark.parametrize(
    ("steps", "match"),
    [
        ("12", "keep_steps takes a list of steps, got '12'"),
        ([0.5], r"entries must be integers >= 0 \(optimizer steps\), got 0.5"),
        ([-1], r"got -1 in \[-1\]"),
        ([True], "got True"),
    ],
)
def test_keep_steps_that_are_not_step_numbers_are_refused(steps, match):
    model = Sequential([Dense(4, 3)], seed=0)
    with pytest.raises(ConfigError, match=match):
        Recorder(model, keep_steps=steps)


class _AsksFor(Collector):
    """A collector asking for a given stage at one layer and delta elsewhere."""

    name = "asks_for"

    def __init__(self, layer: str, stage: str) -> None:
        self.layer, self.stage = layer, stage

    def stages(self, layer):
        return [self.stage] if layer.name == self.layer else ["delta"]


@pytest.mark.parametrize(
    ("stage", "match"),
    [
        ("dleta", r"'dleta' at layer 'dense_1' \(did you mean 'delta'\?\)"),
        ("gradient:V", "'gradient:V' at layer 'dense_1'"),
        ("gradient", "'gradient' at layer 'dense_1'"),
        ("model", "'model' at layer 'dense_1'"),
    ],
)
def test_a_collector_asking_for_a_stage_a_layer_lacks_is_refused_leaving_no_hook(
    stage, match
):
    model = make_model()
    recorder = Recorder(model, stats=["summary", _AsksFor("dense_1", stage)])
    with pytest.raises(ConfigError, match=match):
        with recorder:
            pass
    assert not recorder.attached
    assert model.list_hooks() == []
    assert not any(layer.hooked for layer in model.layers)


class _ShortRow(Collector):
    name = "short_row"

    def stages(self, layer):
        return ["post_activation"]

    def observe(self, obs, recorder):
        recorder.stats.add(obs.step, obs.epoch, obs.name, obs.stage, ("a", "b"), [1.0])


def test_a_row_with_fewer_values_than_quantities_is_refused(rng):
    model = make_model()
    x, _ = make_data(rng)
    with Recorder(model, stats=[_ShortRow()]) as recorder:
        with pytest.raises(HookError) as caught:
            model.forward(x)
    assert isinstance(caught.value.__cause__, ConfigError)
    assert "names 2 quantities ['a', 'b'] but gives 1 values" in str(caught.value)
    assert len(recorder.to_dataframe()) == 0


@pytest.mark.parametrize(
    ("quantity", "value", "match"),
    [
        ("accuracy", {"train": 0.5}, r"log\('accuracy', \.\.\.\) takes one number"),
        ("accuracy", "high", "takes one number, got 'high'"),
        (5, 0.5, "quantity must be a non-empty string, got 5"),
    ],
)
def test_log_refuses_what_is_not_one_named_number(quantity, value, match):
    recorder = Recorder(make_model())
    with pytest.raises(ConfigError, match=match):
        recorder.log(quantity, value)
    assert len(recorder.to_dataframe()) == 0
    recorder.log("accuracy", np.float32(0.5), step=3)
    assert recorder.to_dataframe()["value"].tolist() == [0.5]
