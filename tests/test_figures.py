"""Figures: each draws what the tables hold, with a title, labels and a legend."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from annlens.errors import ConfigError, DataError, LabelError, ShapeError
from annlens.training.history import History
from annlens.viz import (
    metrics_long,
    plot_activation_bands,
    plot_curves,
    plot_decision_boundary,
    plot_flow_comparison,
    plot_gradient_flow,
    plot_gradient_norms,
    plot_histograms,
    plot_spectra,
    plot_step_loss,
    plot_unit_health,
    plot_update_ratios,
    plot_variant_comparison,
    save_figure,
    variant_palette,
)
from annlens.viz.style import VARIANT_COLORS, palette_for, smooth
from annlens.viz.tables import layer_order, pick_steps
from viz_synthetic import synthetic_tables

VARIANTS = {
    "sigmoid-normal": (0.2, 2e-5, "sigmoid"),
    "relu-he": (0.95, 1.2e-3, "relu"),
}
LAYERS = ["dense_0", "dense_1", "dense_2"]


@pytest.fixture(scope="module")
def tables():
    return synthetic_tables(
        np.random.default_rng(0), variants=VARIANTS, steps=60, layers=LAYERS
    )


@pytest.fixture(scope="module")
def palette():
    return variant_palette(list(VARIANTS))


def visible_axes(figure: Figure):
    return [ax for ax in figure.axes if ax.get_visible()]


def legend_texts(figure: Figure) -> list[str]:
    legends = list(figure.legends) + [
        ax.get_legend() for ax in figure.axes if ax.get_legend() is not None
    ]
    return [text.get_text() for legend in legends for text in legend.get_texts()]


def assert_readable(figure: Figure, legend: bool = True) -> None:
    """A title, labelled x and y axes, and (where lines share axes) a legend."""
    assert figure.get_suptitle().strip()
    axes = visible_axes(figure)
    assert axes
    assert any(ax.get_xlabel().strip() for ax in axes)
    assert any(ax.get_ylabel().strip() for ax in axes)
    if legend:
        assert len(legend_texts(figure)) >= 2


def same_colour(a, b) -> bool:
    return np.allclose(mcolors.to_rgba(a), mcolors.to_rgba(b))


def test_variant_palette_gives_each_variant_its_own_colour_in_order() -> None:
    palette = variant_palette(["a", "b", "a", "c"])
    assert list(palette) == ["a", "b", "c"]
    assert list(palette.values()) == list(VARIANT_COLORS[:3])


def test_palette_for_keeps_given_colours_and_fills_the_missing_ones() -> None:
    completed = palette_for(["a", "z"], {"a": "#123456"})
    assert completed["a"] == "#123456"
    assert completed["z"] == VARIANT_COLORS[1]


def test_layer_order_follows_the_forward_pass_not_the_names() -> None:
    stats = pd.DataFrame(
        {
            "step": 0,
            "variant": "",
            "layer": ["dense_0", "batchnorm_0", "dense_1", "dense_1", "model"],
            "stage": ["input", "input", "input", "delta", "model"],
            "quantity": "mean",
            "value": 1.0,
        }
    )
    assert layer_order(stats) == ["dense_0", "batchnorm_0", "dense_1"]


def test_pick_steps_keeps_the_first_and_last_and_favours_early_steps() -> None:
    chosen = pick_steps(range(0, 1001, 10), n=4)
    assert chosen[0] == 0 and chosen[-1] == 1000
    assert len(chosen) == 4
    assert chosen[1] < 100


def test_smooth_is_a_centred_moving_mean_that_skips_nan() -> None:
    values = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    np.testing.assert_allclose(smooth(values, 3), [1.5, 1.5, 3.0, 4.5, 4.5])


def test_metrics_long_reads_wide_history_columns_by_split_prefix() -> None:
    wide = pd.DataFrame(
        {"epoch": [0, 1], "loss": [1.0, 0.5], "val_loss": [1.2, 0.7], "lr": 0.1}
    )
    long = metrics_long(wide)
    val = long[(long["split"] == "val") & (long["metric"] == "loss")]
    assert val["value"].tolist() == [1.2, 0.7]
    train = long[(long["split"] == "train") & (long["metric"] == "loss")]
    assert train["value"].tolist() == [1.0, 0.5]
    assert set(long["variant"]) == {""}


def test_metrics_long_refuses_a_wide_table_without_epoch() -> None:
    with pytest.raises(DataError, match="'epoch'"):
        metrics_long(pd.DataFrame({"loss": [1.0]}))


def test_curves_draw_train_and_validation_per_variant_in_variant_colours(
    tables, palette
) -> None:
    figure = plot_curves(tables.metrics, palette=palette)
    assert_readable(figure)
    loss_panel = visible_axes(figure)[0]
    assert loss_panel.get_title() == "loss"
    assert len(loss_panel.lines) == len(VARIANTS) * 2
    styles = {(line.get_color(), line.get_linestyle()) for line in loss_panel.lines}
    for variant in VARIANTS:
        assert (palette[variant], "-") in styles
        assert (palette[variant], "--") in styles
    assert {"training", "validation", "relu-he"} <= set(legend_texts(figure))


def test_curves_values_are_the_metric_table_values(tables) -> None:
    figure = plot_curves(tables.metrics, metric_names=["accuracy"])
    line = visible_axes(figure)[0].lines[0]
    expected = tables.metrics.query(
        "variant == 'sigmoid-normal' and split == 'train' and metric == 'accuracy'"
    )
    np.testing.assert_allclose(line.get_ydata(), expected["value"])
    # the table counts epochs from 0, the axis from 1
    np.testing.assert_array_equal(line.get_xdata(), expected["epoch"] + 1)


def test_curves_draw_the_history_that_fit_returns() -> None:
    history = History()
    history.append({"epoch": 0, "loss": 1.0, "val_loss": 1.2, "lr": 0.1})
    history.append({"epoch": 1, "loss": 0.5, "val_loss": 0.7, "lr": 0.1})

    figure = plot_curves(history)

    lines = visible_axes(figure)[0].lines
    assert sorted(line.get_ydata().tolist() for line in lines) == [
        [1.0, 0.5],
        [1.2, 0.7],
    ]


def test_curves_of_one_epoch_tell_the_splits_apart_by_marker() -> None:
    # A single point per split has no visible line style: the marker names it.
    history = History()
    history.append({"epoch": 0, "loss": 1.0, "val_loss": 1.2, "test_loss": 1.1})

    figure = plot_curves(history)

    lines = visible_axes(figure)[0].lines
    markers = {line.get_ydata()[0]: line.get_marker() for line in lines}
    assert len(set(markers.values())) == 3
    legend = {text: None for text in legend_texts(figure)}
    assert {"training", "validation", "test"} <= set(legend)
    handles = figure.legends[0].legend_handles
    split_markers = {h.get_label(): h.get_marker() for h in handles}
    assert {split_markers[n] for n in ("training", "validation", "test")} == set(
        markers.values()
    )
    # the axis shows epoch 1 alone, not fractions of an epoch
    assert list(visible_axes(figure)[0].get_xticks()) == [1.0]


def test_curves_say_which_variant_has_only_non_finite_values() -> None:
    metrics = pd.DataFrame(
        {
            "variant": ["ok", "ok", "boom", "boom"],
            "epoch": [0, 1, 0, 1],
            "split": ["train"] * 4,
            "metric": ["loss"] * 4,
            "value": [1.0, 0.5, np.nan, np.inf],
        }
    )

    figure = plot_curves(metrics)

    texts = [t.get_text() for t in visible_axes(figure)[0].texts]
    assert texts == ["no finite values (NaN, Inf or not recorded): boom"]
    # a wide table, as a run directory stores it, holds a diverged loss as NaN
    wide = pd.DataFrame(
        {
            "variant": ["ok", "boom"],
            "epoch": [0, 0],
            "train_loss": [1.0, np.nan],
            "train_accuracy": [0.5, 0.1],
        }
    )
    panels = visible_axes(plot_curves(wide))
    assert [t.get_text() for t in panels[0].texts] == [
        "no finite values (NaN, Inf or not recorded): boom"
    ]
    assert len(panels[1].texts) == 0
    assert len(plot_curves(metrics.iloc[:2]).axes[0].texts) == 0


def test_curves_refuse_an_empty_wide_metrics_table_in_one_line() -> None:
    empty = pd.DataFrame({"epoch": [], "train_loss": [], "variant": []})
    with pytest.raises(DataError, match="no rows to draw"):
        plot_curves(empty)


def test_curves_refuse_a_metric_that_is_not_recorded(tables) -> None:
    with pytest.raises(DataError, match="'f1'"):
        plot_curves(tables.metrics, metric_names=["f1"])


def test_gradient_norms_use_a_log_axis_and_one_line_per_layer(tables) -> None:
    figure = plot_gradient_norms(tables.stats)
    assert_readable(figure)
    panels = visible_axes(figure)
    assert len(panels) == len(VARIANTS)
    for ax in panels:
        assert ax.get_yscale() == "log"
        assert len(ax.lines) == len(LAYERS)
    assert legend_texts(figure)[: len(LAYERS)] == LAYERS


def test_gradient_flow_plots_mean_abs_delta_by_depth_at_chosen_steps(tables) -> None:
    figure = plot_gradient_flow(tables.stats, steps=[0, 60])
    assert_readable(figure)
    assert "δ" in figure.get_suptitle() and "back-propagated" in figure.get_suptitle()
    first = visible_axes(figure)[0]
    assert first.get_title() == "sigmoid-normal"
    assert "δ" in first.get_ylabel() and first.get_yscale() == "log"
    assert [t.get_text() for t in first.get_xticklabels()] == LAYERS
    at_zero = tables.stats.query(
        "variant == 'sigmoid-normal' and stage == 'delta' and quantity == 'mean_abs'"
        " and step == 0"
    ).set_index("layer")["value"]
    np.testing.assert_allclose(first.lines[0].get_ydata(), at_zero[LAYERS].to_numpy())
    assert [line.get_label() for line in first.lines] == ["step 0", "step 60"]


@pytest.mark.parametrize(
    "draw",
    [
        lambda stats: plot_gradient_flow(stats),
        lambda stats: plot_gradient_norms(stats),
        lambda stats: plot_update_ratios(stats),
    ],
    ids=["gradient_flow", "gradient_norms", "update_ratios"],
)
def test_log_scale_figures_refuse_values_that_are_all_nan_not_draw_blank(
    tables, draw
) -> None:
    stats = tables.stats.assign(value=np.nan)
    with pytest.raises(DataError, match="no finite positive values"):
        draw(stats)


def test_gradient_flow_snaps_steps_to_recorded_ones(tables) -> None:
    figure = plot_gradient_flow(tables.stats, steps=[2, 59])
    labels = [line.get_label() for line in visible_axes(figure)[0].lines]
    assert labels == ["step 0", "step 60"]


def test_flow_comparison_draws_one_line_per_variant_and_ratios_ending_at_one(
    tables, palette
) -> None:
    figure = plot_flow_comparison(tables.stats, palette=palette)
    assert_readable(figure)
    absolute, relative = visible_axes(figure)
    assert [
        same_colour(line.get_color(), palette[v])
        for line, v in zip(absolute.lines, VARIANTS, strict=True)
    ] == [True, True]
    ratios = [line for line in relative.lines if line.get_label() in VARIANTS]
    for line in ratios:
        assert line.get_ydata()[-1] == pytest.approx(1.0)


def test_activation_bands_fill_two_bands_and_draw_the_median(tables, palette) -> None:
    figure = plot_activation_bands(tables.stats, variant="relu-he", palette=palette)
    assert_readable(figure)
    panels = visible_axes(figure)
    assert [ax.get_title() for ax in panels] == LAYERS
    assert all(len(ax.collections) == 2 for ax in panels)
    median = tables.stats.query(
        "variant == 'relu-he' and layer == 'dense_1' and stage == 'post_activation'"
        " and quantity == 'q50'"
    )["value"]
    np.testing.assert_allclose(panels[1].lines[0].get_ydata(), median)
    assert same_colour(panels[1].lines[0].get_color(), palette["relu-he"])


def test_activation_bands_of_one_recorded_step_show_the_bands_as_bars() -> None:
    stats = _deep_stats(1)
    stats = stats.loc[stats["step"] == 0]
    figure = plot_activation_bands(stats)
    panel = visible_axes(figure)[0]
    heights = sorted(round(patch.get_height(), 6) for patch in panel.patches)
    assert heights == [2.0, 4.0]  # q25..q75 and q05..q95
    assert list(panel.get_xticks()) == [0]


def test_activation_bands_need_a_variant_when_there_are_several(tables) -> None:
    with pytest.raises(DataError, match="variant="):
        plot_activation_bands(tables.stats)


def test_unit_health_shows_fractions_in_percent_per_variant(tables) -> None:
    figure = plot_unit_health(tables.stats)
    assert_readable(figure)
    sigmoid, relu = visible_axes(figure)
    assert sigmoid.get_title() == "sigmoid-normal: saturated"
    assert relu.get_title() == "relu-he: dead"
    assert sigmoid.get_ylim() == pytest.approx((-0.03, 1.03))
    assert len(relu.lines) == len(LAYERS)
    assert all(0.0 <= y <= 1.0 for line in relu.lines for y in line.get_ydata())


def test_update_ratios_draw_the_reference_line_in_every_panel(tables) -> None:
    figure = plot_update_ratios(tables.stats)
    assert_readable(figure)
    for ax in visible_axes(figure):
        assert ax.get_yscale() == "log"
        flat = [line for line in ax.lines if list(line.get_ydata()) == [1e-3, 1e-3]]
        assert len(flat) == 1
    assert "1e-3 reference" in legend_texts(figure)


def test_update_ratios_refuse_a_table_without_update_ratio(tables) -> None:
    stats = tables.stats.query("quantity != 'update_ratio'")
    with pytest.raises(DataError, match="update_ratio"):
        plot_update_ratios(stats)


def test_step_loss_overlays_variants(tables, palette) -> None:
    figure = plot_step_loss(tables.stats, palette=palette)
    assert_readable(figure)
    colours = [line.get_color() for line in visible_axes(figure)[0].lines]
    assert colours == [palette[v] for v in VARIANTS]


def test_variant_comparison_smooths_long_series_and_keeps_the_raw_faint() -> None:
    tables = synthetic_tables(
        np.random.default_rng(1),
        variants={"a": (0.5, 1e-3, "relu")},
        steps=800,
        every=2,
        layers=["dense_0"],
    )
    figure = plot_variant_comparison(tables.stats, "delta", "mean_abs", log=True)
    ax = visible_axes(figure)[0]
    raw, smoothed = ax.lines
    assert raw.get_alpha() == pytest.approx(0.25)
    assert np.std(np.diff(smoothed.get_ydata())) < np.std(np.diff(raw.get_ydata()))
    assert ax.get_yscale() == "log"


def test_histograms_are_densities_per_layer_at_chosen_steps(tables) -> None:
    figure = plot_histograms(tables.histograms, stage="param:W", variant="relu-he")
    assert_readable(figure)
    panel = visible_axes(figure)[0]
    stairs = panel.patches[0]
    values, edges = stairs.get_data()[:2]
    assert np.sum(values * np.diff(edges)) == pytest.approx(1.0)
    assert "weight W" in panel.get_xlabel()
    assert legend_texts(figure)[0] == "step 0"


def test_gradient_histograms_use_a_log_density_axis_by_default(tables) -> None:
    figure = plot_histograms(tables.histograms, stage="gradient:W", variant="relu-he")
    panel = visible_axes(figure)[0]
    assert panel.get_yscale() == "log"
    assert "log scale" in panel.get_ylabel() and "∂L/∂W" in panel.get_xlabel()


def test_a_histogram_of_equal_values_is_a_marked_point_without_overflow(
    tables,
) -> None:
    # a diverged layer's gradients are all 0: every bin has zero width
    table = tables.histograms.query("variant == 'relu-he' and stage == 'gradient:W'")
    last = table["step"].max()
    dead = table["step"] == last
    table = table.assign(
        bin_lo=table["bin_lo"].where(~dead, 0.0),
        bin_hi=table["bin_hi"].where(~dead, 0.0),
    )

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure = plot_histograms(table, stage="gradient:W", variant="relu-he")
        figure.savefig(io.BytesIO(), format="png")

    panel = visible_axes(figure)[0]
    marks = [line for line in panel.lines if line.get_linestyle() == ":"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [0.0, 0.0]
    assert f"step {last}" in legend_texts(figure)


def test_histograms_refuse_a_stage_not_recorded(tables) -> None:
    with pytest.raises(DataError, match="update:W"):
        plot_histograms(tables.histograms, stage="update:W", variant="relu-he")


def test_spectra_draw_first_and_last_step_per_variant(tables, palette) -> None:
    figure = plot_spectra(tables.spectra, palette=palette)
    assert_readable(figure)
    panel = visible_axes(figure)[0]
    assert panel.get_yscale() == "log"
    assert len(panel.lines) == 2 * len(VARIANTS)
    assert [line.get_linestyle() for line in panel.lines[:2]] == ["--", "-"]
    last = tables.spectra.query(
        "variant == 'sigmoid-normal' and layer == 'dense_0' and step == 60"
    )
    np.testing.assert_allclose(panel.lines[1].get_ydata(), last["value"])
    np.testing.assert_array_equal(panel.lines[1].get_xdata(), last["index"] + 1)


def xor_data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=(80, 2))
    return x, (x[:, 0] * x[:, 1] > 0).astype(np.int64)


def test_decision_boundary_shades_the_plane_by_the_predicted_class() -> None:
    x, y = xor_data(np.random.default_rng(0))
    figure = plot_decision_boundary(
        lambda g: (g[:, 0] > 0).astype(np.int64), x, y, resolution=20
    )
    assert_readable(figure)
    ax = visible_axes(figure)[0]
    mesh = ax.collections[0]
    classes = np.asarray(mesh.get_array()).reshape(20, 20)
    coordinates = mesh.get_coordinates()
    centres_x = coordinates[:-1, :-1, 0] if coordinates.shape[0] == 21 else None
    if centres_x is None:  # one coordinate per cell (shading="nearest")
        centres_x = coordinates[..., 0]
    assert np.all(classes[centres_x > 0.1] == 1)
    assert np.all(classes[centres_x < -0.1] == 0)
    assert {"class 0", "class 1", "boundary"} <= set(legend_texts(figure))


def test_decision_boundary_reads_probabilities_and_scores() -> None:
    x, y = xor_data(np.random.default_rng(1))
    figure = plot_decision_boundary(
        {
            "probability": lambda g: 1 / (1 + np.exp(-g[:, 0])),
            "scores": lambda g: np.column_stack([-g[:, 0], g[:, 0]]),
        },
        x,
        y,
        resolution=10,
    )
    first, second = visible_axes(figure)
    np.testing.assert_array_equal(
        first.collections[0].get_array(), second.collections[0].get_array()
    )
    assert [first.get_title(), second.get_title()] == ["probability", "scores"]


def test_a_diverged_model_draws_its_boundary_without_overflow_warnings() -> None:
    x, y = xor_data(np.random.default_rng(2))

    def diverged(grid: np.ndarray) -> np.ndarray:
        weights = np.array([[1e300, -1e300], [1e300, 1e300]])
        return grid @ weights @ weights  # overflows to inf and nan

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure = plot_decision_boundary(diverged, x, y, resolution=10)

    assert visible_axes(figure)[0].collections[0].get_array().size == 100


def test_decision_boundary_refuses_data_that_is_not_two_dimensional() -> None:
    with pytest.raises(ShapeError, match=r"\(n, 2\)"):
        plot_decision_boundary(lambda g: g[:, 0], np.zeros((5, 3)), np.zeros(5))


def test_decision_boundary_refuses_nan_points_fractional_labels_and_a_tiny_grid():
    x = np.random.default_rng(0).normal(size=(6, 2))
    y = np.array([0, 1, 0, 1, 0, 1])
    scores = lambda g: g  # noqa: E731

    with pytest.raises(DataError, match="NaN or Inf in 1 rows \\(first at row 2\\)"):
        plot_decision_boundary(
            scores, np.where(np.arange(6)[:, None] == 2, np.nan, x), y
        )
    with pytest.raises(LabelError, match="class labels, integers >= 0"):
        plot_decision_boundary(scores, x, y + 0.5)
    with pytest.raises(ConfigError, match="resolution must be an integer >= 2"):
        plot_decision_boundary(scores, x, y, resolution=1)
    assert plot_decision_boundary(scores, x, y.astype(float), resolution=4)


def test_a_missing_column_is_named_in_the_error(tables) -> None:
    with pytest.raises(DataError, match="quantity"):
        plot_gradient_norms(tables.stats.drop(columns="quantity"))


def test_save_figure_writes_png_and_svg_and_leaves_no_temporary_file(
    tables, tmp_path: Path
) -> None:
    figure = plot_step_loss(tables.stats)
    paths = save_figure(figure, tmp_path / "figures", "loss")
    assert set(paths) == {"png", "svg"}
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = paths["svg"].read_text(encoding="utf-8")
    assert "<svg" in svg and "Training loss" in svg
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "loss.png",
        "loss.svg",
    ]


def test_save_figure_refuses_a_name_with_folders(tables, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="plain file name"):
        save_figure(plot_step_loss(tables.stats), tmp_path, "../loss")


def _deep_stats(depth: int) -> pd.DataFrame:
    rows = []
    for i in range(depth):
        for step in (0, 10):
            for q, v in zip(
                ("q05", "q25", "q50", "q75", "q95"), (-2, -1, 0, 1, 2), strict=True
            ):
                rows.append((step, 0, "", f"dense_{i}", "post_activation", q, float(v)))
    columns = ["step", "epoch", "variant", "layer", "stage", "quantity", "value"]
    return pd.DataFrame(rows, columns=columns)


def test_a_deep_model_gets_at_most_twelve_panels_first_and_last_included() -> None:
    stats = _deep_stats(200)
    figure = plot_activation_bands(stats)
    titles = [ax.get_title() for ax in visible_axes(figure)]
    assert len(titles) == 12
    assert titles[0] == "dense_0" and titles[-1] == "dense_199"
    assert figure.get_size_inches()[1] < 20
    comparison = plot_variant_comparison(stats, "post_activation", "q50")
    assert len(visible_axes(comparison)) == 12


def test_named_layers_are_all_drawn_however_many() -> None:
    stats = _deep_stats(20)
    names = [f"dense_{i}" for i in range(20)]
    figure = plot_activation_bands(stats, layers=names)
    assert len(visible_axes(figure)) == 20


def test_decision_boundary_refuses_no_predict_function_or_one_not_callable() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 2)), rng.integers(0, 2, 20)
    with pytest.raises(ConfigError, match="empty mapping of predict functions"):
        plot_decision_boundary({}, x, y)
    with pytest.raises(ConfigError, match=r"predict 'a' must be callable"):
        plot_decision_boundary({"a": 3}, x, y)  # type: ignore[dict-item]


def test_flow_comparison_without_a_finite_positive_value_is_refused(tables) -> None:
    stats = tables.stats.assign(value=np.nan)
    with pytest.raises(DataError, match="no finite positive values with stage 'delta'"):
        plot_flow_comparison(stats)


def test_flow_comparison_leaves_out_infinite_values_without_warnings(tables) -> None:
    stats = tables.stats.copy()
    stats.loc[stats.index[::3], "value"] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure = plot_flow_comparison(stats)
    assert len(visible_axes(figure)) == 2


@pytest.mark.parametrize(
    ("draw", "table"),
    [
        (plot_gradient_flow, "stats"),
        (plot_gradient_norms, "stats"),
        (plot_update_ratios, "stats"),
        (plot_unit_health, "stats"),
        (plot_histograms, "histograms"),
        (plot_spectra, "spectra"),
    ],
)
def test_layers_that_name_no_layer_of_the_table_are_refused_not_drawn_blank(
    tables, draw, table
) -> None:
    options = {"variant": "relu-he"} if draw is plot_histograms else {}
    with pytest.raises(DataError, match=r"\['dense_O'\] is in the table.*dense_0"):
        draw(getattr(tables, table), layers=["dense_O"], **options)
    with pytest.raises(DataError, match=r"list of layer names.*layers=\['dense_1'\]"):
        draw(getattr(tables, table), layers="dense_1", **options)
    draw(getattr(tables, table), layers=["dense_1", "dense_O"], **options)


def test_long_variant_names_are_shortened_in_panel_titles_and_legends() -> None:
    stem = "a-very-long-variant-name-" * 3
    names = [stem + "lr-0.1", stem + "lr-0.01", "short"]
    tables = synthetic_tables(
        np.random.default_rng(3),
        variants={
            names[0]: (0.3, 3e-5, "sigmoid"),
            names[1]: (0.6, 1e-4, "tanh"),
            names[2]: (0.9, 1e-3, "relu"),
        },
        steps=40,
        layers=["dense_0", "dense_1"],
    )

    flow = plot_gradient_flow(tables.stats)
    titles = [ax.get_title() for ax in flow.axes if ax.get_title()]
    compared = plot_flow_comparison(tables.stats)
    legend = [
        t.get_text()
        for ax in compared.axes
        if ax.get_legend()
        for t in ax.get_legend().get_texts()
    ]

    for shown in (titles, legend):
        assert len(shown) == 3 and len(set(shown)) == 3, shown
        assert all(len(text) <= 32 for text in shown), shown
        assert "short" in shown and any(t.endswith("lr-0.01") for t in shown)


def test_gradient_norms_of_a_single_recorded_step_are_drawn_as_points(tables) -> None:
    first = tables.stats[tables.stats["step"] == tables.stats["step"].min()]

    figure = plot_gradient_norms(first)

    panels = visible_axes(figure)
    assert panels and all(len(ax.lines) == len(LAYERS) for ax in panels)
    for ax in panels:
        for line in ax.lines:
            assert len(line.get_xdata()) == 1 and line.get_marker() == "o"
