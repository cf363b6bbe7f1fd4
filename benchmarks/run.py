"""Benchmark annlens against PyTorch and write benchmarks/RESULTS.md.

Usage::

    python benchmarks/run.py            # the full run (make bench)
    python benchmarks/run.py --quick    # fewer rounds, for a fast look
    python benchmarks/run.py --cases tiny,medium --dtypes float32

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, when set, make OpenBLAS pick a slower
kernel than the one it detects. Before NumPy is imported, this script starts
itself again without them, and RESULTS.md says which were removed and which
kernel threadpoolctl reports. Nothing else in annlens changes them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

SLOW_OPENBLAS_SETTINGS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
REMOVED = "ANNLENS_BENCH_REMOVED"
HERE = Path(__file__).resolve().parent


def restart_without_slow_openblas_settings() -> None:
    """Start this script again with the OpenBLAS overrides removed, if any are set."""
    present = [key for key in SLOW_OPENBLAS_SETTINGS if key in os.environ]
    if not present:
        return
    env = {k: v for k, v in os.environ.items() if k not in SLOW_OPENBLAS_SETTINGS}
    env[REMOVED] = ", ".join(f"{key}={os.environ[key]}" for key in present)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--cases", default="", help="comma-separated case names")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    options = parse(argv)
    sys.path.insert(0, str(HERE))
    import measure
    import report
    from cases import CASES, get_case

    settings = measure.Settings.quick() if options.quick else measure.Settings()
    settings = dataclasses.replace(settings, threads=options.threads)
    cases = (
        tuple(get_case(name) for name in options.cases.split(","))
        if options.cases
        else CASES
    )
    dtypes = tuple(options.dtypes.split(","))
    load_before = os.getloadavg()[0]
    results = measure.run_all(settings, cases, dtypes)
    load = f"{load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    mode = " --quick" if options.quick else ""
    removed = os.environ.get(REMOVED, "")
    report.write(options.output, results, settings, removed, mode, load)
    print(f"wrote {options.output}")


if __name__ == "__main__":
    restart_without_slow_openblas_settings()
    main()
