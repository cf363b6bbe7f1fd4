"""Where a sample came from: its data row and, for a CSV file, its line.

Messages about bad data name the place a user can open and fix. A sample's
*data row* is its position in the data as the source delivered it, counting
from 0 (the first row under a CSV header is data row 0), before rows holding
NaN are dropped. For a CSV file the *line* is the 1-based line of the file
where that row starts, the number an editor shows.

The lines are found only when a message needs them, by reading the file
again with Python's :mod:`csv` module and skipping the blank lines pandas
skips. When that reading does not give as many rows as pandas read (an
unusual dialect), the line is left out rather than guessed.
"""

from __future__ import annotations

import csv
import functools
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Source:
    """The file a data set was read from.

    Attributes
    ----------
    path : str
        The file.
    csv_separator : str or None
        The field separator when the file was read as CSV; None for NumPy
        files, whose rows have no lines.
    n_rows : int or None
        The number of data rows read; the lines found must count as many.
    """

    path: str
    csv_separator: str | None = None
    n_rows: int | None = None

    def line_of(self, row: int) -> int | None:
        """The 1-based file line where data row ``row`` starts, when known."""
        if self.csv_separator is None:
            return None
        lines = _csv_lines(self.path, self.csv_separator, _stamp(self.path))
        if lines is None or len(lines) != self.n_rows or not 0 <= row < len(lines):
            return None
        return lines[row]

    def __repr__(self) -> str:
        kind = "csv" if self.csv_separator is not None else "numpy"
        return f"Source({self.path!r}, {kind})"


def describe_row(row: int, source: Source | None) -> str:
    """``"data row 17 (line 19 of data.csv)"``, or ``"data row 17"``."""
    if source is None or (line := source.line_of(row)) is None:
        return f"data row {row}"
    return f"data row {row} (line {line} of {Path(source.path).name})"


def _stamp(path: str) -> tuple[float, int]:
    """The file's modification time and size, so an edited file is read again."""
    try:
        status = os.stat(path)
    except OSError:
        return (0.0, -1)
    return (status.st_mtime, status.st_size)


@functools.lru_cache(maxsize=8)
def _csv_lines(
    path: str, separator: str, stamp: tuple[float, int]
) -> tuple[int, ...] | None:
    """The starting line of every data row of a CSV file, or None if unsure."""
    del stamp  # part of the cache key only
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, delimiter=separator)
            starts = []
            previous_end = 0
            for record in reader:
                start, previous_end = previous_end + 1, reader.line_num
                if not record or (len(record) == 1 and not record[0].strip()):
                    continue  # a blank line, which pandas skips too
                starts.append(start)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return tuple(starts[1:])  # the first record is the header
