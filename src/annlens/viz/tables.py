"""The tables figures read, how they are checked, and small selections on them.

Four tables feed the figures; the first three are written by the collectors of
:mod:`annlens.analysis`, the fourth by the training loop.

statistics (long)
    ``step, epoch, variant, layer, stage, quantity, value``: one scalar per row.
    ``layer`` is a layer name or ``"model"``; ``stage`` is one of ``input``,
    ``pre_activation``, ``post_activation``, ``grad_output``, ``delta``,
    ``grad_input``, ``param:<p>``, ``gradient:<p>``, ``update:<p>``, ``model``.
histograms
    ``step, epoch, variant, layer, stage, bin_lo, bin_hi, count``.
spectra
    ``step, epoch, variant, layer, param, index, value`` (singular values).
metrics history
    Long: ``variant, epoch, split, metric, value`` with ``split`` in ``train``,
    ``val``, ``test``. Wide tables are accepted and turned long by
    :func:`metrics_long`: an ``epoch`` column (``variant`` optional), and one
    column per series named ``<split>_<metric>`` (``train_loss``,
    ``val_accuracy``) or a bare ``<metric>`` meaning the training split.

A missing ``variant`` column means a single run (variant ``""``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from annlens.errors import DataError, did_you_mean
from annlens.training.history import History

STATS_COLUMNS = ("step", "epoch", "variant", "layer", "stage", "quantity", "value")
HISTOGRAM_COLUMNS = ("step", "variant", "layer", "stage", "bin_lo", "bin_hi", "count")
SPECTRA_COLUMNS = ("step", "variant", "layer", "param", "index", "value")
METRICS_COLUMNS = ("variant", "epoch", "split", "metric", "value")

SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val"}
SPLITS["test"] = "test"
FORWARD_STAGES = ("input", "pre_activation", "post_activation")
MODEL = "model"


def require(table: pd.DataFrame, columns: Iterable[str], name: str) -> pd.DataFrame:
    """``table`` with a ``variant`` column, or raise naming the missing columns."""
    if not isinstance(table, pd.DataFrame):
        raise DataError(
            f"the {name} table must be a pandas DataFrame, got {type(table).__name__}"
        )
    if "variant" not in table.columns:
        table = table.assign(variant="")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(
            f"the {name} table lacks columns {missing}; it has "
            f"{list(table.columns)}\nhelp: see annlens.viz.tables for the schema"
        )
    return table


def stats_table(stats: pd.DataFrame) -> pd.DataFrame:
    """Check a statistics table (see the module docstring)."""
    table = require(stats, STATS_COLUMNS[:1] + STATS_COLUMNS[2:], "statistics")
    return table.assign(variant=table["variant"].fillna("").astype(str))


def select(
    stats: pd.DataFrame,
    *,
    stage: str | Sequence[str] | None = None,
    quantity: str | Sequence[str] | None = None,
    layer: str | Sequence[str] | None = None,
    variant: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Rows of ``stats`` matching every criterion given (a value or a list)."""
    mask = np.ones(len(stats), dtype=bool)
    for column, wanted in (
        ("stage", stage),
        ("quantity", quantity),
        ("layer", layer),
        ("variant", variant),
    ):
        if wanted is None:
            continue
        values = [wanted] if isinstance(wanted, str) else list(wanted)
        mask &= stats[column].isin(values).to_numpy()
    return stats.loc[mask]


def positive_rows(table: pd.DataFrame, stage: str, quantity: str) -> pd.DataFrame:
    """The rows of ``table`` with a value above zero, for a log axis; a
    ``DataError`` when there are none (all zero, negative, NaN or Inf), rather
    than a figure with nothing on it."""
    values = table["value"].to_numpy(dtype=np.float64)
    kept = table.loc[np.isfinite(values) & (values > 0)]
    if kept.empty:
        raise DataError(
            f"no finite positive values with stage {stage!r} and quantity "
            f"{quantity!r} to draw on a log scale ({len(values)} rows, all zero, "
            "negative, NaN or Inf); help: see the non_finite finding"
        )
    return table.loc[values > 0]


def variants_of(table: pd.DataFrame) -> list[str]:
    """The variants of a table, in order of first appearance."""
    if "variant" not in table.columns:
        return [""]
    return list(dict.fromkeys(table["variant"].fillna("").astype(str)))


def one_variant(table: pd.DataFrame, variant: str | None, what: str) -> str:
    """The variant a single-variant plot draws: ``variant``, or the only one.

    Parameters
    ----------
    table : DataFrame
        The rows the plot would draw, all variants.
    variant : str, optional
        The variant asked for; may be omitted when the table holds one.
    what : str
        What the rows are, for the error message (``"'delta' histograms"``).

    Raises
    ------
    DataError
        When ``variant`` is omitted and the table holds several, or when it
        names a variant without rows; both list the variants there are.
    """
    variants = variants_of(table)
    if variant is None:
        if len(variants) > 1:
            raise DataError(
                f"the table holds variants {variants}; name one with variant="
            )
        return variants[0]
    if variant not in variants:
        raise DataError(f"variant {variant!r} has no {what}; {variants} do")
    return variant


def _natural_key(name: str) -> tuple[str, int]:
    match = re.match(r"^(.*?)(\d+)$", name)
    return (match.group(1), int(match.group(2))) if match else (name, -1)


def layer_order(stats: pd.DataFrame, layers: Sequence[str] | None = None) -> list[str]:
    """The layers of ``stats`` from input to output, without ``"model"``.

    The order is the recorder's ``stats.attrs["layer_order"]`` when the table
    carries it, else that of first appearance among forward-stage and
    parameter rows (collectors record the forward pass in order); layers seen
    only in backward stages follow, in natural name order (``dense_2`` before
    ``dense_10``). Pass ``layers`` to choose and order them yourself.
    """
    if layers is not None:
        return list(layers)
    names = stats["layer"].astype(str)
    recorded = stats.attrs.get("layer_order") if hasattr(stats, "attrs") else None
    if recorded:
        ordered = [str(name) for name in recorded]
    elif "stage" in stats.columns:
        stages = stats["stage"].astype(str)
        forward = stages.isin(FORWARD_STAGES) | stages.str.startswith("param:")
        ordered = list(dict.fromkeys(names[forward.to_numpy()]))
    else:
        ordered = []
    rest = sorted(set(names) - set(ordered), key=_natural_key)
    return [name for name in ordered + rest if name != MODEL]


#: Figures with one panel per layer draw at most this many panels unless the
#: caller names the layers: the first, the last and layers evenly spaced between.
MAX_PANELS = 12


def ordered_layers(
    full: pd.DataFrame,
    selected: pd.DataFrame,
    layers: Sequence[str] | None = None,
    most: int | None = None,
) -> list[str]:
    """The layers of ``selected`` in the order :func:`layer_order` finds in ``full``.

    Figures select a few rows (only ``delta``, say) and order the layers by the
    whole table, whose forward-stage rows tell the order of the forward pass.
    With ``most`` and no ``layers``, a longer list is thinned to ``most``
    layers evenly spaced from the first to the last.
    """
    if isinstance(layers, str):
        raise DataError(
            f"layers takes a list of layer names, got {layers!r}; "
            f"help: layers=[{layers!r}]"
        )
    if layers is not None:
        known = set(full["layer"].astype(str))
        if layers and not any(str(name) in known for name in layers):
            found = layer_order(full)
            raise DataError(
                f"none of the layers {list(layers)} is in the table"
                f"{did_you_mean(str(list(layers)[0]), found)}; it has "
                f"{', '.join(found) or 'no layers'}"
            )
    present = set(selected["layer"].astype(str))
    names = [n for n in layer_order(full, layers) if n in present]
    if most is not None and layers is None and len(names) > most:
        keep = np.unique(np.round(np.linspace(0, len(names) - 1, most)).astype(int))
        names = [names[i] for i in keep]
    return names


def series(table: pd.DataFrame, x: str = "step") -> tuple[np.ndarray, np.ndarray]:
    """``(x, value)`` sorted by ``x``, averaging rows that share an ``x``."""
    grouped = table.groupby(x, sort=True)["value"].mean()
    return grouped.index.to_numpy(), grouped.to_numpy(dtype=float)


def pick_steps(available: Iterable[int], n: int = 4) -> list[int]:
    """About ``n`` steps from ``available``: the first, the last, and steps
    spaced evenly in log(step + 1) between them (early training changes fastest).
    """
    steps = np.unique(np.asarray(list(available), dtype=np.int64))
    if steps.size <= n:
        return steps.tolist()
    targets = np.geomspace(steps[0] + 1, steps[-1] + 1, n) - 1
    chosen = [int(steps[np.abs(steps - t).argmin()]) for t in targets]
    return sorted(set(chosen))


def nearest_step(available: Iterable[int], wanted: int | str) -> int:
    """The available step nearest ``wanted`` (``"first"`` or ``"last"`` allowed)."""
    steps = np.unique(np.asarray(list(available), dtype=np.int64))
    if steps.size == 0:
        raise DataError(f"no steps recorded to pick step {wanted!r} from")
    if wanted == "last":
        return int(steps[-1])
    if wanted == "first":
        return int(steps[0])
    if isinstance(wanted, str):
        raise DataError(f"a step is an int, 'first' or 'last'; got {wanted!r}")
    return int(steps[np.abs(steps - int(wanted)).argmin()])


def metrics_long(metrics: pd.DataFrame | History) -> pd.DataFrame:
    """A metrics history as the long table ``variant, epoch, split, metric, value``.

    Accepts the long form as it is, a wide table with ``epoch`` and one
    column per ``<split>_<metric>`` (see the module docstring), or the
    :class:`~annlens.training.history.History` that ``Trainer.fit`` returns.
    """
    if isinstance(metrics, History):
        metrics = pd.DataFrame(metrics.to_dict())
    if not isinstance(metrics, pd.DataFrame):
        raise DataError(
            "the metrics table must be a pandas DataFrame or a History, got "
            f"{type(metrics).__name__}"
        )
    table = metrics if "variant" in metrics.columns else metrics.assign(variant="")
    if {"split", "metric", "value"} <= set(table.columns):
        long = require(table, METRICS_COLUMNS, "metrics")
    else:
        if "epoch" not in table.columns:
            raise DataError(
                "a wide metrics table needs an 'epoch' column; it has "
                f"{list(table.columns)}"
            )
        value_columns = [
            c
            for c in table.columns
            if c not in ("variant", "epoch", "step")
            and pd.api.types.is_numeric_dtype(table[c])
        ]
        long = table.melt(
            id_vars=["variant", "epoch"], value_vars=value_columns, var_name="name"
        )
        if long.empty:
            return pd.DataFrame(columns=list(METRICS_COLUMNS))
        parts = long["name"].astype(str).str.split("_", n=1, expand=True)
        if parts.shape[1] == 1:
            parts[1] = None
        prefixed = parts[0].isin(list(SPLITS)) & parts[1].notna()
        long["split"] = np.where(prefixed, parts[0].map(SPLITS), "train")
        long["metric"] = np.where(prefixed, parts[1], long["name"])
        long = long.drop(columns="name")
    long = long.assign(
        variant=long["variant"].fillna("").astype(str),
        split=long["split"].astype(str).map(lambda s: SPLITS.get(s, s)),
    )
    return long.dropna(subset=["value"]).loc[:, list(METRICS_COLUMNS)]
