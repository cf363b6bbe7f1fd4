"""Comparison results without torch: tolerances, the verdict, storage, the report.

Everything here is built by hand, as ``annlens compare`` stores it, so these
tests run where PyTorch is not installed; so does the check that
``import annlens`` and its comparison names leave torch unimported.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from annlens.analysis.compare import (
    Comparison,
    Difference,
    ParityResult,
    TrajectoryResult,
    TrajectoryStep,
    verdict,
)
from annlens.analysis.compare.measure import excess
from annlens.errors import ConfigError, DataError
from annlens.viz import build_report, load_run
from viz_synthetic import synthetic_tables


def statistics() -> object:
    """A small statistics table, so that a folder reads as a run directory."""
    tables = synthetic_tables(np.random.default_rng(0), steps=20, layers=["dense_0"])
    return tables.stats


def row(point: str, max_abs: float, max_rel: float, **errors: float) -> Difference:
    layer = point.split(".")[0]
    quantity = "z" if point.endswith("pre_activation") else "output"
    return Difference(layer, point, quantity, (4, 3), max_abs, max_rel, **errors)


def parity(*rows: Difference, dtype: str = "float32", **limits: float) -> ParityResult:
    return ParityResult(list(rows), dtype, 1.0, 1.0, **limits)


def step(number: int, worst_abs: float, worst_rel: float) -> TrajectoryStep:
    return TrajectoryStep(
        number,
        1.0,
        1.0,
        0.0,
        0.0,
        worst_abs,
        worst_rel,
        "dense_0.W",
        worst_abs,
        worst_rel,
        {"dense_0.W": (worst_abs, worst_rel), "dense_0.b": (0.0, 0.0)},
    )


def trajectory(*steps: TrajectoryStep, stopped: str | None = None) -> TrajectoryResult:
    return TrajectoryResult(list(steps), "SGD(lr=0.1)", "float32", stopped=stopped)


AGREEING = Comparison(
    "base",
    parity(
        row("dense_0.pre_activation", 2e-7, 3e-8), row("dense_0.forward", 1e-7, 5e-5)
    ),
    trajectory(step(1, 1e-8, 1e-7), step(2, 3e-6, 2e-3)),
)
DIFFERING = Comparison(
    "wide",
    parity(row("dense_0.pre_activation", 2e-3, 5e-3), row("dense_0.forward", 0, 0)),
    trajectory(step(1, 1e-8, 1e-7)),
)


# -- tolerances --


def test_a_tolerance_of_zero_is_kept_and_allows_no_difference() -> None:
    result = parity(row("dense_0.forward", 1e-9, 1e-9), tolerance=0.0, atol=0.0)
    assert (result.tolerance, result.atol) == (0.0, 0.0)
    assert not result.agrees


def test_left_out_tolerances_are_the_dtypes() -> None:
    assert (parity(dtype="float32").tolerance, parity(dtype="float32").atol) == (
        1e-4,
        1e-6,
    )
    assert parity(dtype="float64").tolerance == 1e-10
    assert parity().rounding == 4.0


@pytest.mark.parametrize("bad", [-1.0, math.inf, "1e-3", True])
def test_a_bad_tolerance_is_refused_naming_it(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"^tolerance must be a finite number >= 0"):
        parity(tolerance=bad)  # type: ignore[arg-type]


def test_excess_is_the_most_lenient_of_the_limits() -> None:
    assert excess(2e-6, 5e-4, 1e-4, 1e-6) == pytest.approx(2.0)
    assert excess(2e-6, 5e-4, 1e-4, 1e-6, error_ratio=2.0, rounding=4.0) == 0.5
    assert excess(1e-9, 1e-9, 0.0, 0.0) == math.inf
    assert excess(math.nan, math.nan, 1e-4, 1e-6) == math.inf


def test_a_row_within_the_rounding_allowance_agrees() -> None:
    amplified = row(
        "dense_5.forward", 1.5e-4, 1.5e-4, error_annlens=2e-4, error_torch=1e-4
    )
    assert amplified.error_ratio == pytest.approx(2.0)
    assert parity(amplified).agrees
    assert not parity(amplified, rounding=1.0).agrees


def test_agrees_is_a_property_on_both_results_so_a_drifting_run_is_falsy() -> None:
    drifting = trajectory(step(1, 1e-8, 1e-7), step(2, 3e-6, 2e-3))
    differing = parity(row("dense_0.forward", 2e-3, 5e-3))
    assert isinstance(TrajectoryResult.agrees, property)
    assert isinstance(ParityResult.agrees, property)
    assert drifting.agrees is False
    assert differing.agrees is False
    assert trajectory(step(1, 1e-8, 1e-7)).agrees is True


def test_a_trajectory_is_judged_within_other_tolerances_when_asked() -> None:
    drifting = trajectory(step(1, 1e-8, 1e-7), step(2, 3e-6, 2e-3))
    assert drifting.agrees_within(tolerance=1e-2)
    assert not drifting.agrees_within(tolerance=1e-4, atol=1e-9)
    assert not trajectory(step(1, 0.0, 0.0), stopped="NaN").agrees_within(1.0)


def test_worst_is_the_row_furthest_beyond_its_limits() -> None:
    # the first is 100% off relatively but far inside the absolute floor
    tiny = row("dense_0.forward", 1e-9, 1.0)
    real = row("dense_1.forward", 5e-6, 5e-5)
    assert parity(tiny, real).worst() is real


# -- the verdict --


def test_verdict_passes_and_names_the_worst_difference_and_the_drift() -> None:
    judged = verdict([AGREEING])
    line = judged.line()
    assert judged.passed
    assert line.startswith("PASS: all 2 quantities of 1 variant(s) agree with PyTorch")
    assert "worst |Δ| 1e-07 (relative 5e-05) at base dense_0.forward output" in line
    assert "at 0.1 of the tolerance (0.0001 relative or 1e-06 absolute)" in line
    assert (
        "drift over 2 step(s) up to |Δ| 3e-06 (relative 0.002) at base dense_0.W"
        in (line)
    )
    assert "\n" not in line


def test_verdict_fails_when_any_variant_differs() -> None:
    judged = verdict([AGREEING, DIFFERING])
    line = judged.line()
    assert not judged.passed and judged.failures == 1 and judged.quantities == 4
    assert line.startswith("FAIL: 1 of 4 quantities of 2 variant(s) differ")
    assert "at wide dense_0.pre_activation z, 50 times the tolerance" in line


def test_verdict_names_variants_stopped_by_the_nan_guard() -> None:
    stopped = Comparison(
        "boom", AGREEING.parity, trajectory(step(1, 0, 0), stopped="annlens stopped")
    )
    assert "stopped by annlens's NaN guard: boom" in verdict([stopped]).line()


def test_verdict_refuses_a_parity_result_in_place_of_a_comparison() -> None:
    with pytest.raises(ConfigError, match=r"list of Comparison, got ParityResult"):
        verdict([AGREEING.parity])  # type: ignore[list-item]
    assert verdict(AGREEING).line() == verdict([AGREEING]).line()  # type: ignore[arg-type]


# -- storage --


def test_a_comparison_survives_json() -> None:
    stored = json.loads(json.dumps(DIFFERING.to_dict()))
    back = Comparison.from_dict(stored)
    assert back.parity.rows == DIFFERING.parity.rows
    assert back.parity.tolerance == DIFFERING.parity.tolerance
    assert back.trajectory is not None and DIFFERING.trajectory is not None
    assert back.trajectory.steps == DIFFERING.trajectory.steps


def test_a_damaged_comparison_is_a_data_error_naming_the_variant() -> None:
    stored = AGREEING.to_dict()
    del stored["parity"]["rows"][0]["max_abs"]
    with pytest.raises(DataError, match=r"variant 'base'\) is damaged: KeyError"):
        Comparison.from_dict(stored)


# -- the report --


def test_report_has_an_against_pytorch_section_with_both_tables(tmp_path: Path) -> None:
    path = build_report(
        {}, tmp_path / "report.html", findings=[], comparisons=[AGREEING, DIFFERING]
    )
    page = path.read_text()
    assert '<a href="#pytorch">Against PyTorch</a>' in page
    assert '<section id="pytorch">' in page and "<h2>Against PyTorch</h2>" in page
    assert page.count('<table class="annlens-parity">') == 2
    assert page.count('<table class="annlens-trajectory">') == 2
    assert "FAIL: 1 of 4 quantities" in page
    assert '<tr class="differs"><td>dense_0</td><td>dense_0.pre_activation</td>' in page
    assert page.index('id="diagnosis"') < page.index('id="pytorch"')


def test_a_drifting_step_is_marked_as_drift_not_as_a_difference() -> None:
    assert AGREEING.trajectory is not None
    page = AGREEING.trajectory.to_html()
    assert page.count('<tr class="agrees">') == 1
    assert page.count('<tr class="drifts">') == 1
    assert "differs" not in page


def test_report_has_no_such_section_without_a_comparison(tmp_path: Path) -> None:
    figure = ("Did it learn?", "empty", Figure(figsize=(2, 1)))
    path = build_report({}, tmp_path / "report.html", findings=[], figures=[figure])
    assert 'id="pytorch"' not in path.read_text()


def test_report_refuses_comparisons_of_another_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Comparison objects .* got dict"):
        build_report(
            {}, tmp_path / "report.html", findings=[], comparisons=[AGREEING.to_dict()]
        )


def test_a_run_directory_with_compare_json_is_read_back(tmp_path: Path) -> None:
    statistics().to_parquet(tmp_path / "statistics.parquet")
    (tmp_path / "compare.json").write_text(json.dumps([AGREEING.to_dict()]))
    loaded = load_run(tmp_path)
    assert loaded.comparisons is not None
    assert [c.name for c in loaded.comparisons] == ["base"]
    assert "comparisons=1" in repr(loaded)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "as JSON"),
        ('{"name": "base"}', "must hold a list of comparisons, got dict"),
        ('[{"name": "base"}]', r"variant 'base'\) is damaged"),
    ],
)
def test_a_damaged_compare_json_is_a_data_error(
    tmp_path: Path, content: str, message: str
) -> None:
    statistics().to_parquet(tmp_path / "statistics.parquet")
    (tmp_path / "compare.json").write_text(content)
    with pytest.raises(DataError, match=message):
        load_run(tmp_path)


# -- the top-level package --

CHILD = textwrap.dedent(
    """
    import sys
    {block}
    import annlens
    names = [
        annlens.compare_models, annlens.compare_training, annlens.build_twin,
        annlens.ParityResult, annlens.TrajectoryResult, annlens.Comparison,
        annlens.verdict,
    ]
    assert all(callable(name) for name in names)
    assert sys.modules.get("torch") is None, "importing annlens imported torch"
    {after}
    print("ok")
    """
)


def run_child(block: str = "", after: str = "") -> subprocess.CompletedProcess[str]:
    code = CHILD.format(block=block, after=after)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )


def test_import_annlens_and_its_compare_names_do_not_import_torch() -> None:
    done = run_child()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_without_torch_building_a_twin_names_the_extra_to_install() -> None:
    after = textwrap.dedent(
        """
        from annlens import Dense, Sequential
        try:
            annlens.build_twin(Sequential([Dense(2, 2)]))
        except ImportError as error:
            assert "pip install 'annlens[torch]'" in str(error), error
        else:
            raise AssertionError("build_twin ran without torch")
        """
    )
    done = run_child(block="sys.modules['torch'] = None", after=after)
    assert done.returncode == 0, done.stderr


def test_a_verdict_on_nothing_compared_does_not_pass() -> None:
    judged = verdict([])
    assert not judged.passed
    assert judged.line().startswith("FAIL: no quantity of 0 variant(s) was compared")
