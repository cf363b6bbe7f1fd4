"""The three tables a recorder fills: statistics, histograms and spectra.

Rows are stored by column in growable NumPy buffers, one block per
``(layer, stage, quantities)``, so a record costs a few dozen bytes and no
Python object per value. A record for a step that the block already holds as
its last row replaces that row: when a layer is run twice at one step (a
capture or a check before the training pass), the last pass is what stays.

The tables become pandas DataFrames only when asked (:meth:`StatTable.frame`),
with the columns of the schema in :mod:`annlens.analysis.collectors`. Their
``state`` is JSON-friendly: lists of numbers, with NaN and infinities written
as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from annlens.errors import ConfigError

STATS_COLUMNS = ("step", "epoch", "variant", "layer", "stage", "quantity", "value")
HISTOGRAM_COLUMNS = (
    "step",
    "epoch",
    "variant",
    "layer",
    "stage",
    "bin_lo",
    "bin_hi",
    "count",
)
SPECTRA_COLUMNS = ("step", "epoch", "variant", "layer", "param", "index", "value")

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_floats(values: Sequence[float] | NDArray[Any]) -> list[float | str]:
    """Floats for JSON: finite ones as they are, the others as strings."""
    out: list[float | str] = []
    for value in np.asarray(values, dtype=np.float64).ravel().tolist():
        if math.isfinite(value):
            out.append(value)
        else:
            out.append(
                "NaN"
                if math.isnan(value)
                else ("Infinity" if value > 0 else "-Infinity")
            )
    return out


def decode_floats(values: Sequence[float | str]) -> NDArray[np.float64]:
    """The inverse of :func:`encode_floats`."""
    return np.array(
        [_NON_FINITE[v] if isinstance(v, str) else v for v in values], dtype=np.float64
    )


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as error:  # pragma: no cover - pandas is in the run extra
        raise ImportError(
            "annlens statistics tables need pandas; help: pip install 'annlens[run]'"
        ) from error
    return pandas


class _Block:
    """The rows of one key, stored by column.

    New rows wait in a short Python list and move into the NumPy buffers in
    chunks, which keeps a record to one list append.
    """

    __slots__ = ("key", "width", "steps", "epochs", "values", "n", "pending")

    CHUNK = 64

    def __init__(self, key: tuple[Any, ...], width: int, capacity: int = 64) -> None:
        self.key = key
        self.width = width
        self.steps = np.zeros(capacity, dtype=np.int64)
        self.epochs = np.zeros(capacity, dtype=np.int64)
        self.values: NDArray[Any] = np.zeros((capacity, width), dtype=np.float64)
        self.n = 0
        self.pending: list[tuple[int, int, Sequence[float] | NDArray[Any]]] = []

    def add(
        self, step: int, epoch: int, values: Sequence[float] | NDArray[Any]
    ) -> None:
        """Append a row, or replace the last one when it has the same step."""
        pending = self.pending
        if pending:
            if pending[-1][0] == step:
                pending[-1] = (step, epoch, values)
                return
        elif self.n and self.steps[self.n - 1] == step:
            self.epochs[self.n - 1] = epoch
            self.values[self.n - 1] = values
            return
        pending.append((step, epoch, values))
        if len(pending) >= self.CHUNK:
            self.flush()

    def flush(self) -> None:
        """Move the waiting rows into the buffers."""
        pending = self.pending
        if not pending:
            return
        n, count = self.n, len(pending)
        if n + count > len(self.steps):
            self._grow(max(2 * len(self.steps), n + count))
        steps, epochs, values = zip(*pending, strict=True)
        self.steps[n : n + count] = steps
        self.epochs[n : n + count] = epochs
        self.values[n : n + count] = values
        self.n = n + count
        self.pending = []

    def _grow(self, capacity: int) -> None:
        self.steps = np.resize(self.steps, capacity)
        self.epochs = np.resize(self.epochs, capacity)
        values = np.zeros((capacity, self.width), dtype=self.values.dtype)
        values[: self.n] = self.values[: self.n]
        self.values = values

    def rows(self) -> int:
        """The number of rows, waiting ones included."""
        return self.n + len(self.pending)

    def state(self) -> dict[str, Any]:
        """Copies of the columns as arrays: a checkpoint stores them as tensors,
        so saving stays one memory copy however long the run has been."""
        self.flush()
        n = self.n
        return {
            "step": self.steps[:n].copy(),
            "epoch": self.epochs[:n].copy(),
            "values": self.values[:n].copy(),
        }

    def load(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`; lists of rows (from JSON) are accepted too."""
        steps, epochs, rows = state["step"], state["epoch"], state["values"]
        if not len(steps) == len(epochs) == len(rows):
            raise ConfigError(
                f"recorder state block {self.key!r} has {len(steps)} steps, "
                f"{len(epochs)} epochs and {len(rows)} value rows; expected equal"
            )
        values = (
            np.asarray(rows, dtype=np.float64).reshape(len(rows), self.width)
            if isinstance(rows, np.ndarray)
            else np.array([decode_floats(row) for row in rows]).reshape(-1, self.width)
        )
        self.pending = []
        self.n = 0
        self._grow(max(len(steps), 1))
        self.steps[: len(steps)] = np.asarray(steps, dtype=np.int64)
        self.epochs[: len(steps)] = np.asarray(epochs, dtype=np.int64)
        self.values[: len(steps)] = values
        self.n = len(steps)


class StatTable:
    """The long statistics table: scalars per (step, layer, stage, quantity).

    Parameters
    ----------
    order : callable, optional
        ``order(layer, stage) -> sortable``, the position of a block in the
        exported table within one step (layer order, then stage order).
    """

    def __init__(self, order: Callable[[str, str], Any] | None = None) -> None:
        self._blocks: dict[tuple[str, str, tuple[str, ...]], _Block] = {}
        self._order = order

    def add(
        self,
        step: int,
        epoch: int,
        layer: str,
        stage: str,
        quantities: tuple[str, ...],
        values: Sequence[float],
    ) -> None:
        """Record ``values[i]`` as quantity ``quantities[i]``."""
        if len(values) != len(quantities):
            raise ConfigError(
                f"statistics row at {layer}.{stage}, step {step} names "
                f"{len(quantities)} quantities {list(quantities)} but gives "
                f"{len(values)} values; help: one value per quantity"
            )
        key = (layer, stage, quantities)
        block = self._blocks.get(key)
        if block is None:
            block = self._blocks[key] = _Block(key, len(quantities))
        block.add(step, epoch, values)

    def __len__(self) -> int:
        return sum(block.rows() * block.width for block in self._blocks.values())

    def nbytes(self) -> int:
        """Bytes held by the buffers (capacity, not only the rows in use)."""
        return sum(
            b.steps.nbytes + b.epochs.nbytes + b.values.nbytes
            for b in self._blocks.values()
        )

    def _sorted_blocks(self) -> list[_Block]:
        blocks = list(self._blocks.values())
        for block in blocks:
            block.flush()
        if self._order is not None:
            order = self._order
            blocks.sort(key=lambda b: order(b.key[0], b.key[1]))
        return blocks

    def frame(self, variant: str) -> Any:
        """The table as a DataFrame with :data:`STATS_COLUMNS`, sorted by step."""
        pd = _pandas()
        parts: dict[str, list[Any]] = {c: [] for c in STATS_COLUMNS if c != "variant"}
        for block in self._sorted_blocks():
            n, width = block.n, block.width
            layer, stage, quantities = block.key
            parts["step"].append(np.repeat(block.steps[:n], width))
            parts["epoch"].append(np.repeat(block.epochs[:n], width))
            parts["layer"].append(np.full(n * width, layer, dtype=object))
            parts["stage"].append(np.full(n * width, stage, dtype=object))
            parts["quantity"].append(np.tile(np.array(quantities, dtype=object), n))
            parts["value"].append(block.values[:n].ravel())
        columns = {
            key: np.concatenate(chunks) if chunks else np.array([], dtype=dtype)
            for (key, chunks), dtype in zip(
                parts.items(),
                (np.int64, np.int64, object, object, object, np.float64),
                strict=True,
            )
        }
        table = pd.DataFrame(
            {
                "step": columns["step"],
                "epoch": columns["epoch"],
                "variant": np.full(len(columns["step"]), variant, dtype=object),
                "layer": columns["layer"],
                "stage": columns["stage"],
                "quantity": columns["quantity"],
                "value": columns["value"],
            }
        )
        order = np.argsort(columns["step"], kind="stable")
        return table.iloc[order].reset_index(drop=True)

    def state(self) -> list[dict[str, Any]]:
        """JSON-friendly rows, block by block."""
        return [
            {
                "layer": b.key[0],
                "stage": b.key[1],
                "quantities": list(b.key[2]),
                **b.state(),
            }
            for b in self._blocks.values()
        ]

    def load(self, state: list[dict[str, Any]]) -> None:
        """Replace the rows with those of :meth:`state`."""
        self._blocks = {}
        for entry in state:
            key = (str(entry["layer"]), str(entry["stage"]), tuple(entry["quantities"]))
            block = self._blocks[key] = _Block(key, len(key[2]))
            block.load(entry)

    def __repr__(self) -> str:
        return f"StatTable({len(self._blocks)} series, {len(self)} rows)"


class HistogramTable:
    """Fixed-size histograms per (step, layer, stage).

    Each record keeps its outer edges ``lo``, ``hi`` and ``bins`` counts of
    equal width; the exported table has one row per bin.
    """

    def __init__(self, order: Callable[[str, str], Any] | None = None) -> None:
        self._blocks: dict[tuple[str, str], _Block] = {}
        self._order = order

    def add(
        self,
        step: int,
        epoch: int,
        layer: str,
        stage: str,
        lo: float,
        hi: float,
        counts: NDArray[np.integer],
    ) -> None:
        """Record one histogram: outer edges and the counts of its bins."""
        key = (layer, stage)
        block = self._blocks.get(key)
        if block is None:
            block = self._blocks[key] = _Block(key, 2 + len(counts))
        if block.width != 2 + len(counts):
            raise ConfigError(
                f"histogram of {layer}.{stage} has {len(counts)} bins; earlier "
                f"records of it have {block.width - 2}"
            )
        row = np.empty(block.width, dtype=np.float64)
        row[0], row[1] = lo, hi
        row[2:] = counts
        block.add(step, epoch, row)

    def __len__(self) -> int:
        return sum(block.rows() for block in self._blocks.values())

    def nbytes(self) -> int:
        return sum(b.values.nbytes + 2 * b.steps.nbytes for b in self._blocks.values())

    def records(self) -> list[tuple[int, int, str, str, float, float, NDArray[Any]]]:
        """``(step, epoch, layer, stage, lo, hi, counts)`` for every histogram."""
        out = []
        blocks = list(self._blocks.values())
        if self._order is not None:
            order = self._order
            blocks.sort(key=lambda b: order(b.key[0], b.key[1]))
        for block in blocks:
            block.flush()
            for i in range(block.n):
                row = block.values[i]
                out.append(
                    (
                        int(block.steps[i]),
                        int(block.epochs[i]),
                        block.key[0],
                        block.key[1],
                        float(row[0]),
                        float(row[1]),
                        row[2:].astype(np.int64),
                    )
                )
        out.sort(key=lambda record: record[0])
        return out

    def frame(self, variant: str) -> Any:
        """The table as a DataFrame with :data:`HISTOGRAM_COLUMNS`."""
        pd = _pandas()
        rows: dict[str, list[Any]] = {c: [] for c in HISTOGRAM_COLUMNS}
        for step, epoch, layer, stage, lo, hi, counts in self.records():
            bins = len(counts)
            edges = np.linspace(lo, hi, bins + 1)
            rows["step"].append(np.full(bins, step, dtype=np.int64))
            rows["epoch"].append(np.full(bins, epoch, dtype=np.int64))
            rows["variant"].append(np.full(bins, variant, dtype=object))
            rows["layer"].append(np.full(bins, layer, dtype=object))
            rows["stage"].append(np.full(bins, stage, dtype=object))
            rows["bin_lo"].append(edges[:-1])
            rows["bin_hi"].append(edges[1:])
            rows["count"].append(counts)
        dtypes = (np.int64, np.int64, object, object, object, np.float64, np.float64)
        data = {
            column: (np.concatenate(chunks) if chunks else np.array([], dtype=dtype))
            for (column, chunks), dtype in zip(
                rows.items(), (*dtypes, np.int64), strict=True
            )
        }
        return pd.DataFrame(data)

    def state(self) -> list[dict[str, Any]]:
        return [
            {"layer": b.key[0], "stage": b.key[1], "width": b.width, **b.state()}
            for b in self._blocks.values()
        ]

    def load(self, state: list[dict[str, Any]]) -> None:
        self._blocks = {}
        for entry in state:
            key = (str(entry["layer"]), str(entry["stage"]))
            block = self._blocks[key] = _Block(key, int(entry["width"]))
            block.load(entry)

    def __repr__(self) -> str:
        return f"HistogramTable({len(self._blocks)} series, {len(self)} histograms)"


class SpectrumTable:
    """Singular values of weight matrices per (step, layer, param)."""

    def __init__(self) -> None:
        self._records: list[tuple[int, int, str, str, NDArray[np.float64]]] = []
        self._index: dict[tuple[int, str, str], int] = {}

    def add(
        self, step: int, epoch: int, layer: str, param: str, values: NDArray[Any]
    ) -> None:
        """Record the singular values of ``layer.param``; a repeat replaces."""
        record = (step, epoch, layer, param, np.asarray(values, dtype=np.float64))
        key = (step, layer, param)
        position = self._index.get(key)
        if position is None:
            self._index[key] = len(self._records)
            self._records.append(record)
        else:
            self._records[position] = record

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[tuple[int, int, str, str, NDArray[np.float64]]]:
        """``(step, epoch, layer, param, singular values)`` in recording order."""
        return list(self._records)

    def frame(self, variant: str) -> Any:
        """The table as a DataFrame with :data:`SPECTRA_COLUMNS`."""
        pd = _pandas()
        rows = [
            (step, epoch, variant, layer, param, index, float(value))
            for step, epoch, layer, param, values in self._records
            for index, value in enumerate(values)
        ]
        table = pd.DataFrame(rows, columns=list(SPECTRA_COLUMNS))
        return table.astype({"step": np.int64, "epoch": np.int64, "index": np.int64})

    def state(self) -> list[dict[str, Any]]:
        return [
            {
                "step": step,
                "epoch": epoch,
                "layer": layer,
                "param": param,
                "values": encode_floats(values),
            }
            for step, epoch, layer, param, values in self._records
        ]

    def load(self, state: list[dict[str, Any]]) -> None:
        self._records, self._index = [], {}
        for e in state:
            values = decode_floats(e["values"])
            self.add(
                int(e["step"]),
                int(e["epoch"]),
                str(e["layer"]),
                str(e["param"]),
                values,
            )

    def __repr__(self) -> str:
        return f"SpectrumTable({len(self)} spectra)"
