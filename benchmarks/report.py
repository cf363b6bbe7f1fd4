"""RESULTS.md: the machine, the libraries, the tables and the targets.

Everything in the file is measured by the run that writes it; the only fixed
text is how the measurement was made. Each target not met gets its measured
reason: how long the step's matrix products alone take in NumPy's BLAS,
against PyTorch's whole step, says whether the gap is in the BLAS or in
annlens's own work around it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from measure import CaseResult, Settings

FLOAT64_SLACK = 1.10
DISPATCH_TARGET = 0.02
STAT_TARGET = 0.10
COLLECTORS_TARGET = 0.15
MATMUL_TARGET = 0.90
PHASES = ("forward", "loss", "backward", "optimizer")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_family() -> str:
    try:
        fields: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        return (
            f"family {fields.get('cpu family', '?')}, model {fields.get('model', '?')}"
        )
    except OSError:
        return ""


def git_version() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" (with uncommitted changes)" if dirty else "")


def blas_lines(threads: int) -> list[str]:
    """NumPy's and PyTorch's BLAS, and what threadpoolctl sees while timing."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    lines = []
    try:
        config: Any = np.show_config(mode="dicts")  # type: ignore[call-arg]
        blas = config["Build Dependencies"]["blas"]
        lines.append(f"- NumPy built with: {blas.get('name')} {blas.get('version')}")
    except (TypeError, KeyError):
        lines.append("- NumPy built with: (numpy.show_config gave no details)")
    with threadpool_limits(limits=threads):
        for pool in threadpool_info():
            lines.append(
                f"- threadpoolctl: {pool.get('internal_api')} "
                f"{pool.get('version') or ''} from {Path(pool['filepath']).name}, "
                f"kernel {pool.get('architecture', 'n/a')}, "
                f"threading {pool.get('threading_layer', 'n/a')}, "
                f"{pool.get('num_threads')} threads while timing"
            )
    shown = torch.__config__.show()
    blas_info = [
        part.strip()
        for line in shown.splitlines()
        for part in line.split(",")
        if part.strip().startswith(("BLAS_INFO", "LAPACK_INFO", "USE_MKLDNN"))
    ]
    lines.append(f"- PyTorch: {', '.join(blas_info) or 'BLAS not reported'}")
    lines.append(f"- PyTorch threads while timing: {threads} (torch.set_num_threads)")
    return lines


def machine_section(settings: Settings, removed: str, load: str) -> list[str]:
    import torch

    import annlens

    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    env = removed or "none were set"
    return [
        "## Machine and libraries",
        "",
        f"- CPU: {cpu_model()} ({cpu_family()}), {cores} logical cores, "
        f"{usable} usable by this process",
        f"- {platform.system()} {platform.release()}, Python {sys.version.split()[0]}",
        f"- annlens {annlens.__version__} at commit {git_version()}",
        f"- NumPy {np.__version__}, PyTorch {torch.__version__}",
        *blas_lines(settings.threads),
        f"- OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed before NumPy loaded: {env}",
        f"- Load average (1 minute, all processes) {load}",
        "",
    ]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.1f}"


def _percent(value: float | None) -> str:
    return "pending" if value is None else f"{value * 100:+.1f}%"


def _mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def training_table(results: list[CaseResult], dtype: str) -> list[str]:
    lines = [
        f"### Training step, {dtype}",
        "",
        "| case | network | annlens ms | PyTorch ms | annlens/PyTorch | "
        "target (float32) | ratio of fastest tenths | GEMMs alone ms "
        "| spread annlens / PyTorch |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        if r.dtype != dtype:
            continue
        ours, theirs = r.timings["annlens"], r.timings["torch"]
        lines.append(
            f"| {r.case.name} | {r.case.describe()} | {_ms(ours.median)} | "
            f"{_ms(theirs.median)} | {r.ratio('annlens', 'torch'):.2f} | "
            f"{r.case.target:.2f} | {r.ratio('annlens', 'torch', low=True):.2f} "
            f"| {_ms(r.timings['matmuls'].median)} | "
            f"{ours.spread:.0%} / {theirs.spread:.0%} |"
        )
    lines += [
        "",
        'Times are medians over every call. "Ratio of fastest tenths" divides '
        "the 10th percentiles instead: on a machine other processes keep busy, "
        "a pool of two threads stalls whenever one of them is descheduled, and "
        "the fastest tenth of the calls is the better estimate of an idle "
        "machine.",
    ]
    return [*lines, ""]


def hooks_table(results: list[CaseResult]) -> list[str]:
    lines = [
        "### Hooks: the same training step with hooks attached (extra time, "
        "timed call by call against the step without hooks)",
        "",
        "| case | dtype | no hooks ms | dispatch removed | one stat hook per layer "
        "| default collectors, every step | default collectors, every 10 steps "
        "| `model.backward` instead |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        removed, control = r.overhead("dispatch"), r.overhead("control")
        sampled = (
            "n/a" if "sampled" not in r.paired else _percent(r.overhead("sampled"))
        )
        dispatch = "n/a"
        if removed is not None and control is not None:
            dispatch = f"{removed:+.1%} (control {control:+.1%})"
        lines.append(
            f"| {r.case.name} | {r.dtype} | {_ms(r.timings['annlens'].median)} | "
            f"{dispatch} | {_percent(r.overhead('stat'))} | "
            f"{_percent(r.overhead('collectors'))} | "
            f"{sampled} | "
            f"{_percent(r.overhead('input_grad')) if r.dtype == 'float32' else 'n/a'} |"
        )
    lines += [
        "",
        '"dispatch removed" is how much slower the normal step is than the same '
        "step with Dense layers whose forward and backward skip every "
        "`if self.hooked` check (positive: the checks cost that much), timed call "
        "by call in alternation (float32 only). The control is the same step "
        "against an identical copy of itself, timed the same way: the noise "
        "floor of that comparison. The collector columns time blocks of ten "
        "calls against ten plain calls (the large case call by call, and not "
        "sampled), so that "
        "the steps that write rows count with the others; the default set writes "
        "parameter rows one recorded step in ten. The last column is the step with "
        "`model.backward`, which also computes dL/d input at the first layer, "
        "against the step with `model.backward_parameters`, which skips it; a "
        "hook at the first layer's `backward` stage brings that product back.",
        "",
    ]
    return lines


def inference_table(results: list[CaseResult]) -> list[str]:
    lines = [
        "### Inference (forward only, evaluation mode, nothing kept)",
        "",
        "| case | dtype | annlens ms | PyTorch ms (inference_mode) | annlens/PyTorch |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.case.name} | {r.dtype} | {_ms(r.timings['annlens_infer'].median)} "
            f"| {_ms(r.timings['torch_infer'].median)} | "
            f"{r.ratio('annlens_infer', 'torch_infer'):.2f} |"
        )
    return [*lines, ""]


def throughput(result: CaseResult) -> float:
    """GFLOP/s of the annlens training step's matrix products.

    Forward ``x W``, ``xᵀ delta`` for every layer and ``delta Wᵀ`` for every
    layer but the first (whose input needs no gradient): the same products
    PyTorch computes.
    """
    forward = result.case.matmul_flops()
    first_in, first_out = result.case.layers[0]
    skipped = 2 * result.case.batch * first_in * first_out
    return (3 * forward - skipped) / result.timings["annlens"].median / 1e9


def phases_table(results: list[CaseResult]) -> list[str]:
    lines = [
        "### Where the annlens step spends its time (each part timed alone)",
        "",
        "| case | dtype | forward ms | loss ms | backward ms | optimizer ms "
        "| sum ms | step ms | GEMMs alone ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        parts = [r.timings[f"phase_{p}"].median for p in PHASES]
        lines.append(
            f"| {r.case.name} | {r.dtype} | "
            + " | ".join(_ms(p) for p in parts)
            + f" | {_ms(sum(parts))} | {_ms(r.timings['annlens'].median)} "
            f"| {_ms(r.timings['matmuls'].median)} |"
        )
    return [*lines, ""]


def threads_table(results: list[CaseResult]) -> list[str]:
    """Each product of the step on 1 and 2 BLAS threads, and what choosing pays."""
    measured = [r for r in results if r.threads]
    if not measured:
        return []
    lines = [
        "### BLAS threads per product (float32): would one thread help?",
        "",
        "| case | product | times per step | 1 thread µs | 2 threads µs | 1/2 |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    savings = []
    for r in measured:
        for choice in r.threads:
            lines.append(
                f"| {r.case.name} | {choice.label} | {choice.count} "
                f"| {choice.one * 1e6:.1f} | {choice.two * 1e6:.1f} "
                f"| {choice.one / choice.two:.2f} |"
            )
        saved = sum(max(0.0, c.two - c.one) * c.count for c in r.threads)
        step = r.timings["annlens"].median
        savings.append(
            f"- {r.case.name}: choosing the faster count for every product would "
            f"save {saved * 1e6:.0f} µs a step, {saved / step:.1%} of the step."
        )
    lines += [
        "",
        "annlens leaves the thread count to the BLAS (OpenBLAS already runs "
        "products below about 2.6e5 multiply-adds on one thread); switching it "
        "per layer would save at most:",
        "",
        *savings,
        "",
    ]
    return lines


def memory_table(results: list[CaseResult]) -> list[str]:
    lines = [
        "### Peak memory of one annlens call (tracemalloc, above the resting state)",
        "",
        "| case | dtype | training step MiB | inference MiB |",
        "| --- | --- | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.case.name} | {r.dtype} | {r.memory['train'] / 2**20:.2f} | "
            f"{r.memory['infer'] / 2**20:.2f} |"
        )
    lines += [
        "",
        "tracemalloc sees NumPy's allocations, not PyTorch's allocator, so "
        "PyTorch has no column here.",
        "",
    ]
    return lines


def targets_section(results: list[CaseResult]) -> list[str]:
    by_key = {(r.case.name, r.dtype): r for r in results}
    lines = [
        "## Targets",
        "",
        "Verdicts use the medians, as the targets are set.",
        "",
        "| target | measured | verdict |",
        "| --- | --- | --- |",
    ]
    reasons = []
    for (name, dtype), r in by_key.items():
        if dtype != "float32":
            continue
        ratio = r.ratio("annlens", "torch")
        assert ratio is not None
        ok = ratio <= r.case.target
        low = r.ratio("annlens", "torch", low=True)
        lines.append(
            f"| {name}: annlens/PyTorch <= {r.case.target} (float32) | {ratio:.2f} "
            f"(fastest tenths {low:.2f}) | {_mark(ok)} |"
        )
        if not ok:
            reasons.append(training_reason(r))
        other = by_key.get((name, "float64"))
        if other is not None:
            ratio64 = other.ratio("annlens", "torch")
            assert ratio64 is not None
            ok64 = ratio64 <= ratio * FLOAT64_SLACK
            low64 = other.ratio("annlens", "torch", low=True)
            lines.append(
                f"| {name}: float64 ratio <= 1.1 × float32's ({ratio * 1.1:.2f}) "
                f"| {ratio64:.2f} (fastest tenths {low64:.2f}) | {_mark(ok64)} |"
            )
            if not ok64:
                reasons.append(training_reason(other, r))

    large = by_key.get(("large", "float32"))
    if large is not None and large.matmul_rate:
        rate = throughput(large)
        fraction = rate * 1e9 / large.matmul_rate
        lines.append(
            f"| large float32 step >= 90% of the plain matmul rate "
            f"({large.matmul_rate / 1e9:.0f} GFLOP/s) | {rate:.0f} GFLOP/s, "
            f"{fraction:.0%} | {_mark(fraction >= MATMUL_TARGET)} |"
        )
        if fraction < MATMUL_TARGET:
            gemm = large.timings["matmuls"].median
            reasons.append(
                f"- large, GFLOP/s: the step's products alone, back to back, "
                f"take {_ms(gemm)} ms, "
                f"{gemm / large.timings['annlens'].median:.0%} of the step, and "
                f"run at {gemm_rate(large) / large.matmul_rate:.0%} of the plain "
                "product's rate: the rest of the step is elementwise work, and "
                "the products with transposed operands and with the 10-unit "
                "output layer run below the rate of one large square product."
            )

    for r in results:
        if r.dtype != "float32":
            continue
        removed, control = r.overhead("dispatch"), r.overhead("control")
        if removed is not None and control is not None:
            ok = removed <= DISPATCH_TARGET
            lines.append(
                f"| {r.case.name}: no-hooks dispatch <= 2% | {removed:+.1%} "
                f"(noise floor {control:+.1%}) | {_mark(ok)} |"
            )
            if not ok:
                noisy = abs(removed) <= 2 * abs(control) + 0.01
                verdict = (
                    "within twice the control's deviation, so the machine's noise "
                    "at the time hides the checks' cost"
                    if noisy
                    else "well beyond the control: on this run the checks cost that"
                )
                reasons.append(
                    f"- {r.case.name} dispatch: {removed:+.1%}, against "
                    f"{control:+.1%} for the same step timed against a copy of "
                    f"itself; {verdict}."
                )
    medium = by_key.get(("medium", "float32"))
    if medium is not None:
        stat = medium.overhead("stat")
        assert stat is not None
        lines.append(
            f"| medium: one stat hook per layer <= 10% | {stat:+.1%} "
            f"| {_mark(stat <= STAT_TARGET)} |"
        )
        if stat > STAT_TARGET:
            reasons.append(hooks_reason(medium, "stat", "the statistics hooks"))
        collectors = medium.overhead("collectors")
        verdict = "pending" if collectors is None else _mark(collectors <= 0.15)
        lines.append(
            f"| medium: default collectors <= 15% | {_percent(collectors)} "
            f"| {verdict} |"
        )
        if collectors is not None and collectors > COLLECTORS_TARGET:
            reasons.append(collectors_reason(medium, "collectors"))
    for name in ("tiny", "deep"):
        r = by_key.get((name, "float32"))
        sampled = None if r is None else r.overhead("sampled")
        if r is None or sampled is None:
            continue
        ok = sampled <= COLLECTORS_TARGET
        lines.append(
            f"| {name}: default collectors every 10 steps <= 15% | {sampled:+.1%} "
            f"| {_mark(ok)} |"
        )
        if not ok:
            reasons.append(collectors_reason(r, "sampled"))
    lines.append("")
    if reasons:
        lines += ["### Why a target is not met (measured)", "", *reasons, ""]
    return lines


def hooks_reason(r: CaseResult, variant: str, who: str) -> str:
    """The measured overhead of a hook variant, against the plain step."""
    overhead = r.overhead(variant)
    assert overhead is not None
    step = r.timings["annlens"].median
    return (
        f"- {r.case.name} {r.dtype}, {variant}: {overhead:+.1%}, "
        f"{overhead * step * 1e6:.0f} µs a step of {_ms(step)} ms spent in {who} "
        "and their dispatch."
    )


def collectors_reason(r: CaseResult, variant: str) -> str:
    """Where the default collectors' time goes: the steps they write, the rest."""
    every_step = r.overhead("collectors")
    overhead = r.overhead(variant)
    assert overhead is not None and every_step is not None
    step = r.timings["annlens"].median
    per_layer = every_step * step / len(r.case.layers)
    text = (
        f"- {r.case.name} {r.dtype}, default collectors "
        f"{'every step' if variant == 'collectors' else 'every 10 steps'}: "
        f"{overhead:+.1%}. Recording at every step costs {every_step:+.1%} on "
        f"average ({per_layer * 1e6:.0f} µs per layer and step: the hook "
        "dispatch, the summary reductions of z, a and delta, the per-unit and "
        "per-sample passes of the other collectors, the rows they write, and one "
        "step in ten the parameter-level rows). Each of these is a NumPy call "
        "run on one thread, beside a step whose products use two."
    )
    if variant == "sampled":
        rest = overhead - every_step / 10
        text += (
            f" One step in ten of that is {every_step / 10:+.1%}; the other nine "
            f"steps, where the recorder's hooks are paused, add {rest:+.1%} (its "
            "watcher opening and closing the gates, and the gradient cosine "
            "reading the gradient of the step before each recorded one). On "
            "layers this small each observed array costs Python work that the "
            "step's own arithmetic cannot hide."
        )
    return text


def gemm_rate(r: CaseResult) -> float:
    """Flops per second of the step's products alone, back to back."""
    forward = r.case.matmul_flops()
    first_in, first_out = r.case.layers[0]
    flops = 3 * forward - 2 * r.case.batch * first_in * first_out
    return flops / r.timings["matmuls"].median


def training_reason(r: CaseResult, float32: CaseResult | None = None) -> str:
    """Where the time goes: the BLAS (the products alone) or the work around it.

    For a float64 ratio judged against float32's, ``float32`` is the same case
    in float32, and the share of the products alone is compared between both.
    """
    ours = r.timings["annlens"].median
    theirs = r.timings["torch"].median
    gemm = r.timings["matmuls"].median
    parts = {phase: r.timings[f"phase_{phase}"].median for phase in PHASES}
    largest = max(parts, key=lambda phase: parts[phase])
    listed = ", ".join(f"{phase} {_ms(value)}" for phase, value in parts.items())
    text = (
        f"- {r.case.name} {r.dtype}: annlens {_ms(ours)} ms against PyTorch "
        f"{_ms(theirs)} ms; annlens's parts, each timed alone, take {listed} ms, "
        f"the largest being the {largest} ({parts[largest] / sum(parts.values()):.0%}"
        f"). The step's matrix products alone take {_ms(gemm)} ms in NumPy's "
        f"BLAS, {gemm / theirs:.0%} of PyTorch's whole step."
    )
    if float32 is not None:
        gemm32 = float32.timings["matmuls"].median / float32.timings["torch"].median
        text += (
            f" In float32 the same products took {gemm32:.0%} of PyTorch's step: "
            + (
                "NumPy's BLAS loses more ground to PyTorch's in float64."
                if gemm / theirs > gemm32 * FLOAT64_SLACK
                else "the products alone do not explain the difference."
            )
        )
    return text


def write(
    path: Path,
    results: list[CaseResult],
    settings: Settings,
    removed: str,
    mode: str,
    load: str,
) -> None:
    """Write RESULTS.md."""
    dtypes = sorted({r.dtype for r in results}, key=["float32", "float64"].index)
    lines = [
        "# annlens side by side with PyTorch",
        "",
        f"Written by `make bench` (`python benchmarks/run.py{mode}`); "
        "every number below comes from that run.",
        "",
        *machine_section(settings, removed, load),
        "## How it is measured",
        "",
        f"Both frameworks run in the same process on {settings.threads} threads "
        "(threadpoolctl limits NumPy's BLAS, torch.set_num_threads limits "
        "PyTorch), in the same dtype, from the same weights and batch. Each "
        f"variant is warmed up ({settings.warmup} calls), then timed for "
        f"{settings.rounds} rounds in rotating order, annlens and PyTorch "
        f"alternating, with a rest of {settings.settle:g} s before each round (so "
        "that OpenBLAS's workers, which spin for about 0.1 s after a product, "
        "have gone to sleep before PyTorch's threads need the cores, and the "
        "other way round) and garbage collection off inside a round. Every call is "
        "timed on its own; the tables show the median over all calls and the "
        "interquartile spread (a wide spread means other processes were "
        "competing for the cores). A training "
        "step is forward, softmax cross-entropy with its gradient, backward and "
        "a plain SGD update; annlens's backward is `model.backward_parameters`, "
        "which, like PyTorch for an input that needs no gradient, does not "
        'compute dL/d input at the first layer. "GEMMs alone" is the same '
        "step's matrix products run back to back in NumPy, the floor under any "
        "NumPy engine on this BLAS.",
        "",
        "## Results",
        "",
    ]
    for dtype in dtypes:
        lines += training_table(results, dtype)
    lines += phases_table(results) + hooks_table(results)
    lines += inference_table(results) + threads_table(results)
    lines += memory_table(results)
    lines += targets_section(results)
    path.write_text("\n".join(lines))
