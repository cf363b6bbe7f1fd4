"""Export of the statistics tables to TensorBoard event files, and reading them back.

:func:`write_tensorboard` writes one run directory per variant (the log
directory itself for a single run) with ``tensorboardX.SummaryWriter``:

- every statistics row as a scalar tagged ``<layer>/<stage>/<quantity>`` at
  its step (``model/loss``, ``model/grad_norm`` for whole-model rows); a
  TensorBoard tag holds no ``:``, so tensorboardX writes the stage
  ``gradient:W`` as ``gradient_W``. An infinite value (the update ratio of a
  bias that starts at zero) is written as it is, without tensorboardX's
  warning about it;
- every histogram of the histogram table, with its own bin edges, tagged
  ``<layer>/<stage>``;
- the per-epoch metrics history as scalars tagged ``metrics/<column>`` at the
  epoch.

:func:`read_scalars` reads the scalars of event files back into a table,
parsing the TFRecord framing and the protocol buffers tensorboardX ships; it
needs neither TensorBoard nor TensorFlow. tensorboardX is optional (the
``tensorboard`` extra): without it, writing raises an ImportError that says
how to install it.
"""

from __future__ import annotations

import importlib
import logging
import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from annlens.errors import DataError


def _tensorboardx() -> Any:
    try:
        import tensorboardX
    except ImportError as error:
        raise ImportError(
            "exporting to TensorBoard needs tensorboardX, which is not installed; "
            "help: pip install 'annlens[tensorboard]'"
        ) from error
    return tensorboardX


def _run_dir(log_dir: Path, variant: str) -> Path:
    return log_dir / variant if variant else log_dir


def _tag(layer: str, stage: str, quantity: str) -> str:
    if layer == "model" and stage == "model":
        return f"model/{quantity}"
    return f"{layer}/{stage}/{quantity}"


def write_tensorboard(
    log_dir: str | Path,
    statistics: pd.DataFrame,
    metrics: pd.DataFrame | None = None,
    histograms: pd.DataFrame | None = None,
    quantities: list[str] | None = None,
) -> list[Path]:
    """Write the tables as TensorBoard event files.

    Parameters
    ----------
    log_dir : str or Path
        The log directory; one subdirectory per non-empty variant.
    statistics : DataFrame
        The statistics table (``Recorder.to_dataframe()``).
    metrics : DataFrame, optional
        The per-epoch metrics, wide (``epoch``, ``variant`` and one column
        per metric) or long (``variant, epoch, split, metric, value``).
    histograms : DataFrame, optional
        The histogram table (``Recorder.histograms()``).
    quantities : list of str, optional
        Write only these quantities of the statistics table.

    Returns
    -------
    list of Path
        The run directories written, one per variant.

    Raises
    ------
    ImportError
        When tensorboardX is not installed.
    """
    tensorboardx = _tensorboardx()
    log_dir = Path(log_dir)
    stats = (
        statistics if "variant" in statistics.columns else statistics.assign(variant="")
    )
    if quantities is not None:
        stats = stats[stats["quantity"].isin(quantities)]
    variants = list(dict.fromkeys(str(v) for v in stats["variant"]))
    for table in (metrics, histograms):
        if isinstance(table, pd.DataFrame) and "variant" in table.columns:
            variants += [
                str(v) for v in table["variant"].unique() if str(v) not in variants
            ]
    if not variants:
        variants = [""]

    written = []
    for variant in variants:
        path = _run_dir(log_dir, variant)
        path.mkdir(parents=True, exist_ok=True)
        writer = tensorboardx.SummaryWriter(logdir=str(path), flush_secs=3600)
        quiet = logging.getLogger("tensorboardX.x2num")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            rows = stats[stats["variant"].astype(str) == variant]
            _write_scalars(writer, rows)
            if histograms is not None:
                _write_histograms(writer, _of_variant(histograms, variant))
            if metrics is not None:
                _write_metrics(writer, _of_variant(metrics, variant))
        finally:
            quiet.setLevel(level)
            writer.close()
        written.append(path)
    return written


def _of_variant(table: pd.DataFrame, variant: str) -> pd.DataFrame:
    if "variant" not in table.columns:
        return table if variant == "" else table.iloc[0:0]
    return table[table["variant"].astype(str) == variant]


def _write_scalars(writer: Any, rows: pd.DataFrame) -> None:
    for (layer, stage, quantity), group in rows.groupby(
        ["layer", "stage", "quantity"], sort=False
    ):
        tag = _tag(str(layer), str(stage), str(quantity))
        for step, value in zip(
            group["step"].to_numpy(), group["value"].to_numpy(), strict=True
        ):
            writer.add_scalar(tag, float(value), int(step))


def _write_histograms(writer: Any, table: pd.DataFrame) -> None:
    keys = ["layer", "stage", "step"]
    for (layer, stage, step), group in table.groupby(keys, sort=False):
        lo = group["bin_lo"].to_numpy(dtype=np.float64)
        hi = group["bin_hi"].to_numpy(dtype=np.float64)
        counts = group["count"].to_numpy(dtype=np.float64)
        total = float(counts.sum())
        if total == 0:
            continue
        centres = (lo + hi) / 2
        writer.add_histogram_raw(
            f"{layer}/{stage}",
            min=float(lo[0]),
            max=float(hi[-1]),
            num=total,
            sum=float(np.dot(counts, centres)),
            sum_squares=float(np.dot(counts, centres * centres)),
            bucket_limits=hi.tolist(),
            bucket_counts=counts.tolist(),
            global_step=int(step),
        )


def _write_metrics(writer: Any, table: pd.DataFrame) -> None:
    if not len(table) or "epoch" not in table.columns:
        return
    if {"split", "metric", "value"} <= set(table.columns):
        for row in table.itertuples(index=False):
            value = float(row.value)
            if math.isfinite(value):
                writer.add_scalar(
                    f"metrics/{row.split}_{row.metric}", value, int(row.epoch)
                )
        return
    for column in table.columns:
        if column in ("epoch", "variant", "step"):
            continue
        if not pd.api.types.is_numeric_dtype(table[column]):
            continue
        for epoch, value in zip(table["epoch"], table[column], strict=True):
            if pd.notna(value):
                writer.add_scalar(f"metrics/{column}", float(value), int(epoch))


def _records(path: Path) -> list[bytes]:
    """The payloads of a TFRecord file (length, crc, data, crc per record)."""
    data = path.read_bytes()
    payloads, offset = [], 0
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        start = offset + 12
        end = start + length
        if end + 4 > len(data):
            raise DataError(f"event file {path} is truncated at byte {offset}")
        payloads.append(data[start:end])
        offset = end + 4
    return payloads


def _run_name(path: Path, log_dir: Path) -> str:
    relative = path.parent.relative_to(log_dir)
    return "" if relative == Path(".") else relative.as_posix()


def _summary_values(log_dir: str | Path) -> Iterator[tuple[str, int, Any]]:
    """``(run, step, value)`` for every summary value of every event file.

    Files are read in sorted path order, records in file order; ``value`` is
    the protocol buffer ``Summary.Value`` (a scalar, a histogram, ...).
    """
    _tensorboardx()
    event_pb2 = importlib.import_module("tensorboardX.proto.event_pb2")
    log_dir = Path(log_dir)
    for path in sorted(log_dir.rglob("events.out.tfevents*")):
        run = _run_name(path, log_dir)
        for payload in _records(path):
            event = event_pb2.Event.FromString(payload)
            for value in event.summary.value:
                yield run, int(event.step), value


def read_scalars(log_dir: str | Path) -> pd.DataFrame:
    """The scalars of every event file under ``log_dir``.

    Returns
    -------
    DataFrame
        Columns ``run`` (the directory relative to ``log_dir``, "" for
        itself), ``tag``, ``step``, ``value``.
    """
    rows = [
        (run, value.tag, step, float(value.simple_value))
        for run, step, value in _summary_values(log_dir)
        if value.HasField("simple_value")
    ]
    return pd.DataFrame(rows, columns=["run", "tag", "step", "value"])


def read_histogram_tags(log_dir: str | Path) -> list[tuple[str, str, int]]:
    """``(run, tag, step)`` of every histogram in the event files under ``log_dir``."""
    return [
        (run, value.tag, step)
        for run, step, value in _summary_values(log_dir)
        if value.HasField("histo")
    ]
