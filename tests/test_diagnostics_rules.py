"""Each diagnostic rule on small hand-made statistics tables.

The tables follow the schema of :mod:`annlens.analysis.collectors`; each test
builds only the rows its rule reads and checks when the rule fires, what it
measures and what it reports.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from annlens.analysis.diagnostics import (
    FINDING_COLUMNS,
    DiagnosticSettings,
    Finding,
    diagnose,
    findings_frame,
)
from annlens.errors import ConfigError, DataError, UnknownNameError

COLUMNS = ["step", "epoch", "variant", "layer", "stage", "quantity", "value"]


def rows(layer, stage, quantity, values, variant="", start=0):
    return [
        (start + i, 0, variant, layer, stage, quantity, float(v))
        for i, v in enumerate(values)
    ]


def table(*parts) -> pd.DataFrame:
    return pd.DataFrame([r for part in parts for r in part], columns=COLUMNS)


def deltas(first, last, steps=10, middle=None):
    """Delta l2 rows for three layers with the given first and last norms."""
    middle = math.sqrt(first * last) if middle is None else middle
    return [
        rows("dense_0", "delta", "l2", [first] * steps),
        rows("dense_1", "delta", "l2", [middle] * steps),
        rows("dense_2", "delta", "l2", [last] * steps),
    ]


def loss_rows(values):
    return rows("model", "model", "loss", values)


def only(findings, rule):
    chosen = [f for f in findings if f.rule == rule]
    assert len(chosen) == 1, [str(f) for f in findings]
    return chosen[0]


def test_vanishing_fires_below_the_ratio_and_measures_squared_norms():
    finding = only(diagnose(table(*deltas(0.01, 1.0))), "vanishing_gradients")
    assert finding.measured == pytest.approx(1e-4)
    assert finding.layers == ("dense_0", "dense_1", "dense_2")
    assert finding.step_range == (0, 9)


def test_vanishing_does_not_fire_for_a_level_gradient():
    assert diagnose(table(*deltas(0.5, 1.0))) == []


def test_a_condition_at_a_minority_of_steps_does_not_fire():
    good = deltas(1.0, 1.0, steps=10)
    bad = [
        rows("dense_0", "delta", "l2", [1e-4] * 3, start=10),
        rows("dense_1", "delta", "l2", [1e-2] * 3, start=10),
        rows("dense_2", "delta", "l2", [1.0] * 3, start=10),
    ]
    assert diagnose(table(*good, *bad)) == []


def test_vanishing_falls_back_to_grad_output_without_deltas():
    parts = [
        rows("bn_0", "grad_output", "l2", [1e-3] * 6),
        rows("bn_1", "grad_output", "l2", [1.0] * 6),
    ]
    finding = only(diagnose(table(*parts)), "vanishing_gradients")
    assert "grad_output" in finding.definition


def three_layers(stage, quantity, values, steps=10):
    return [
        rows(f"dense_{i}", stage, quantity, [v] * steps) for i, v in enumerate(values)
    ]


def test_vanishing_blames_a_layer_whose_units_are_all_dead():
    dead = three_layers("post_activation", "dead_fraction", [0.1, 1.0, 0.0])
    finding = only(diagnose(table(*deltas(0.0, 1.0), *dead)), "vanishing_gradients")
    assert "Every unit of dense_1 is dead" in finding.message
    assert "saturated" not in finding.message


def test_vanishing_blames_a_layer_whose_units_are_almost_all_dead():
    # A ReLU layer with 99% of its units dead also shrinks the forward
    # variance; the dead units, not the initial scale, are the cause.
    dead = three_layers("post_activation", "dead_fraction", [0.0, 0.99, 0.0])
    variance = three_layers("post_activation", "var", [1.0, 1e-6, 1.0])
    finding = only(
        diagnose(table(*deltas(1e-4, 1.0), *dead, *variance)), "vanishing_gradients"
    )
    assert "Almost every unit of dense_1 is dead" in finding.message
    assert "99%" in finding.message
    assert "initial weights are too small" not in finding.message


def test_vanishing_blames_pre_activations_that_are_mostly_negative():
    # Leaky ReLU with a bias of -5: units on the small negative slope shrink
    # the forward variance too, but the weights are not the cause.
    mean = three_layers("pre_activation", "mean", [-5.0, -5.0, 0.0])
    spread = three_layers("pre_activation", "std", [1.0, 0.1, 1.0])
    variance = three_layers("post_activation", "var", [1e-2, 1e-6, 1.0])
    finding = only(
        diagnose(table(*deltas(1e-4, 1.0), *mean, *spread, *variance)),
        "vanishing_gradients",
    )
    assert "pre-activations of dense_0, dense_1 are mostly negative" in finding.message
    assert "initial weights are too small" not in finding.message


def test_vanishing_blames_saturated_units_where_most_are_saturated():
    saturated = three_layers("pre_activation", "saturated_fraction", [0.8, 0.6, 0.1])
    spread = three_layers("pre_activation", "std", [6.0, 5.0, 1.0])
    finding = only(
        diagnose(table(*deltas(0.01, 1.0), *saturated, *spread)), "vanishing_gradients"
    )
    assert "Most units of dense_0, dense_1 are saturated" in finding.message


def test_vanishing_blames_small_weights_when_pre_activations_are_small():
    # sigmoid or tanh units near z = 0: not saturated, the slope is at its peak
    saturated = three_layers("pre_activation", "saturated_fraction", [0.0, 0.0, 0.0])
    spread = three_layers("pre_activation", "std", [0.05, 0.02, 0.01])
    variance = three_layers("post_activation", "var", [1e-4, 1e-4, 1e-4])
    finding = only(
        diagnose(table(*deltas(0.01, 1.0), *saturated, *spread, *variance)),
        "vanishing_gradients",
    )
    assert "initial weights are too small" in finding.message
    assert "not saturated" in finding.message


def test_vanishing_without_other_evidence_blames_the_derivative():
    spread = three_layers("pre_activation", "std", [1.0, 1.0, 1.0])
    variance = three_layers("post_activation", "var", [0.1, 0.1, 0.1])
    finding = only(
        diagnose(table(*deltas(0.01, 1.0), *spread, *variance)), "vanishing_gradients"
    )
    assert "lost in the activation's derivative" in finding.message


def test_exploding_across_depth_fires_above_the_ratio():
    finding = only(diagnose(table(*deltas(1e3, 1.0))), "exploding_gradients")
    assert finding.measured == pytest.approx(1e6)
    assert finding.definition.startswith("across depth")
    assert finding.severity == "warning"


def test_exploding_across_depth_is_critical_beyond_the_squared_ratio():
    finding = only(diagnose(table(*deltas(3e8, 1.0))), "exploding_gradients")
    assert finding.measured == pytest.approx(9e16)
    assert finding.severity == "critical"


def test_exploding_over_time_compares_late_and_early_gradient_norms():
    norms = [0.1] * 10 + [500.0] * 10
    finding = only(
        diagnose(table(rows("model", "model", "grad_norm", norms))),
        "exploding_gradients",
    )
    assert finding.definition.startswith("over time")
    assert finding.measured == pytest.approx(5000)


def test_exploding_by_size_fires_on_a_norm_over_the_bound():
    norms = [1.0] * 9 + [5e3] + [1.0] * 10
    finding = only(
        diagnose(table(rows("model", "model", "grad_norm", norms))),
        "exploding_gradients",
    )
    assert finding.definition.startswith("by size")
    assert finding.step_range == (9, 9)
    assert finding.measured == 5e3


def test_the_global_norm_is_rebuilt_from_parameter_gradients_when_absent():
    parts = [
        rows("dense_0", "gradient:W", "l2", [3e3] * 6),
        rows("dense_0", "gradient:b", "l2", [4e3] * 6),
    ]
    finding = only(diagnose(table(*parts)), "exploding_gradients")
    assert finding.measured == pytest.approx(5e3)


def test_dead_units_for_the_batch_and_the_epoch_are_separate_findings():
    parts = [
        rows("dense_0", "post_activation", "dead_fraction", [0.7] * 8),
        rows("dense_1", "post_activation", "dead_fraction", [0.1] * 8),
        rows("dense_1", "post_activation", "dead_epoch_fraction", [0.3], start=7),
    ]
    dead = [f for f in diagnose(table(*parts)) if f.rule == "dead_units"]
    by_definition = {f.definition.split(":")[0]: f for f in dead}
    assert by_definition["dead for the batch"].layers == ("dense_0",)
    assert by_definition["dead for the batch"].measured == pytest.approx(0.7)
    assert by_definition["dead for the epoch"].layers == ("dense_1",)
    assert by_definition["dead for the epoch"].step_range == (7, 7)
    assert by_definition["dead for the batch"].severity == "warning"


def test_saturated_units_fire_above_the_fraction():
    parts = [rows("dense_0", "pre_activation", "saturated_fraction", [0.95] * 6)]
    finding = only(diagnose(table(*parts)), "saturated_units")
    assert finding.severity == "critical"
    assert finding.evidence["median_saturated_fraction"] == {"dense_0": 0.95}


@pytest.mark.parametrize(("ratio", "bound"), [(1e-7, 1e-5), (0.5, 1e-1)])
def test_update_ratio_fires_far_from_one_in_a_thousand(ratio, bound):
    parts = [
        rows("dense_0", "update:W", "update_ratio", [ratio] * 6),
        rows("dense_0", "update:b", "update_ratio", [math.inf] * 6),
    ]
    finding = only(diagnose(table(*parts)), "update_ratio")
    assert finding.threshold == bound
    assert finding.measured == pytest.approx(ratio)
    assert finding.layers == ("dense_0",)


def test_update_ratio_near_one_in_a_thousand_is_fine():
    parts = [rows("dense_0", "update:W", "update_ratio", [1e-3] * 6)]
    assert diagnose(table(*parts)) == []


def test_a_gradient_norm_above_the_bound_at_one_step_is_counted_in_the_singular():
    norms = rows("model", "model", "grad_norm", [1.0, 1.0, 5e3, 1.0, 1.0])
    finding = only(diagnose(table(norms)), "exploding_gradients")
    assert "at 1 recorded step)" in finding.message
    twice = rows("model", "model", "grad_norm", [1.0, 5e3, 5e3, 1.0, 1.0])
    finding = only(diagnose(table(twice)), "exploding_gradients")
    assert "at 2 recorded steps)" in finding.message


def test_a_rising_loss_is_diverging():
    finding = only(
        diagnose(table(loss_rows(np.linspace(2.0, 6.0, 20)))), "diverging_loss"
    )
    assert finding.severity == "critical"
    assert finding.measured > 0.1


def test_a_loss_that_gives_back_its_progress_is_diverging():
    values = np.concatenate([np.linspace(2.0, 0.2, 20), np.linspace(0.2, 1.8, 20)])
    finding = only(diagnose(table(loss_rows(values))), "diverging_loss")
    assert "progress" in finding.definition
    assert finding.measured > 0.5


def test_a_loss_that_keeps_falling_is_fine():
    assert diagnose(table(loss_rows(2.0 * np.exp(-np.arange(40) / 8)))) == []


def test_a_loss_that_never_moves_is_flat_and_not_a_plateau():
    noise = 0.001 * np.random.default_rng(0).normal(size=30)
    findings = diagnose(table(loss_rows(2.3 + noise)))
    assert rules_of(findings) == {"flat_loss"}


def test_a_noisy_loss_that_never_descends_is_flat_and_not_a_plateau():
    # Per-batch losses of a run that does not learn (SGD with lr=1e-7): the
    # means over 20 batches move by about 4%, above the 1% tolerance.
    values = 2.3 + 0.41 * np.random.default_rng(0).standard_normal(200)
    findings = diagnose(table(loss_rows(values)))
    assert "plateau" not in rules_of(findings)
    finding = only(findings, "flat_loss")
    assert finding.measured < finding.threshold
    assert finding.threshold > 0.01


def test_a_noisy_loss_that_descends_then_stalls_is_a_plateau_not_flat():
    noise = 0.02 * np.random.default_rng(0).standard_normal(200)
    values = np.concatenate([np.linspace(2.3, 1.6, 40), np.full(160, 1.6)]) + noise
    findings = diagnose(table(loss_rows(values)))
    assert "flat_loss" not in rules_of(findings)
    assert only(findings, "plateau").step_range[0] >= 39


def test_a_long_stall_at_a_high_loss_is_a_plateau():
    values = np.concatenate(
        [np.linspace(2.3, 2.0, 10), np.full(20, 2.0), np.linspace(2.0, 0.1, 10)]
    )
    finding = only(diagnose(table(loss_rows(values))), "plateau")
    assert finding.step_range[0] >= 9
    assert finding.step_range[1] <= 31


def test_batch_noise_on_a_falling_loss_is_neither_divergence_nor_plateau():
    # Per-batch losses of a healthy run with dropout: a slow fall under noise
    # as large as the fall itself, recorded from the middle of training.
    rng = np.random.default_rng(3)
    values = np.linspace(0.38, 0.24, 24) + 0.09 * rng.standard_normal(24)
    frame = table(rows("model", "model", "loss", values, start=120))
    assert diagnose(frame) == []


def test_giving_back_a_tiny_fall_of_a_flat_loss_is_not_divergence():
    # A sigmoid network stuck near chance: 2.338 to 2.310, back to 2.331.
    values = np.concatenate(
        [np.linspace(2.338, 2.31, 30), np.linspace(2.31, 2.331, 30)]
    )
    assert "diverging_loss" not in rules_of(diagnose(table(loss_rows(values))))


def test_a_lucky_first_batch_of_a_level_loss_is_not_progress_given_back():
    # A network that does not learn (a tiny learning rate): the trailing mean
    # starts from a single low batch, which is not a best level to rise from.
    noise = 0.01 * np.random.default_rng(0).standard_normal(59)
    values = np.concatenate([[1.5], 2.3 + noise])
    assert "diverging_loss" not in rules_of(diagnose(table(loss_rows(values))))


def test_a_rising_loss_is_not_a_plateau_and_a_huge_rise_reads_as_a_ratio():
    values = np.concatenate([np.linspace(2.3, 2.4, 20), np.geomspace(2.4, 1e30, 20)])
    findings = diagnose(table(loss_rows(values)))
    assert "plateau" not in rules_of(findings)
    assert "times as high as" in only(findings, "diverging_loss").message


def test_a_stall_recorded_mid_training_counts_only_once_it_ends():
    converged = np.full(40, 0.3)
    stall_then_fall = np.concatenate([np.full(30, 0.9), np.linspace(0.9, 0.2, 20)])
    quiet = diagnose(table(rows("model", "model", "loss", converged, start=500)))
    loud = diagnose(table(rows("model", "model", "loss", stall_then_fall, start=500)))
    assert "plateau" not in rules_of(quiet)
    assert only(loud, "plateau").step_range[0] >= 500


def test_non_finite_values_report_the_first_layer_and_stage_in_the_flow():
    parts = [
        rows("dense_0", "pre_activation", "mean", [0.1, 0.2, 0.3]),
        rows("dense_1", "pre_activation", "mean", [0.1, math.nan, math.nan]),
        rows("dense_0", "delta", "l2", [1.0, math.inf, math.nan]),
        rows("dense_0", "gradient:W", "grad_cosine", [math.nan] * 3),
    ]
    finding = only(diagnose(table(*parts)), "non_finite")
    assert finding.layers == ("dense_1",)
    assert finding.step_range == (1, 2)
    assert finding.measured == 4
    assert "dense_1.pre_activation at step 1" in finding.message


def test_after_values_turn_non_finite_only_non_finite_reads_the_wreck():
    # a blow-up at step 3: before it the steps are huge, after it weights are
    # NaN, updates measure 0 and every unit reads as dead
    parts = [
        rows("dense_0", "pre_activation", "mean", [0.1, 5.0, 50.0] + [math.nan] * 7),
        rows("dense_0", "update:W", "update_ratio", [0.5, 0.8, 0.9] + [0.0] * 7),
        rows("dense_0", "post_activation", "dead_fraction", [0.0] * 3 + [1.0] * 7),
    ]
    findings = diagnose(table(*parts))

    assert rules_of(findings) == {"non_finite", "update_ratio"}
    ratio = only(findings, "update_ratio")
    assert "large fraction" in ratio.message
    assert ratio.measured == pytest.approx(0.8)
    assert ratio.step_range == (0, 2)


def test_variants_are_diagnosed_separately():
    parts = [
        rows("dense_0", "post_activation", "dead_fraction", [0.9] * 6, variant="bad"),
        rows("dense_0", "post_activation", "dead_fraction", [0.0] * 6, variant="good"),
    ]
    findings = diagnose(table(*parts))
    assert [(f.rule, f.variant) for f in findings] == [("dead_units", "bad")]


def test_findings_are_sorted_most_severe_first():
    parts = [
        *deltas(1e-3, 1.0),
        rows("dense_0", "update:W", "update_ratio", [1e-7] * 10),
    ]
    severities = [f.severity for f in diagnose(table(*parts))]
    assert severities == sorted(severities, key=["critical", "warning", "info"].index)


def test_settings_change_a_threshold():
    parts = [rows("dense_0", "post_activation", "dead_fraction", [0.3] * 6)]
    assert diagnose(table(*parts)) == []
    assert rules_of(diagnose(table(*parts), dead_batch=0.2)) == {"dead_units"}
    settings = DiagnosticSettings(dead_batch=0.2)
    assert rules_of(diagnose(table(*parts), settings=settings)) == {"dead_units"}


def test_an_unknown_setting_is_refused_with_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'dead_batch'"):
        diagnose(table(loss_rows([1.0] * 6)), dead_bach=0.2)


def test_a_threshold_must_be_positive():
    with pytest.raises(ConfigError, match="positive"):
        DiagnosticSettings(vanishing_ratio=0)


def test_rules_can_be_chosen_by_name():
    findings = diagnose(table(*deltas(0.01, 1.0)), rules=["dead_units"])
    assert findings == []
    with pytest.raises(UnknownNameError, match="diagnostic rule"):
        diagnose(table(*deltas(0.01, 1.0)), rules=["vanishing"])


def test_a_table_without_the_schema_columns_is_refused():
    with pytest.raises(DataError, match="lacks columns"):
        diagnose(pd.DataFrame({"step": [0], "value": [1.0]}))


def test_the_metrics_history_stands_in_for_a_missing_loss():
    metrics = pd.DataFrame(
        {"epoch": range(8), "train_loss": np.linspace(1.0, 5.0, 8), "variant": "v"}
    )
    stats = table(rows("dense_0", "delta", "l2", [1.0] * 3, variant="v"))
    finding = only(diagnose(stats, metrics), "diverging_loss")
    assert finding.variant == "v"


def test_a_finding_becomes_json_and_a_table_row():
    finding = only(diagnose(table(*deltas(0.01, 1.0))), "vanishing_gradients")
    data = json.loads(json.dumps(finding.to_dict(), allow_nan=False))
    assert data["rule"] == "vanishing_gradients"
    assert data["layers"] == ["dense_0", "dense_1", "dense_2"]
    assert data["steps"] == [0, 9] and data["value"] == pytest.approx(1e-4)
    frame = findings_frame([finding])
    assert tuple(frame.columns) == FINDING_COLUMNS
    assert frame.iloc[0].layers == "dense_0,dense_1,dense_2"


def test_a_finding_says_what_it_is():
    finding = Finding(
        "dead_units", "warning", "", ("dense_0",), (3, 9), 0.6, 0.5,
        "dead for the batch", "Many units are dead.", "Lower the rate.", "practice",
    )  # fmt: skip
    assert repr(finding) == (
        "Finding('dead_units', 'warning', layers=['dense_0'], steps=(3, 9), "
        "measured=0.6, threshold=0.5)"
    )
    assert str(finding).startswith("WARNING dead_units at dense_0, steps 3-9:")


def rules_of(findings) -> set[str]:
    return {finding.rule for finding in findings}


def test_vanishing_without_forward_statistics_says_they_were_not_recorded():
    # only deltas: the activations' variance is unknown, not zero
    finding = only(diagnose(table(*deltas(0.01, 1.0))), "vanishing_gradients")
    assert "were not recorded" in finding.message
    assert "no measurable variance" not in finding.message


def test_a_statistics_table_with_text_values_is_refused_naming_the_row():
    frame = table(*deltas(0.01, 1.0))
    frame["value"] = frame["value"].astype(object)
    frame.loc[3, "value"] = "n/a"
    with pytest.raises(
        DataError, match=r"column 'value' must hold numbers; row 3 holds 'n/a'"
    ):
        diagnose(frame)


@pytest.mark.parametrize("step", [0.5, -1, math.nan])
def test_a_statistics_table_with_a_step_that_is_no_step_is_refused(step):
    frame = table(*deltas(0.01, 1.0))
    frame["step"] = frame["step"].astype(float)
    frame.loc[4, "step"] = step

    with pytest.raises(DataError, match=r"'step' must hold whole numbers >= 0.*row 4"):
        diagnose(frame)


def test_a_statistics_table_with_numbers_as_text_is_read_as_numbers():
    frame = table(*deltas(0.01, 1.0)).astype({"value": str, "step": str})
    finding = only(diagnose(frame), "vanishing_gradients")
    assert finding.step_range == (0, 9)


def test_a_diverging_loss_message_says_its_levels_are_window_means():
    # the first raw value is 1; the message's start is the mean of the first window
    values = [math.exp(step / 4) for step in range(30)]
    finding = only(diagnose(table(loss_rows(values))), "diverging_loss")
    start = float(np.mean(values[:8]))
    assert f"({start:.4g} to " in finding.message
    assert "means over 8 recorded steps" in finding.message


def test_a_non_finite_loss_is_named_as_the_model_loss():
    values = [1.0 / (step + 1) for step in range(10)] + [math.nan] * 5
    finding = only(diagnose(table(loss_rows(values))), "non_finite")
    assert "first appeared at the model's loss at step 10" in finding.message
    assert "model.model" not in finding.message


def test_metrics_of_an_unknown_shape_are_refused_naming_the_columns():
    frame = table(*deltas(1.0, 1.0))
    with pytest.raises(DataError, match=r"got list"):
        diagnose(frame, metrics=[1, 2])
    with pytest.raises(DataError, match=r"the metrics table has columns \['a'\]"):
        diagnose(frame, metrics=pd.DataFrame({"a": [1.0]}))


def test_metrics_as_a_history_are_read_for_the_loss():
    from annlens.training.history import History

    history = History()
    for epoch in range(10):
        history.append({"epoch": epoch, "loss": math.exp(epoch)})
    findings = diagnose(table(*deltas(1.0, 1.0)), metrics=history)
    assert only(findings, "diverging_loss").step_range == (0, 9)
