"""User data from files: CSV (or TSV), NPY and NPZ, with a named target column.

What each format must hold:

- **CSV / TSV**: a header row naming the columns; ``target`` is a column name
  (or a column index). Every other column is a feature and must be numeric
  (booleans count as 0/1); the target may be text.
- **NPY**: either a structured array whose fields are the columns (``target``
  names a field), or a plain 2-D numeric array whose column ``target`` (an
  int, negative counts from the end) is the target. A plain array's features
  are called ``column_<index>`` after their position in the file.
- **NPZ**: either arrays ``x`` (samples, features) and ``y`` (samples,) or
  (samples, outputs), with optional ``feature_names`` and ``class_names``
  string arrays (``target`` may be omitted), or one 1-D array per column, all
  of one length, ``target`` naming one of them.
- **Two NPY files** (``target_path``): features from a plain 2-D ``path``
  array, every column a feature, and targets from the plain array at
  ``target_path``, of shape (samples,) or (samples, outputs): one-hot rows or
  several regression outputs. ``target`` is not given then.

Files are read without unpickling (``allow_pickle=False``): a file that holds
Python objects is refused. Every problem raises a
:class:`~annlens.errors.DataError` that names the file and the column.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from annlens.data.dataset import RawData
from annlens.data.locate import Source, describe_row
from annlens.errors import DataError, did_you_mean

SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".npy": "npy", ".npz": "npz"}


def read_data_file(
    path: str | os.PathLike[str],
    target: str | int | None,
    kind: str | None = None,
    task: str | None = None,
    target_path: str | os.PathLike[str] | None = None,
) -> RawData:
    """Read a data file (and, with ``target_path``, a targets file) into RawData.

    Parameters
    ----------
    path : path-like
        The file.
    target : str or int or None
        The target column: a name, or an index for plain arrays and CSV.
    kind : {"csv", "npy", "npz"}, optional
        The format; inferred from the suffix when omitted.
    task : str, optional
        ``"classification"`` or ``"regression"``; inferred when omitted.
    target_path : path-like, optional
        A plain .npy array of targets, (samples,) or (samples, outputs); then
        ``path`` holds only features and ``target`` must be None.
    """
    file = _existing(path)
    if target_path is not None:
        raw = _read_pair(file, _existing(target_path), target, kind)
        raw.task = task
        return raw
    named = kind
    kind = kind or SUFFIXES.get(file.suffix.lower())
    if kind not in ("csv", "npy", "npz"):
        raise DataError(
            f"data file {str(file)!r}: unknown format {file.suffix!r}; "
            f"known suffixes: {', '.join(SUFFIXES)}"
        )
    _check_format(file, kind, named)
    readers = {"csv": _read_csv, "npy": _read_npy, "npz": _read_npz}
    raw = readers[kind](file, target)
    raw.task = task
    if raw.source is None:  # a NumPy file: rows, but no lines
        raw.source = Source(str(file))
    return raw


def _existing(path: str | os.PathLike[str]) -> Path:
    file = Path(path)
    if not file.exists():
        raise DataError(f"data file {str(file)!r} does not exist")
    if not file.is_file():
        raise DataError(f"data file {str(file)!r} is not a file")
    return file


def _plain_array(file: Path, role: str, ndims: tuple[int, ...]) -> Any:
    """A plain numeric array from a .npy file, with ``ndim`` in ``ndims``."""
    if file.suffix.lower() != ".npy":
        raise DataError(
            f"{role} file {str(file)!r}: with target_path, both files must be "
            f".npy arrays, got suffix {file.suffix!r}"
        )
    _check_format(file, "npy", None)
    array = _load_numpy(file)
    shapes = " or ".join({1: "(samples,)", 2: "(samples, columns)"}[n] for n in ndims)
    if not isinstance(array, np.ndarray) or array.dtype.names:
        raise DataError(f"{file.name}: expected one plain array of shape {shapes}")
    if array.ndim not in ndims:
        raise DataError(
            f"{file.name}: the {role} array must have shape {shapes}, got {array.shape}"
        )
    return array


def _read_pair(
    file: Path, target_file: Path, target: str | int | None, kind: str | None
) -> RawData:
    """Features from ``file``, targets from ``target_file``: two .npy arrays."""
    if target is not None:
        raise DataError(
            f"data: target={target!r} names a column, but target_path "
            f"{target_file.name!r} holds the targets; help: leave target out"
        )
    if kind not in (None, "npy"):
        raise DataError(
            f"data: target_path reads two .npy arrays, so [data] name must be "
            f"'npy' or 'file', got {kind!r}"
        )
    x = _plain_array(file, "feature", (2,))
    y = _plain_array(target_file, "target", (1, 2))
    if len(y) != len(x):
        raise DataError(
            f"{target_file.name}: holds {len(y)} targets, but {file.name} holds "
            f"{len(x)} rows of features; the two files must have one row per sample"
        )
    if x.dtype.kind not in "biuf":
        raise DataError(
            f"{file.name}: features must be numbers, got dtype {x.dtype}; "
            "help: encode them as numbers"
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    return RawData(
        # messages about rows name both files: a row is one of each
        name=f"{file.name} + {target_file.name}",
        x=x.astype(np.float64),
        y=y,
        feature_names=tuple(f"column_{j}" for j in range(x.shape[1])),
        target_name=target_file.name,
        description=f"Features from {file}, targets from {target_file}.",
        source=Source(str(target_file)),
    )


def _pick_column(columns: list[str], target: str | int | None, file: Path) -> str:
    """The target column's name, from a name or an index."""
    listing = ", ".join(repr(c) for c in columns)
    if target is None:
        raise DataError(
            f"{file.name}: no target column given; help: pass target= one of "
            f"the columns: {listing}"
        )
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not -len(columns) <= target < len(columns):
            raise DataError(
                f"{file.name}: target column index {target} is out of range for "
                f"{len(columns)} columns"
            )
        return columns[int(target)]
    if target not in columns:
        raise DataError(
            f"{file.name}: no target column {target!r}"
            f"{did_you_mean(str(target), columns)}; columns: {listing}"
        )
    return str(target)


def _read_csv(file: Path, target: str | int | None) -> RawData:
    import pandas as pd

    separator = "\t" if file.suffix.lower() == ".tsv" else ","
    try:
        frame = pd.read_csv(file, sep=separator)
    except pd.errors.ParserError as e:
        _refuse_ragged(file, separator)
        raise DataError(f"{file.name}: cannot be read as CSV: {e}") from e
    except (pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{file.name}: cannot be read as CSV: {e}") from e
    if frame.shape[0] == 0:
        raise DataError(f"{file.name}: has a header but no data rows")
    if frame.isna().to_numpy().any():  # a short row reads as NaN: say so instead
        _refuse_ragged(file, separator)
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    _refuse_other_separator(file, columns, separator)
    _refuse_duplicate_columns(file, separator)
    name = _pick_column(columns, target, file)
    source = Source(str(file), separator, len(frame))

    features = [c for c in columns if c != name]
    for column in features:
        series = frame[column]
        if not pd.api.types.is_numeric_dtype(series):
            converted = pd.to_numeric(series, errors="coerce")
            bad = series[converted.isna() & series.notna()]
            example = (
                f" (value {bad.iloc[0]!r} at {describe_row(int(bad.index[0]), source)})"
            )
            raise DataError(
                f"{file.name}: feature column {column!r} is not numeric"
                f"{example if len(bad) else ''}; help: encode it as numbers, "
                "or remove the column from the file"
            )
    x = frame[features].to_numpy(dtype=np.float64, na_value=np.nan)
    y_series = frame[name]
    if pd.api.types.is_numeric_dtype(y_series):
        y = y_series.to_numpy()
    else:
        _refuse_stray_text(file, y_series, name, source)
        y = y_series.to_numpy(dtype=object, na_value=np.nan)
    return RawData(
        name=file.name,
        x=x,
        y=y,
        feature_names=tuple(features),
        target_name=name,
        description=f"Read from {file}.",
        source=source,
    )


def _refuse_other_separator(file: Path, columns: list[str], separator: str) -> None:
    """Refuse a header that reads as one column holding another separator."""
    if len(columns) != 1:
        return
    others = ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'"), (",", "commas"))
    for other, name in others:
        if other != separator and other in columns[0]:
            expected = "tabs" if separator == "\t" else "commas"
            remedy = (
                "save the file with tabs, or with commas named .csv"
                if separator == "\t"
                else "save the file with commas (or tabs, named .tsv)"
            )
            raise DataError(
                f"{file.name}: the header reads as one column {columns[0]!r}: "
                f"its fields are separated by {name}, but annlens expects "
                f"{expected} in a {file.suffix or 'CSV'} file; help: {remedy}"
            )


def _refuse_duplicate_columns(file: Path, separator: str) -> None:
    """Refuse a header that names a column twice.

    pandas renames the second ``a`` to ``a.1``: a target named ``a`` would
    silently be the first of the two, and a feature would get a name the
    file does not hold.
    """
    import csv

    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            header = next(
                (r for r in csv.reader(handle, delimiter=separator) if any(r)), []
            )
    except (OSError, UnicodeDecodeError, csv.Error):
        return  # pandas has read it; nothing more to check here
    seen: set[str] = set()
    for name in header:
        if name in seen:
            count = header.count(name)
            raise DataError(
                f"{file.name}: the header (line 1) names column {name!r} "
                f"{count} times; help: give every column its own name (the first "
                "line of a CSV file is its header)"
            )
        seen.add(name)


def _refuse_ragged(file: Path, separator: str) -> None:
    """Refuse the first row whose number of fields differs from the header's."""
    import csv

    try:
        with file.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, delimiter=separator)
            header: list[str] | None = None
            start = 1
            for record in reader:
                line, start = start, reader.line_num + 1
                if not record or (len(record) == 1 and not record[0].strip()):
                    continue  # a blank line, which pandas skips too
                if header is None:
                    header = record
                elif len(record) != len(header):
                    raise DataError(
                        f"{file.name}: line {line} has {len(record)} fields, but "
                        f"the header (line 1) names {len(header)} columns; help: "
                        "give every row one value per column (an empty value "
                        "for a missing one)"
                    )
    except (OSError, UnicodeDecodeError, csv.Error):
        return  # the caller says what pandas found


def _refuse_stray_text(file: Path, y: Any, name: str, source: Source) -> None:
    """Refuse a target of numbers with a few words among them.

    Text labels make every distinct word a class; a number column with a
    stray word (a typo, ``"n/a"``) would silently become text classes.
    """
    import pandas as pd

    numbers = pd.to_numeric(y, errors="coerce")
    text = numbers.isna() & y.notna()
    if not text.any() or numbers.notna().sum() <= len(y) / 2:
        return
    first = int(np.argmax(text.to_numpy()))
    raise DataError(
        f"{file.name}: target column {name!r} holds numbers, but "
        f"{int(text.sum())} of {len(y)} values are not; the first, "
        f"{y.iloc[first]!r}, at {describe_row(int(y.index[first]), source)}; "
        "help: fix those values, or leave them empty and set drop_nan = true"
    )


FORMATS = {
    "csv": "CSV text",
    "npy": "a NumPy .npy array",
    "npz": "a NumPy .npz archive",
    "binary": "neither text nor a NumPy file",
}


def _sniff(file: Path) -> str:
    """``"npy"``, ``"npz"``, ``"csv"`` (text) or ``"binary"``: what the
    file's first bytes say."""
    with file.open("rb") as handle:
        start = handle.read(512)
    if start.startswith(b"\x93NUMPY"):
        return "npy"
    if start.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "npz"
    return "binary" if b"\x00" in start else "csv"


def _check_format(file: Path, kind: str, named: str | None) -> None:
    """Refuse a file whose content is not the format ``kind`` reads.

    ``named`` is the format the data section named (None when the suffix
    chose it). A text file is only refused where a NumPy file was wanted:
    whether it is valid CSV is for the CSV reader to say.
    """
    found = _sniff(file)
    if found == kind or (kind == "csv" and found not in ("npy", "npz")):
        return
    wanted = (
        f"[data] name={named!r} expects {FORMATS[kind]}"
        if named is not None
        else f"its suffix {file.suffix!r} means {FORMATS[kind]}"
    )
    if found == "binary":
        remedy = "check that path names the data file"
    elif named is not None:
        remedy = f"set name={found!r}, or name='file' to go by the suffix"
    else:
        remedy = "rename the file to match its content"
    raise DataError(
        f"data file {str(file)!r}: {wanted}, but the file appears to be "
        f"{FORMATS[found]}; help: {remedy}"
    )


def _load_numpy(file: Path) -> Any:
    try:
        return np.load(file, allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise DataError(
                f"{file.name}: holds Python objects, which annlens does not "
                "unpickle; help: save plain numeric (or string) arrays"
            ) from error
        raise DataError(f"{file.name}: not a NumPy file: {error}") from error
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{file.name}: not a readable NumPy file: {error}") from error


def _read_npy(file: Path, target: str | int | None) -> RawData:
    array = _load_numpy(file)
    if not isinstance(array, np.ndarray):
        raise DataError(f"{file.name}: expected one array in a .npy file")
    if array.dtype.names:
        columns = {name: array[name] for name in array.dtype.names}
        return _from_columns(file, columns, target)
    if array.ndim != 2:
        raise DataError(
            f"{file.name}: a plain .npy array must be 2-D (samples, columns), "
            f"got shape {array.shape}"
        )
    if not isinstance(target, (int, np.integer)) or isinstance(target, bool):
        raise DataError(
            f"{file.name}: a plain 2-D array has no column names; give target "
            f"as a column index 0..{array.shape[1] - 1}, got {target!r}"
        )
    names = [f"column_{j}" for j in range(array.shape[1])]
    columns = {name: array[:, j] for j, name in enumerate(names)}
    return _from_columns(file, columns, int(target))


def _read_npz(file: Path, target: str | int | None) -> RawData:
    with _load_numpy(file) as archive:
        arrays = {key: archive[key] for key in archive.files}
    if "x" in arrays and "y" in arrays:
        return _from_xy(file, arrays, target)
    tables = [key for key, value in arrays.items() if np.ndim(value) == 2]
    if tables:
        raise DataError(
            f"{file.name}: holds the 2-D array(s) {', '.join(map(repr, tables))} "
            f"among {', '.join(map(repr, arrays))}; expected arrays 'x' "
            "(samples, features) and 'y' (the targets), or one 1-D array per "
            "column; help: save the archive as np.savez(path, x=features, y=targets)"
        )
    return _from_columns(file, arrays, target)


def _from_xy(file: Path, arrays: dict[str, Any], target: str | int | None) -> RawData:
    if target not in (None, "y"):
        raise DataError(
            f"{file.name}: holds arrays 'x' and 'y', so the target is 'y'; "
            f"got target={target!r}"
        )
    x, y = arrays["x"], arrays["y"]
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if x.ndim != 2 or y.ndim not in (1, 2) or len(x) != len(y):
        raise DataError(
            f"{file.name}: expected x of shape (samples, features) and y of "
            f"shape (samples,) or (samples, outputs), got {x.shape} and {y.shape}"
        )
    names = arrays.get("feature_names")
    feature_names = (
        tuple(str(n) for n in names)
        if names is not None
        else tuple(f"column_{j}" for j in range(x.shape[1]))
    )
    if len(feature_names) != x.shape[1]:
        raise DataError(
            f"{file.name}: {len(feature_names)} feature_names for "
            f"{x.shape[1]} columns of x"
        )
    classes = arrays.get("class_names")
    return RawData(
        name=file.name,
        x=x,
        y=y,
        feature_names=feature_names,
        target_name="y",
        class_names=tuple(str(c) for c in classes) if classes is not None else None,
        description=f"Read from {file}.",
    )


def _from_columns(
    file: Path, columns: dict[str, Any], target: str | int | None
) -> RawData:
    """One 1-D array per column; ``target`` names (or indexes) the target."""
    names = list(columns)
    name = _pick_column(names, target, file)
    lengths = {key: np.shape(value) for key, value in columns.items()}
    shaped = {key: shape for key, shape in lengths.items() if len(shape) != 1}
    if shaped:
        raise DataError(
            f"{file.name}: every column must be a 1-D array; these are not: "
            + ", ".join(f"{k!r} {s}" for k, s in shaped.items())
        )
    if len({shape[0] for shape in lengths.values()}) > 1:
        raise DataError(
            f"{file.name}: columns differ in length: "
            + ", ".join(f"{k!r} {s[0]}" for k, s in lengths.items())
        )
    features = [key for key in names if key != name]
    for key in features:
        if columns[key].dtype.kind not in "biuf":
            raise DataError(
                f"{file.name}: feature column {key!r} is not numeric "
                f"(dtype {columns[key].dtype}); help: encode it as numbers, "
                "or leave it out of the file"
            )
    if not features:
        raise DataError(f"{file.name}: holds only the target column {name!r}")
    x = np.column_stack([columns[key].astype(np.float64) for key in features])
    return RawData(
        name=file.name,
        x=x,
        y=np.asarray(columns[name]),
        feature_names=tuple(features),
        target_name=name,
        description=f"Read from {file}.",
    )
