"""Statistics of finite float32 values near the end of float32's range, and
the recorder's refusals of settings it cannot use."""

from __future__ import annotations

import numpy as np
import pytest

import annlens as al
from annlens.analysis.collectors.reductions import Reductions, histogram_counts
from annlens.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered")


def test_the_sum_of_squares_of_large_finite_float32_values_is_finite():
    x = np.full(64, 1e20, dtype=np.float32)

    stats = Reductions(x)

    assert stats.sumsq() == pytest.approx(64 * float(np.float32(1e20)) ** 2)
    assert np.isfinite(stats.var())


def test_a_sum_beyond_float32_range_is_taken_in_float64():
    x = np.array([3e38, 3e38, -1.0], dtype=np.float32)

    assert Reductions(x).sum() == pytest.approx(2 * float(np.float32(3e38)) - 1.0)


def test_a_histogram_spanning_more_than_float32_range_counts_every_value():
    x = np.array([3e38, -3e38, 0.0, 1.0], dtype=np.float32)

    counts = histogram_counts(x, float(x.min()), float(x.max()), 4)

    assert counts.tolist() == [1, 0, 2, 1]


def _extreme(layer, z):
    z = z.copy()
    z[0, 0], z[0, 1] = 3e38, -3e38
    return z


def test_the_recorder_summarises_values_spanning_float32_range_as_finite():
    model = al.Sequential([al.Dense(4, 8, "relu"), al.Dense(8, 2)], seed=0)
    model.register_hook("dense_1.pre_activation", _extreme, prepend=True)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)

    with al.Recorder(model, stats=["summary", "histograms"]) as recorder:
        model.forward(x)
    frame = recorder.to_dataframe()
    rows = frame[(frame.layer == "dense_1") & (frame.stage == "pre_activation")]

    assert np.isfinite(rows[rows.quantity.isin(["l2", "rms", "mean"])].value).all()


def test_a_recorder_needs_a_model():
    with pytest.raises(ConfigError, match="Recorder observes a model"):
        al.Recorder("m")


def test_a_layer_filter_that_selects_nothing_is_refused_with_a_suggestion():
    model = al.Sequential([al.Dense(4, 8), al.Dense(8, 2)], seed=0)

    with pytest.raises(ConfigError, match=r"selects none.*did you mean 'dense_1'"):
        al.Recorder(model, layers="dense_l")


def test_a_misspelt_name_in_a_layer_list_is_refused_not_dropped():
    model = al.Sequential([al.Dense(4, 8), al.Dense(8, 2)], seed=0)

    with pytest.raises(
        ConfigError, match=r"names 'dense_l', which is no layer.*did you mean 'dense_1'"
    ):
        al.Recorder(model, layers=["dense_0", "dense_l"])
    with al.Recorder(model, layers=["dense_0"]):
        alone = model.list_hooks()
    with al.Recorder(model, layers=["dense_0", "enc_*"]):  # a glob may match nothing
        assert model.list_hooks() == alone


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"keep_stages": ["forwrd"]}, "unknown stage 'forwrd'"),
        ({"keep_stages": "delta"}, "takes a list of stages"),
        ({"keep_bytes": -1}, "keep_bytes must be an integer >= 0, got -1"),
    ],
)
def test_keep_settings_that_cannot_work_are_refused(settings, message):
    model = al.Sequential([al.Dense(4, 2)], seed=0)

    with pytest.raises(ConfigError, match=message):
        al.Recorder(model, **settings)


def test_keep_stages_may_name_a_parameter():
    model = al.Sequential([al.Dense(4, 2)], seed=0)

    al.Recorder(model, keep_steps=[0], keep_stages=["gradient:W", "delta"])
