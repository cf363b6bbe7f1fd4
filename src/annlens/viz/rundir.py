"""Reading what a report needs from a run directory.

:func:`load_run` looks for the tables by name, in the run folder, in its
``tables/`` folder, and in one sub-folder per variant (``variants/<name>/`` or
``<name>/``), and reads each as Parquet, CSV or JSON lines:

=============  ============================================
table          file names tried (any of the extensions)
=============  ============================================
statistics     ``statistics``, ``stats``
metrics        ``metrics``, ``history``
histograms     ``histograms``
spectra        ``spectra``
=============  ============================================

It also reads ``config.toml`` or ``config.json`` (the resolved experiment),
``manifest.json``, ``findings.json`` (a list of finding objects) and
``compare.json`` (what ``annlens compare`` found against PyTorch) when they
are there. Tables found in a variant's folder without a ``variant`` column (or
with an empty one) get that folder's name.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from annlens.errors import ConfigError, DataError
from annlens.training.history import History

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

logger = logging.getLogger("annlens")

TABLE_NAMES = {
    "stats": ("statistics", "stats"),
    "metrics": ("metrics", "history"),
    "histograms": ("histograms",),
    "spectra": ("spectra",),
}
EXTENSIONS = (".parquet", ".csv", ".jsonl")


@dataclass
class RunTables:
    """Everything a report is built from; every part is optional.

    Attributes
    ----------
    stats, metrics, histograms, spectra : DataFrame or None
        The tables described in :mod:`annlens.viz.tables`.
    config : dict or None
        The resolved experiment (sections, ``variants``, ``name``, ...).
    manifest : dict or None
        The run manifest (versions, seed, git commit, times).
    findings : list or None
        Diagnostic findings; None when diagnostics were not run.
    comparisons : list of Comparison or None
        Each variant against its PyTorch twin
        (:class:`~annlens.analysis.compare.Comparison`); None when no
        comparison was made.
    """

    stats: pd.DataFrame | None = None
    metrics: pd.DataFrame | None = None
    histograms: pd.DataFrame | None = None
    spectra: pd.DataFrame | None = None
    config: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    findings: list[Any] | None = field(default=None)
    comparisons: list[Any] | None = field(default=None)

    def __post_init__(self) -> None:
        # the History that Trainer.fit returns stands for its metrics table
        if isinstance(self.metrics, History):
            self.metrics = pd.DataFrame(self.metrics.to_dict())
        for name in TABLE_NAMES:
            table = getattr(self, name)
            if table is not None and not isinstance(table, pd.DataFrame):
                raise ConfigError(
                    f"report table {name!r} must be a pandas DataFrame"
                    + (" or a History" if name == "metrics" else "")
                    + f", got {type(table).__name__}"
                )

    def __repr__(self) -> str:
        parts = [
            f"{name}={len(table)} rows"
            for name in TABLE_NAMES
            if (table := getattr(self, name)) is not None
        ]
        parts += [n for n in ("config", "manifest") if getattr(self, n) is not None]
        if self.findings is not None:
            parts.append(f"findings={len(self.findings)}")
        if self.comparisons is not None:
            parts.append(f"comparisons={len(self.comparisons)}")
        return f"RunTables({', '.join(parts) or 'empty'})"


def read_table(path: Path) -> pd.DataFrame:
    """A table from a Parquet, CSV or JSON-lines file."""
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            return pd.read_csv(path, keep_default_na=False, na_values=["", "NaN"])
        return pd.read_json(path, lines=True)
    except Exception as error:  # pandas and pyarrow raise many kinds
        raise DataError(f"cannot read the table {str(path)!r}: {error}") from error


def _find(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        for extension in EXTENSIONS:
            path = folder / f"{name}{extension}"
            if path.is_file():
                return path
    return None


def _variant_folders(run_dir: Path) -> list[Path]:
    roots = [run_dir / "variants", run_dir]
    folders = []
    for root in roots:
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir()):
            if child.is_dir() and child.name not in ("tables", "variants"):
                folders.append(child)
    return folders


def _with_variant(table: pd.DataFrame, variant: str) -> pd.DataFrame:
    if "variant" not in table.columns:
        return table.assign(variant=variant)
    empty = table["variant"].isna() | (table["variant"].astype(str) == "")
    if empty.all():
        return table.assign(variant=variant)
    return table


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {str(path)!r} as JSON: {error}") from error


def load_run(run_dir: str | os.PathLike[str]) -> RunTables:
    """The tables, config, manifest and findings of a run directory.

    Raises
    ------
    DataError
        The folder does not exist, or holds none of the tables.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise DataError(f"run directory {str(root)!r} does not exist")
    result = RunTables()
    for attribute, names in TABLE_NAMES.items():
        frames = []
        for folder in (root, root / "tables"):
            path = _find(folder, names)
            if path is not None:
                frames.append(read_table(path))
                break
        if not frames:
            for folder in _variant_folders(root):
                path = _find(folder, names) or _find(folder / "tables", names)
                if path is not None:
                    frames.append(_with_variant(read_table(path), folder.name))
        if frames:
            setattr(result, attribute, pd.concat(frames, ignore_index=True))
    if all(getattr(result, name) is None for name in TABLE_NAMES):
        raise DataError(
            f"run directory {str(root)!r} holds none of the tables "
            f"{sorted(n for names in TABLE_NAMES.values() for n in names)} "
            f"(as {', '.join(EXTENSIONS)})"
        )

    if (root / "config.toml").is_file():
        try:
            result.config = tomllib.loads((root / "config.toml").read_text("utf-8"))
        except (OSError, ValueError) as error:
            raise DataError(
                f"cannot read {str(root / 'config.toml')!r}: {error}"
            ) from error
    elif (root / "config.json").is_file():
        result.config = _read_json(root / "config.json")
    if (root / "manifest.json").is_file():
        result.manifest = _read_json(root / "manifest.json")
    if (root / "findings.json").is_file():
        findings = _read_json(root / "findings.json")
        if not isinstance(findings, list):
            raise DataError(
                "findings.json must hold a list of findings, got "
                f"{type(findings).__name__}"
            )
        result.findings = findings
    if (root / "compare.json").is_file():
        result.comparisons = read_comparisons(root / "compare.json")
    logger.debug("loaded %r from %s", result, root)
    return result


def read_comparisons(path: Path) -> list[Any]:
    """The comparisons ``annlens compare`` stored in ``path``.

    Raises
    ------
    DataError
        When the file is not JSON, not a list, or a comparison in it is
        damaged, naming the file.
    """
    from annlens.analysis.compare import Comparison

    stored = _read_json(path)
    if not isinstance(stored, list):
        raise DataError(
            f"{str(path)!r} must hold a list of comparisons, got "
            f"{type(stored).__name__}"
        )
    try:
        return [Comparison.from_dict(entry) for entry in stored]
    except DataError as error:
        raise DataError(f"cannot read {str(path)!r}: {error}") from error
