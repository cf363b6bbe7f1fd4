"""The benchmark runs end to end on its smallest case (one call each, no timing)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

torch = pytest.importorskip("torch")
pytest.importorskip("threadpoolctl")
pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def bench() -> Iterator[SimpleNamespace]:
    """The benchmark modules, imported from benchmarks/ for this file only."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import cases
        import measure
        import report
        import steps

        yield SimpleNamespace(cases=cases, measure=measure, report=report, steps=steps)
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def run(bench: SimpleNamespace) -> tuple[Any, list[Any], int]:
    """The tiny case in float32, every variant called once."""
    tiny = bench.cases.get_case("tiny")
    settings = bench.measure.Settings.smoke()
    threads = torch.get_num_threads()
    results = bench.measure.run_all(settings, (tiny,), ("float32",), log=lambda _: 0)
    return settings, results, threads


def test_smallest_case_runs_every_variant_once(run: tuple[Any, list[Any], int]) -> None:
    _, (result,), _ = run
    for variant in ("annlens", "torch", "annlens_infer", "torch_infer", "matmuls"):
        assert variant in result.timings
    assert {"stat", "collectors", "sampled", "dispatch", "control"} <= set(
        result.paired
    )
    assert {"phase_forward", "phase_loss", "phase_backward"} <= set(result.timings)
    assert result.memory["train"] > 0
    assert {choice.label.split()[0] for choice in result.threads} == {
        "x",
        "xᵀ",
        "delta",
    }


def test_benchmark_restores_the_torch_thread_count(
    run: tuple[Any, list[Any], int],
) -> None:
    assert torch.get_num_threads() == run[2]


def test_results_file_names_machine_tables_and_targets(
    bench: SimpleNamespace, run: tuple[Any, list[Any], int], tmp_path: Path
) -> None:
    settings, results, _ = run
    path = tmp_path / "RESULTS.md"

    bench.report.write(path, results, settings, "", " --smoke", "0.00 at the start")

    text = path.read_text()
    assert "CPU:" in text and "threadpoolctl:" in text and "PyTorch" in text
    assert "### Training step, float32" in text and "| tiny |" in text
    assert "## Targets" in text and "BLAS threads per product" in text


def test_torch_twin_of_the_benchmark_starts_from_the_same_weights(
    bench: SimpleNamespace,
) -> None:
    tiny = bench.cases.get_case("tiny")
    model = bench.steps.annlens_model(tiny, "float64")
    x, _ = bench.steps.batch(tiny, "float64")
    module = bench.steps.torch_model(model)
    with torch.no_grad():
        theirs = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.predict(x), theirs, rtol=1e-12, atol=1e-12)


def test_dense_without_dispatch_computes_the_same_step(bench: SimpleNamespace) -> None:
    tiny = bench.cases.get_case("tiny")
    x, y = bench.steps.batch(tiny, "float64")
    plain = bench.steps.annlens_model(tiny, "float64")
    bare = bench.steps.annlens_model(tiny, "float64", bench.steps.NoDispatchDense)
    for model in (plain, bare):
        bench.steps.annlens_training_step(model, x, y)()
    for name, value in plain.parameters().items():
        np.testing.assert_array_equal(bare.parameters()[name], value)
