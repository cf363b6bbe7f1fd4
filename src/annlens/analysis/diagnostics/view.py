"""Reading the statistics table as the rules need it.

:class:`StatsView` holds the rows of one variant and answers the questions
rules ask: a quantity as a (step × layer) table with layers in model order,
the layers in depth order, a series of whole-model values. It also holds the
small helpers rules share: persistence over steps and loss smoothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from annlens.errors import DataError

REQUIRED = ("step", "layer", "stage", "quantity", "value")


def check_frame(frame: Any) -> pd.DataFrame:
    """``frame`` with a ``variant`` column, or raise naming what is missing."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            "diagnose() takes the statistics table as a pandas DataFrame "
            f"(Recorder.to_dataframe()), got {type(frame).__name__}"
        )
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(
            f"the statistics table lacks columns {missing}; it has "
            f"{list(frame.columns)}; help: see annlens.analysis.collectors for "
            "the schema"
        )
    for column in ("step", "value"):
        if not pd.api.types.is_numeric_dtype(frame[column]) and len(frame):
            converted = pd.to_numeric(frame[column], errors="coerce")
            bad = converted.isna() & frame[column].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(
                    f"the statistics table's column {column!r} must hold "
                    f"numbers; row {row} holds {frame[column].iloc[row]!r}; "
                    "help: see annlens.analysis.collectors for the schema"
                )
            frame = frame.assign(**{column: converted})
    steps = frame["step"].to_numpy(dtype=float)
    whole = np.isfinite(steps) & (steps == np.round(steps)) & (steps >= 0)
    if len(frame) and not whole.all():
        row = int(np.flatnonzero(~whole)[0])
        raise DataError(
            f"the statistics table's column 'step' must hold whole numbers >= 0 "
            f"(optimizer steps); row {row} holds {frame['step'].iloc[row]!r}"
        )
    if "variant" not in frame.columns:
        frame = frame.assign(variant="")
    return frame


def layer_order(frame: pd.DataFrame) -> list[str]:
    """Layers input side first: ``attrs["layer_order"]``, else first appearance.

    First appearance in forward stages follows the forward pass when the
    table is sorted by step, as the recorder writes it.
    """
    order = frame.attrs.get("layer_order")
    present = set(frame["layer"].unique())
    if order:
        return [name for name in order if name in present and name != "model"]
    forward = frame[frame["stage"].isin(("input", "pre_activation", "post_activation"))]
    source = forward if len(forward) else frame
    names = list(dict.fromkeys(source.sort_values("step", kind="stable")["layer"]))
    return [name for name in names if name != "model"]


class StatsView:
    """The statistics of one variant, with cached pivots.

    Parameters
    ----------
    frame : DataFrame
        Rows of one variant (columns of the statistics schema).
    variant : str
        Its name.
    order : list of str
        Layer names, input side first.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        variant: str,
        order: list[str],
        epoch_loss: pd.Series | None = None,
    ) -> None:
        self.frame = frame
        self.variant = variant
        self.order = order
        self.epoch_loss = epoch_loss
        self._cache: dict[tuple[str, str], pd.DataFrame] = {}

    def table(self, stage: str, quantity: str) -> pd.DataFrame:
        """``quantity`` at ``stage``: index step, one column per layer in order."""
        key = (stage, quantity)
        if key not in self._cache:
            rows = self.frame[
                (self.frame["stage"] == stage) & (self.frame["quantity"] == quantity)
            ]
            wide = rows.pivot_table(
                index="step", columns="layer", values="value", aggfunc="last"
            )
            columns = [name for name in self.order if name in wide.columns]
            self._cache[key] = wide[columns].sort_index()
        return self._cache[key]

    def model_series(self, quantity: str) -> pd.Series:
        """A whole-model quantity (layer and stage ``model``) by step.

        For ``loss``, when the statistics hold none, the training loss per
        epoch from the metrics table (indexed by epoch) if one was given.
        """
        rows = self.frame[
            (self.frame["layer"] == "model") & (self.frame["quantity"] == quantity)
        ]
        series = rows.groupby("step")["value"].last().sort_index()
        if quantity == "loss" and not len(series) and self.epoch_loss is not None:
            return self.epoch_loss
        return series

    def stages(self, family: str) -> list[str]:
        """The stages of a family present, such as ``update:W`` for ``update``."""
        stages = self.frame["stage"].unique()
        return sorted(s for s in stages if s.split(":", 1)[0] == family)

    def __repr__(self) -> str:
        return f"StatsView(variant={self.variant!r}, {len(self.frame)} rows)"


def check_metrics(metrics: Any) -> pd.DataFrame | None:
    """``metrics`` as a DataFrame (a History is converted), or raise naming
    what is missing; None stays None."""
    if metrics is None:
        return None
    if hasattr(metrics, "to_dict") and hasattr(metrics, "record_step"):
        metrics = pd.DataFrame(metrics.to_dict())  # a training History
    if not isinstance(metrics, pd.DataFrame):
        raise DataError(
            "diagnose() takes metrics as a pandas DataFrame (wide: epoch and "
            "train_loss or loss; long: variant, epoch, split, metric, value) or a "
            f"History, got {type(metrics).__name__}"
        )
    columns = set(metrics.columns)
    long = {"split", "metric", "value"} <= columns
    if len(metrics) and (
        "epoch" not in columns or not (long or columns & {"train_loss", "loss"})
    ):
        raise DataError(
            f"the metrics table has columns {list(metrics.columns)}; diagnose() "
            "needs epoch with train_loss or loss (wide), or epoch, split, metric "
            "and value (long); help: pass metrics=None to leave it out"
        )
    return metrics


def train_loss(metrics: Any, variant: str) -> pd.Series | None:
    """The training loss per epoch of ``variant`` from a metrics table, or None.

    Accepts the wide history (``epoch`` and ``train_loss`` or ``loss``
    columns, ``variant`` optional) and the long table (``variant, epoch,
    split, metric, value``).
    """
    if not isinstance(metrics, pd.DataFrame) or "epoch" not in metrics.columns:
        return None
    table = metrics
    if "variant" in table.columns:
        table = table[table["variant"].astype(str) == variant]
    if {"split", "metric", "value"} <= set(table.columns):
        table = table[(table["split"] == "train") & (table["metric"] == "loss")]
        column = "value"
    else:
        column = next((c for c in ("train_loss", "loss") if c in table.columns), "")
    if not column or not len(table):
        return None
    series = table.groupby("epoch")[column].last().astype(np.float64).sort_index()
    series.index = series.index.astype(np.int64)
    return series


def persistent(
    condition: pd.Series, persistence: float
) -> tuple[bool, int, int, float]:
    """Whether a per-step condition holds at enough of the steps.

    Parameters
    ----------
    condition : Series of bool, indexed by step
        The condition at each recorded step (missing steps dropped before).
    persistence : float
        The fraction of steps it must hold at.

    Returns
    -------
    held, first, last, fraction
        Whether it held often enough, the first and last step where it held,
        and the fraction of steps.
    """
    if not len(condition):
        return False, 0, 0, 0.0
    fraction = float(condition.mean())
    hits = condition.index[condition.to_numpy(dtype=bool)]
    if not len(hits):
        return False, 0, 0, 0.0
    return fraction >= persistence, int(hits[0]), int(hits[-1]), fraction


MIN_SMOOTHING_POINTS = 8


def smoothing_window(points: int, fraction: float) -> int:
    """Points in the moving mean: ``fraction`` of them, but at least 8 where
    there are 24 or more, so that batch-to-batch noise of a short record
    (a few dozen recorded steps) is averaged out before rules compare levels."""
    floor = min(MIN_SMOOTHING_POINTS, points // 3)
    return max(1, int(round(points * fraction)), floor)


def smooth(series: pd.Series, fraction: float) -> pd.Series:
    """A trailing moving mean over :func:`smoothing_window` points."""
    window = smoothing_window(len(series), fraction)
    return series.rolling(window, min_periods=1).mean()


def finite_median(values: pd.Series | np.ndarray) -> float:
    """The median of the finite values (NaN when there are none)."""
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    return float(np.median(array)) if array.size else float("nan")
