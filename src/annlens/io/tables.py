"""Tables on disk: Parquet files written atomically, the statistics schema checked.

A run keeps its tables as Parquet (via pandas and pyarrow): the per-epoch
metrics (``epoch`` and one column per metric) and the long statistics table
with the columns :data:`STATISTICS_COLUMNS`, one row per value::

    step  epoch  variant  layer    stage     quantity  value
    120   3      default  dense_0  gradient  norm      0.0173

:class:`TableWriter` streams a large table to disk in row groups, so it need
not be held in memory whole; the file appears, complete, when it is closed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from annlens.errors import ConfigError
from annlens.io.atomic import atomic_write, fsync_dir, naming, temporary_sibling

STATISTICS_COLUMNS = ("step", "epoch", "variant", "layer", "stage", "quantity", "value")
_STATISTICS_TYPES = {
    "step": "int64",
    "epoch": "int64",
    "variant": "str",
    "layer": "str",
    "stage": "str",
    "quantity": "str",
    "value": "float64",
}
DEFAULT_VARIANT = "default"


def to_frame(table: Any) -> Any:
    """A pandas DataFrame from a DataFrame, a list of row dicts or a dict of columns."""
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        return table
    if isinstance(table, Mapping) or (
        isinstance(table, Sequence) and not isinstance(table, (str, bytes))
    ):
        return pd.DataFrame(table)
    raise ConfigError(
        "a table must be a DataFrame, a list of row dicts or a dict of columns, "
        f"got {type(table).__name__}"
    )


def statistics_frame(table: Any) -> Any:
    """The statistics table with exactly :data:`STATISTICS_COLUMNS`, typed.

    A missing ``variant`` column is filled with ``"default"``; any other missing
    column, or an extra one, is refused.
    """
    frame = to_frame(table).copy()
    if "variant" not in frame.columns:
        frame["variant"] = DEFAULT_VARIANT
    missing = [c for c in STATISTICS_COLUMNS if c not in frame.columns]
    extra = [c for c in frame.columns if c not in STATISTICS_COLUMNS]
    if missing or extra:
        raise ConfigError(
            f"the statistics table needs columns {list(STATISTICS_COLUMNS)}; "
            f"missing {missing}, unexpected {extra}"
        )
    return frame[list(STATISTICS_COLUMNS)].astype(_STATISTICS_TYPES)


def write_parquet(path: str | os.PathLike[str], table: Any) -> Path:
    """Write ``table`` as Parquet at ``path``, atomically."""
    frame = to_frame(table)
    with atomic_write(path, "wb") as handle:
        frame.to_parquet(handle, index=False)
    return Path(path)


def read_parquet(path: str | os.PathLike[str], columns: list[str] | None = None) -> Any:
    """Read a Parquet table (or only ``columns`` of it) into a DataFrame.

    ``columns=[]`` reads no column: a cheap check that the file is a table.

    Raises
    ------
    ConfigError
        The file is missing or is not a Parquet table; the message names it.
    """
    import pandas as pd

    try:
        return pd.read_parquet(path, columns=columns)
    except FileNotFoundError as error:
        raise ConfigError(
            f"the table {str(path)!r} is missing; help: a run writes it when "
            "it completes (annlens resume finishes a stopped run); if the run "
            "had completed, the file was removed since: run the experiment again"
        ) from error
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise ConfigError(
            f"cannot read the table {str(path)!r}: {error}; help: the file is "
            "damaged; run the experiment again to rebuild it"
        ) from error


class TableWriter:
    """Stream a table to a Parquet file in row groups; it appears on :meth:`close`.

    Parameters
    ----------
    path : path-like
        The final file.
    statistics : bool
        Check and type each chunk as a statistics table.

    Examples
    --------
    >>> with TableWriter(run.statistics_path) as writer:  # doctest: +SKIP
    ...     for chunk in chunks:
    ...         writer.write(chunk)
    """

    def __init__(self, path: str | os.PathLike[str], statistics: bool = True) -> None:
        self.path = Path(path)
        self.statistics = statistics
        self.rows = 0
        self._temporary = temporary_sibling(self.path)
        self._writer: Any = None

    def write(self, table: Any) -> None:
        """Append a chunk of rows (same columns as the first chunk)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame = statistics_frame(table) if self.statistics else to_frame(table)
        arrow = pa.Table.from_pandas(frame, preserve_index=False)
        with naming(self.path):
            if self._writer is None:
                self._writer = pq.ParquetWriter(self._temporary, arrow.schema)
            elif arrow.schema != self._writer.schema:
                arrow = arrow.cast(self._writer.schema)
            self._writer.write_table(arrow)
        self.rows += len(frame)

    def close(self) -> Path:
        """Finish the file and move it into place."""
        if self._writer is None:  # no rows: still leave a valid (empty) table
            empty: dict[str, list[Any]] = (
                {c: [] for c in STATISTICS_COLUMNS} if self.statistics else {}
            )
            self.write(empty)
        with naming(self.path):
            self._writer.close()
            with open(self._temporary, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(self._temporary, self.path)
        fsync_dir(self.path.parent)
        return self.path

    def abort(self) -> None:
        """Drop what was written; the final file is left as it was."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        with contextlib.suppress(OSError):
            self._temporary.unlink()

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        return f"TableWriter(path={str(self.path)!r}, rows={self.rows})"
