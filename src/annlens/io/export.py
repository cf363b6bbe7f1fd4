"""Export a run's stored tables as CSV, Parquet or JSON.

Each ``<table>.parquet`` of a run directory (metrics, statistics, and any
other) becomes ``export/<table>.<format>``: CSV with a header row and no
index; JSON as a list of row objects, each number written as it is stored (the
shortest text that reads back to the same float) and NaN and ±Inf, which
JSON cannot hold, as null; Parquet as a copy.
Files are written atomically, with the run directory locked (see
:mod:`annlens.io.lock`); a run that has not completed is refused. A folder
without ``manifest.json`` is exported too; a ``.lock`` file the export made
there is removed when it ends, whether it succeeds or fails.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from annlens.errors import ConfigError
from annlens.io.atomic import atomic_write
from annlens.io.lock import RunLock
from annlens.io.rundir import RunDir
from annlens.io.tables import read_parquet

FORMATS = ("csv", "parquet", "json")


def export(
    run_dir: str | os.PathLike[str] | RunDir,
    format: str = "csv",
    out_dir: str | os.PathLike[str] | None = None,
    tables: list[str] | None = None,
) -> list[Path]:
    """Convert a run's tables; return the paths written.

    Parameters
    ----------
    run_dir : path-like or RunDir
        The run directory.
    format : {"csv", "parquet", "json"}
        The output format.
    out_dir : path-like, optional
        Where to write (default ``<run_dir>/export``).
    tables : list of str, optional
        The tables to convert (default: all of them).

    Raises
    ------
    ConfigError
        An unknown format, a run whose manifest says it has not completed, a
        run directory holding no tables, an unknown table name, or a table
        that cannot be read (refused before any file is written).
    RunLockedError
        Another process runs or resumes the run directory.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if format not in FORMATS:
        raise ConfigError(f"export format must be one of {FORMATS}, got {format!r}")
    with RunLock(run.path, transient=True):
        if run.manifest_path.is_file():
            run.require_completed("export")
        return _export(run, format, out_dir, tables)


def _export(
    run: RunDir,
    format: str,
    out_dir: str | os.PathLike[str] | None,
    tables: list[str] | None,
) -> list[Path]:
    """The body of :func:`export`, with the run directory locked."""
    stored = run.tables()
    if isinstance(tables, str):
        raise ConfigError(
            f"export tables must be a list of table names, got the string "
            f"{tables!r}; help: tables=[{tables!r}]"
        )
    chosen = stored if tables is None else list(tables)
    unknown = sorted(set(chosen) - set(stored))
    if unknown or not stored:
        raise ConfigError(
            f"run directory {str(run.path)!r} holds tables {stored}; "
            f"cannot export {unknown or 'anything'}"
        )

    target = Path(out_dir) if out_dir is not None else run.export_dir
    if target.exists() and not target.is_dir():
        raise ConfigError(
            f"cannot export into {str(target)!r}: it is a file, where the "
            "exported tables go into a folder; help: move the file away"
        )
    for name in chosen:  # a damaged table is refused before anything is written
        read_parquet(run.table_path(name), columns=[])
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in chosen:
        frame = read_parquet(run.table_path(name))
        path = target / f"{name}.{format}"
        with atomic_write(path, "wb" if format == "parquet" else "w") as handle:
            if format == "csv":
                frame.to_csv(handle, index=False)
            elif format == "json":
                json.dump(
                    _records(frame), handle, indent=1, allow_nan=False, default=str
                )
            else:
                frame.to_parquet(handle, index=False)
        written.append(path)
    return written


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as plain Python values, NaN and ±Inf as None.

    ``DataFrame.to_json`` rounds floats to ten decimals, which turns a
    gradient mean of 2e-11 into 0; Python's float text reads back exactly.
    """
    names = [str(name) for name in frame.columns]
    columns = [
        [
            None
            if value is pd.NA or (isinstance(value, float) and not math.isfinite(value))
            else value
            for value in frame[name].tolist()
        ]
        for name in frame.columns
    ]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
