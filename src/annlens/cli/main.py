"""The ``annlens`` command line: one experiment file in, a run directory out.

Commands: ``run``, ``report``, ``resume``, ``inspect``, ``datasets``,
``export`` and ``compare``. Each is a thin layer over the Python API in
:mod:`annlens.experiment`; errors annlens raises on purpose are printed as one
clear message and exit with status 2, without a traceback.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib
from rich.console import Console
from rich.markup import escape

from annlens.errors import AnnlensError, ConfigError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    help="annlens: see inside a neural network while it learns.",
)
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")


def _guarded(action: Callable[[], T]) -> T:
    """Run ``action``; an error annlens raised on purpose exits with status 2.

    The message is printed as it is, unwrapped (one line unless it has line
    breaks of its own, as a list of config problems does) and without
    markup, so brackets in it are shown. Trouble with the user's files is
    reported the same way: a file that cannot be read or written (OSError),
    one that is not text (UnicodeDecodeError) or not valid TOML or JSON
    (ValueError, which both decoders' errors are), a missing optional
    extra (ImportError, whose message names the extra to install), and an
    array that does not fit in memory (MemoryError, as from a huge
    data.n_samples).
    """
    try:
        return action()
    except (AnnlensError, OSError, UnicodeDecodeError, ImportError) as error:
        _fail(str(error))
    except ValueError as error:
        if not _from_a_decoder(error):
            raise
        _fail(f"{type(error).__name__}: {error}")
    except MemoryError as error:
        _fail(
            f"out of memory: {error or 'an array did not fit'}; help: use less "
            "data (data.n_samples, a smaller file), a smaller model or batch, or "
            "fewer collected tensors (collect.tensor_steps)"
        )


def _fail(message: str) -> NoReturn:
    errors.print(
        "[bold red]error:[/] " + escape(message), highlight=False, soft_wrap=True
    )
    raise typer.Exit(code=2) from None


def _from_a_decoder(error: ValueError) -> bool:
    """Whether ``error`` says a file was not valid TOML, JSON or Parquet."""
    import json

    decoders: tuple[type[BaseException], ...] = (
        tomllib.TOMLDecodeError,
        json.JSONDecodeError,
    )
    try:
        import pyarrow

        decoders += (pyarrow.ArrowInvalid,)
    except ImportError:  # pragma: no cover - pyarrow comes with the run extra
        pass
    return isinstance(error, decoders)


def _text(text: str) -> None:
    """Print plain text as it is: no markup, no wrapping."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


#: The signal that stopped this process through _interrupt, if one did.
_signalled: list[int] = []


def _interrupt(signum: int, frame: Any) -> None:
    _signalled.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def _logging(verbose: bool) -> None:
    """Warnings by default (the progress bars show the epochs); INFO when verbose."""
    # A run stopped by SIGTERM (kill, a scheduler) is marked interrupted in its
    # manifest, as one stopped by Ctrl-C is, so that `annlens resume` picks up.
    signal.signal(signal.SIGTERM, _interrupt)
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)


@app.command()
def run(
    experiment: Annotated[
        Path | None, typer.Argument(help="An experiment TOML file (default: built-in).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a key: --set optimizer.lr=0.01"),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Where run directories go.")] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Override the seed (an integer >= 0).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    verbose: Annotated[bool, typer.Option(help="Log every epoch.")] = False,
) -> None:
    """Train every variant of an experiment and write its run directory."""
    from annlens.experiment import load_config, run_experiment

    _logging(verbose)
    overrides = list(set_ or [])
    if seed is not None:
        overrides.append(f"seed={seed}")
    config = _guarded(lambda: load_config(experiment, overrides))
    result = _guarded(
        lambda: run_experiment(
            config, out=out, progress=not quiet, command=sys.argv, source=experiment
        )
    )
    console.print(result.summary_table())
    _text(f"run directory: {result.directory}")
    if result.report_path is not None:
        _text(f"report: {result.report_path}")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Rebuild the figures and report.html of a run from its stored tables."""
    from annlens.experiment import rebuild_report

    path = _guarded(lambda: rebuild_report(run_dir))
    _text(f"report: {path}")


@app.command()
def resume(
    run_dir: Annotated[Path, typer.Argument(help="A run directory to continue.")],
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    verbose: Annotated[bool, typer.Option(help="Log every epoch.")] = False,
) -> None:
    """Continue an interrupted run from its last checkpoints.

    A run that already completed is left exactly as it is: the command says
    so, shows its summary and writes nothing. A completed run that was
    stopped before its findings or report were written gets them now.
    """
    from annlens.experiment import (
        resume_experiment,
        run_is_complete,
        run_lacks_outputs,
    )

    _logging(verbose)
    complete = _guarded(lambda: run_is_complete(run_dir))
    lacking = complete and _guarded(lambda: run_lacks_outputs(run_dir))
    result = _guarded(lambda: resume_experiment(run_dir, progress=not quiet))
    if lacking:
        _text(
            f"run {result.directory} had completed training but lacked its "
            "findings or report; they were written now"
        )
    elif complete:
        _text(f"run {result.directory} is already complete; nothing was changed")
    console.print(result.summary_table())
    _text(f"run directory: {result.directory}")
    if result.report_path is not None:
        _text(f"report: {result.report_path}")


@app.command()
def inspect(
    path: Annotated[Path, typer.Argument(help="A checkpoint or a run directory.")],
) -> None:
    """Show the architecture, step and metrics of a checkpoint or run."""
    from annlens.experiment import inspect_path

    _text(_guarded(lambda: inspect_path(path)))


@app.command()
def datasets() -> None:
    """List the data sets annlens can load, with their shapes."""
    from rich.table import Table

    from annlens.data import describe_datasets

    table = Table(title="annlens data sets")
    rows: list[dict[str, Any]] = _guarded(describe_datasets)
    for column in rows[0]:
        table.add_column(str(column))
    for row in rows:
        # a regression set has no classes: say what it has instead of None
        shown = {**row, "classes": row["classes"] or f"none ({row['task']})"}
        table.add_row(*(str(value) for value in shown.values()))
    console.print(table)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    format: Annotated[str, typer.Option(help="csv, parquet or json.")] = "csv",
) -> None:
    """Write the run's metrics and statistics tables in another format."""
    from annlens.io import export as export_tables
    from annlens.io.export import FORMATS

    if format not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)}; got {format!r}")
    paths = _guarded(lambda: export_tables(run_dir, format=format))
    for written in paths:
        _text(str(written))


@app.command()
def compare(
    experiment: Annotated[
        Path | None,
        typer.Argument(
            help="An experiment TOML file, or a run directory whose report gets "
            "the comparison (default: the built-in experiment)."
        ),
    ] = None,
    steps: Annotated[
        int, typer.Option(help="Training steps side by side; fewer is faster.")
    ] = 20,
    tolerance: Annotated[
        float | None,
        typer.Option(
            help="Relative difference counted as agreement "
            "(default: 1e-4 in float32, 1e-10 in float64)."
        ),
    ] = None,
    atol: Annotated[
        float | None,
        typer.Option(
            help="Absolute difference counted as agreement whatever the relative "
            "one (default: 1e-6 in float32, 1e-12 in float64)."
        ),
    ] = None,
    rounding: Annotated[
        float | None,
        typer.Option(
            help="In float32, how many times PyTorch's own distance from float64 "
            "values annlens's may be and still agree (default 4; 0: off)."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a key: --set optimizer.lr=0.01"),
    ] = None,
) -> None:
    """Run each variant through annlens and its PyTorch twin and report differences.

    Ends with one verdict line; exits with status 1 when a quantity differs
    beyond the tolerance.
    """
    from annlens.analysis.compare import parity_table, trajectory_table, verdict
    from annlens.analysis.compare.measure import check_tolerance

    # checked here so that the message names the option, not the argument
    if steps < 1:
        _fail(f"--steps must be a whole number >= 1, got {steps}")
    limits = (tolerance, atol, rounding)
    options = ("--tolerance", "--atol", "--rounding")
    for value, option in zip(limits, options, strict=True):
        if value is None:
            continue
        try:
            check_tolerance(value, option)
        except ConfigError as error:
            _fail(str(error))
    comparisons, report_path = _guarded(
        lambda: _compare(experiment, steps, limits, list(set_ or []))
    )
    for comparison in comparisons:
        name, trajectory = comparison.name, comparison.trajectory
        console.print(
            parity_table(
                comparison.parity, f"{name}: one batch, annlens against PyTorch"
            )
        )
        if trajectory is not None:
            title = f"{name}: {steps} training steps side by side"
            console.print(trajectory_table(trajectory, title))
    if report_path is not None:
        _text(f"report: {report_path}")
    judged = verdict(comparisons)
    _text(judged.line())
    if not judged.passed:
        raise typer.Exit(code=1)


def _compare(
    source: Path | None,
    steps: int,
    limits: tuple[float | None, float | None, float | None],
    overrides: list[str],
) -> tuple[list[Any], Path | None]:
    """The comparisons of an experiment file, or of a run directory (stored in
    it, with its report rebuilt)."""
    from annlens.experiment import compare_experiment, load_config
    from annlens.experiment.compare import compare_run

    if source is not None and source.is_dir():
        if overrides:
            raise ConfigError(
                f"--set changes an experiment file, but {str(source)!r} is a run "
                "directory, which is compared with the config it ran with; help: "
                "give the experiment file instead"
            )
        return compare_run(source, steps, *limits)
    config = load_config(source, overrides)
    return compare_experiment(config, steps, *limits), None


def main() -> None:
    """The console-script entry point."""
    try:
        app()
    except SystemExit as stop:
        # a run stopped by SIGTERM exits with 128 + 15, as a process that
        # signal ends does, not with Ctrl-C's 130
        if _signalled and stop.code == 130:
            raise SystemExit(128 + _signalled[0]) from None
        raise


if __name__ == "__main__":
    main()
