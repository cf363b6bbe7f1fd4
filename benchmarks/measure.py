"""Timing: every variant of a case run in alternation, on fixed thread counts.

For one case and dtype, every timed callable (annlens with and without hooks,
PyTorch, inference, the matrix products alone) is warmed up, calibrated to a
few milliseconds per round, then run round after round in rotating order, so
that a slow spell of the machine hits all of them alike, with a short rest
before each round so that one library's idle threads, still spinning, do not
slow the next. Every call is timed
on its own; the result of each variant is the median over all its calls, with
the interquartile spread, so that a call stalled by another process (a thread
of a pool descheduled on a busy machine) moves the median little.
Garbage collection runs before each round and is off during it.
"""

from __future__ import annotations

import functools
import gc
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import steps
from cases import CASES, Case

Step = Callable[[], None]
MIN_PAIRS = 21

#: The sampling of the "sampled" collectors variant: rows every tenth step.
SAMPLED_EVERY = 10


@dataclass(frozen=True)
class Settings:
    """How long and how often to time.

    Attributes
    ----------
    rounds : int
        Rounds per variant (each a median sample).
    round_seconds : float
        Target duration of one round of one variant.
    warmup : int
        Calls of each variant before timing.
    threads : int
        Threads for NumPy's BLAS and for PyTorch.
    settle : float
        Seconds of rest before each variant's round, so that the idle threads
        of the pool used before (OpenBLAS's workers spin about 0.1 s after a
        product before they sleep) do not compete for the cores with the next.
    """

    rounds: int = 15
    round_seconds: float = 0.05
    warmup: int = 5
    threads: int = 2
    settle: float = 0.15

    @classmethod
    def quick(cls) -> Settings:
        return cls(rounds=5, round_seconds=0.02, warmup=2)

    @classmethod
    def smoke(cls) -> Settings:
        return cls(rounds=1, round_seconds=0.0, warmup=0, settle=0.0)


@dataclass
class Timing:
    """Seconds per call: the median, the fastest tenth and the spread.

    Attributes
    ----------
    median : float
        The median over every timed call.
    low : float
        The 10th percentile: what the call takes when nothing else competes
        for the cores, the better guide on a busy machine.
    spread : float
        The interquartile range as a fraction of the median.
    """

    median: float
    low: float
    spread: float

    @classmethod
    def of(cls, samples: list[float]) -> Timing:
        q10, q25, q50, q75 = np.percentile(samples, [10, 25, 50, 75])
        return cls(float(q50), float(q10), float((q75 - q25) / q50) if q50 else 0.0)


@dataclass
class ThreadChoice:
    """One product of a training step on 1 and 2 BLAS threads."""

    label: str
    count: int
    one: float
    two: float


@dataclass
class CaseResult:
    """Everything measured for one case in one dtype."""

    case: Case
    dtype: str
    timings: dict[str, Timing] = field(default_factory=dict)
    memory: dict[str, int] = field(default_factory=dict)
    matmul_rate: float | None = None
    threads: list[ThreadChoice] = field(default_factory=list)
    paired: dict[str, float] = field(default_factory=dict)

    def ratio(self, ours: str, theirs: str, low: bool = False) -> float | None:
        """Median time of ``ours`` over ``theirs`` (10th percentiles if ``low``)."""
        if ours not in self.timings or theirs not in self.timings:
            return None
        a, b = self.timings[ours], self.timings[theirs]
        return a.low / b.low if low else a.median / b.median

    def overhead(self, variant: str) -> float | None:
        """The extra time of a paired variant ("stat", "collectors", "sampled",
        "dispatch", "control", "input_grad") over its partner, as a fraction;
        None when not measured."""
        ratio = self.paired.get(variant)
        return None if ratio is None else ratio - 1


@contextmanager
def fixed_threads(count: int) -> Iterator[None]:
    """``count`` threads for every BLAS and OpenMP pool, and for PyTorch."""
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield
    finally:
        torch.set_num_threads(previous)


def time_alternating(
    variants: dict[str, Step], settings: Settings
) -> dict[str, Timing]:
    """Median seconds per call of each variant, timed in rotating order."""
    calls = {}
    for name, step in variants.items():
        for _ in range(settings.warmup):
            step()
        start = time.perf_counter()
        step()
        once = time.perf_counter() - start
        calls[name] = max(1, int(settings.round_seconds / max(once, 1e-7)))

    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_index in range(settings.rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        gc.collect()
        gc.disable()
        try:
            for name in order:
                step, times = variants[name], samples[name]
                time.sleep(settings.settle)
                for _ in range(calls[name]):
                    start = time.perf_counter()
                    step()
                    times.append(time.perf_counter() - start)
        finally:
            gc.enable()
    return {name: Timing.of(values) for name, values in samples.items()}


def paired_ratio(ours: Step, theirs: Step, seconds: float, block: int = 1) -> float:
    """Median time of ``ours`` over median time of ``theirs``, call by call.

    The two alternate one call at a time for about ``seconds``, so both see
    the same state of the machine; for two variants of the same annlens step,
    whose difference is a few attribute checks, this is steadier than rounds.
    With ``block`` > 1 each sample is ``block`` calls in a row, so that a step
    that is slower one call in ``block`` (a recorder writing rows every tenth
    step) is timed with that call, not around it.
    """
    for _ in range(3):
        ours()
        theirs()
    first: list[float] = []
    second: list[float] = []
    deadline = time.perf_counter() + seconds
    gc.collect()
    gc.disable()
    try:
        pairs = [(ours, first), (theirs, second)]
        while time.perf_counter() < deadline or len(first) < MIN_PAIRS:
            pairs.reverse()  # neither always runs first
            for step, times in pairs:
                start = time.perf_counter()
                for _ in range(block):
                    step()
                times.append(time.perf_counter() - start)
    finally:
        gc.enable()
    return float(np.median(first) / np.median(second))


def peak_bytes(step: Step) -> int:
    """The most memory NumPy held above its starting point during one call."""
    step()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


def measure_case(
    case: Case, dtype: str, settings: Settings, dispatch: bool = False
) -> CaseResult:
    """Time every variant of one case in one dtype.

    annlens against PyTorch in rotating rounds; the annlens step against its
    variants with hooks (and without dispatch) call by call, in pairs.
    """
    result = CaseResult(case, dtype)
    x, y = steps.batch(case, dtype)

    plain = steps.annlens_model(case, dtype)
    variants: dict[str, Step] = {
        "annlens": steps.annlens_training_step(plain, x, y),
        "torch": steps.torch_training_step(steps.torch_model(plain), x, y),
        "annlens_infer": steps.annlens_inference(plain, x),
        "torch_infer": steps.torch_inference(steps.torch_model(plain), x),
        "matmuls": steps.training_matmuls(case, dtype),
    }
    variants.update(steps.annlens_phases(steps.annlens_model(case, dtype), x, y))
    if case.name == "large":
        variants["matmul_reference"], flops = steps.matmul_reference(case, dtype)
    result.timings = time_alternating(variants, settings)
    if case.name == "large":
        result.matmul_rate = flops / result.timings["matmul_reference"].median

    seconds = settings.rounds * settings.round_seconds * 2
    hooked = steps.annlens_model(case, dtype)
    steps.stat_hooks(hooked)
    result.paired["stat"] = paired_ratio(
        steps.annlens_training_step(hooked, x, y), variants["annlens"], seconds
    )
    # the default set writes parameter rows one recorded step in ten: blocks of
    # ten calls time that step too (but for the large case, call by call)
    block = 1 if case.name == "large" else SAMPLED_EVERY
    for variant, every in (("collectors", 1), ("sampled", SAMPLED_EVERY)):
        if variant == "sampled" and case.name == "large":
            continue
        collected = steps.annlens_model(case, dtype)
        recorder = steps.default_collectors(collected, every)
        result.paired[variant] = paired_ratio(
            steps.annlens_training_step(collected, x, y),
            variants["annlens"],
            seconds,
            block,
        )
        recorder.detach()
    if dispatch:
        bare = steps.annlens_model(case, dtype, steps.NoDispatchDense)
        twin = steps.annlens_model(case, dtype)
        result.paired["dispatch"] = paired_ratio(
            variants["annlens"], steps.annlens_training_step(bare, x, y), seconds
        )
        result.paired["control"] = paired_ratio(
            variants["annlens"], steps.annlens_training_step(twin, x, y), seconds
        )
        full = steps.annlens_model(case, dtype)
        result.paired["input_grad"] = paired_ratio(
            steps.annlens_training_step(full, x, y, input_grad=True),
            variants["annlens"],
            seconds,
        )

    result.memory["train"] = peak_bytes(variants["annlens"])
    result.memory["infer"] = peak_bytes(variants["annlens_infer"])
    return result


def run_all(
    settings: Settings,
    cases: tuple[Case, ...] = CASES,
    dtypes: tuple[str, ...] = ("float32", "float64"),
    log: Callable[[str], Any] = print,
) -> list[CaseResult]:
    """Measure every case in every dtype on ``settings.threads`` threads."""
    results = []
    with fixed_threads(settings.threads):
        for dtype in dtypes:
            for case in cases:
                start = time.perf_counter()
                result = measure_case(case, dtype, settings, dtype == "float32")
                if dtype == "float32":
                    result.threads = measure_blas_threads(case, dtype, settings)
                ratio = result.ratio("annlens", "torch")
                log(
                    f"{case.name:>6} {dtype}: annlens/torch {ratio:.2f} "
                    f"({time.perf_counter() - start:.1f} s)"
                )
                results.append(result)
    return results


def gemm_shapes(case: Case) -> dict[str, tuple[tuple[int, int, int], bool, bool, int]]:
    """The products of one training step by label: (m, k, n), transposes, count.

    Forward ``x W`` (batch, in)·(in, out); backward ``xᵀ delta`` and, for every
    layer but the first, ``delta Wᵀ``. Equal products are counted, not repeated.
    """
    shapes: dict[str, tuple[tuple[int, int, int], bool, bool, int]] = {}

    def add(label: str, mkn: tuple[int, int, int], left_t: bool, right_t: bool) -> None:
        count = shapes[label][3] + 1 if label in shapes else 1
        shapes[label] = (mkn, left_t, right_t, count)

    b = case.batch
    for index, (n_in, n_out) in enumerate(case.layers):
        add(f"x W {b}×{n_in}·{n_in}×{n_out}", (b, n_in, n_out), False, False)
        add(f"xᵀ delta {n_in}×{b}·{b}×{n_out}", (n_in, b, n_out), True, False)
        if index > 0:
            add(f"delta Wᵀ {b}×{n_out}·{n_out}×{n_in}", (b, n_out, n_in), False, True)
    return shapes


def measure_blas_threads(
    case: Case, dtype: str, settings: Settings
) -> list[ThreadChoice]:
    """Median seconds of each product of the step on 1 and on 2 BLAS threads.

    The two thread counts alternate round by round; each product is called
    a few times in a row per round.
    """
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(3)
    calls, counts = {}, {}
    for label, ((m, k, n), left_t, right_t, count) in gemm_shapes(case).items():
        a = rng.standard_normal((k, m) if left_t else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if right_t else (k, n)).astype(dtype)
        left, right = (a.T if left_t else a), (b.T if right_t else b)
        calls[label] = functools.partial(np.matmul, left, right)
        counts[label] = count

    samples: dict[tuple[str, int], list[float]] = {}
    for round_index in range(max(settings.rounds, 1)):
        for threads in (1, 2) if round_index % 2 == 0 else (2, 1):
            with threadpool_limits(limits=threads, user_api="blas"):
                for label, call in calls.items():
                    times = samples.setdefault((label, threads), [])
                    for _ in range(settings.warmup + 3):
                        start = time.perf_counter()
                        call()
                        times.append(time.perf_counter() - start)
    return [
        ThreadChoice(
            label,
            counts[label],
            float(np.median(samples[(label, 1)])),
            float(np.median(samples[(label, 2)])),
        )
        for label in calls
    ]
