"""Per hook point, how far annlens and its PyTorch twin differ on one batch.

:class:`Difference` is one compared quantity at one hook point and
:class:`ParityResult` all of them, with the tolerances they are judged by.
They are made by :func:`~annlens.analysis.compare.one_batch.compare_models`
and need no torch: a stored result is read back and shown without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from annlens.analysis.compare.measure import (
    error_ratio,
    excess,
    resolve_rounding,
    resolve_tolerances,
)

#: In float32, the largest relative difference the absolute floor forgives
#: in a quantity that is not rounding noise (see Difference.floor_applies).
FLOOR_RELATIVE = 0.01


@dataclass(frozen=True)
class Difference:
    """One compared quantity at one hook point.

    Attributes
    ----------
    layer : str
        The layer name (``loss`` for the loss).
    point : str
        The hook point, ``dense_0.pre_activation``.
    quantity : str
        ``z``, ``output``, ``delta``, ``grads[W]``, ``running_var``, ...
    shape : tuple of int
        Its shape.
    max_abs, max_rel : float
        The largest absolute difference and the relative one (see
        :func:`~annlens.analysis.compare.measure.difference`).
    error_annlens, error_torch : float or None
        In float32: the largest absolute difference of annlens's value, and of
        PyTorch's, from a float64 evaluation of the same network on the same
        batch. None in float64, where there is no wider evaluation.
    exact_scale : float or None
        In float32: the largest magnitude of the float64 evaluation, which
        says whether the quantity is really small or only rounding (see
        :meth:`floor_applies`). None in float64.
    """

    layer: str
    point: str
    quantity: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    error_annlens: float | None = None
    error_torch: float | None = None
    exact_scale: float | None = None

    @property
    def error_ratio(self) -> float | None:
        """annlens's distance from the float64 value over PyTorch's; None when
        not measured."""
        if self.error_annlens is None or self.error_torch is None:
            return None
        return error_ratio(self.error_annlens, self.error_torch)

    def floor_applies(self, atol: float, rounding: float) -> bool:
        """Whether the absolute floor ``atol`` may count this row as agreeing.

        The floor is for values that are zero in exact arithmetic and only
        rounding in both frameworks. In float64 (no wider evaluation) it
        always applies. In float32 it applies when the float64 value is
        itself that small (within ``rounding`` times PyTorch's own float32
        error of zero, or below ``atol`` / 1000), or when the difference is
        at most :data:`FLOOR_RELATIVE` of the values: rounding that float32
        amplifies in a small quantity, not a wrong one. A really small value
        that annlens gets wrong (the zeroed or sign-flipped 1e-7 gradient of
        an early layer of a deep sigmoid network) is then not forgiven.
        """
        if self.exact_scale is None or self.error_torch is None:
            return True
        noise = max(rounding * self.error_torch, atol / 1000)
        return self.exact_scale <= noise or self.max_rel <= FLOOR_RELATIVE

    def within(self, tolerance: float, atol: float, rounding: float = 0.0) -> bool:
        """Whether the relative difference is at most ``tolerance``, the
        absolute one at most ``atol`` (where :meth:`floor_applies`), or
        :attr:`error_ratio` at most ``rounding``; False for NaN."""
        return self.excess(tolerance, atol, rounding) <= 1

    def excess(self, tolerance: float, atol: float, rounding: float = 0.0) -> float:
        """How far beyond its most lenient limit this row is (see
        :func:`~annlens.analysis.compare.measure.excess`)."""
        floor = atol if self.floor_applies(atol, rounding) else 0.0
        return excess(
            self.max_abs, self.max_rel, tolerance, floor, self.error_ratio, rounding
        )

    def to_dict(self) -> dict[str, Any]:
        """The row as plain JSON values."""
        return {
            "layer": self.layer,
            "point": self.point,
            "quantity": self.quantity,
            "shape": list(self.shape),
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "error_annlens": self.error_annlens,
            "error_torch": self.error_torch,
            "exact_scale": self.exact_scale,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Difference:
        """The row :meth:`to_dict` wrote."""

        def number(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        return cls(
            str(data["layer"]),
            str(data["point"]),
            str(data["quantity"]),
            tuple(int(n) for n in data["shape"]),
            float(data["max_abs"]),
            float(data["max_rel"]),
            number("error_annlens"),
            number("error_torch"),
            number("exact_scale"),
        )


@dataclass
class ParityResult:
    """Differences between annlens and PyTorch at every hook point of one batch.

    Attributes
    ----------
    rows : list of Difference
        In the order the hook points fired: forward, loss, backward, gradients.
    dtype : str
        The dtype both ran in.
    loss_annlens, loss_torch : float
        The two loss values.
    tolerance : float
        The relative difference counted as agreement; left out (or NaN), the
        dtype's default (:func:`default_tolerance`). 0 allows no difference.
    atol : float
        The absolute difference counted as agreement whatever the relative one;
        left out (or NaN), the dtype's default (:func:`default_atol`).
    rounding : float
        In float32, the largest :attr:`Difference.error_ratio` counted as
        agreement whatever the difference; left out (or NaN), 4. 0 turns this
        allowance off.

    Notes
    -----
    A row agrees when its relative difference is within ``tolerance``, its
    absolute difference within ``atol``, or (float32) annlens is at most
    ``rounding`` times as far as PyTorch from a float64 evaluation.

    The absolute floor is for values that are zero in exact arithmetic and
    only rounding in both frameworks, such as the gradient of a BatchNorm
    shift on a batch of two, where a difference of 1e-14 between two such
    results is 100% of their size. In float32 it counts only where the
    float64 evaluation says the value is such rounding (see
    :meth:`Difference.floor_applies`): a real gradient of 1e-7, below the
    floor of 1e-6, must still agree by the other two rules.

    The rounding allowance is for networks that amplify rounding: in a deep
    network of saturated tanh units whose weights are far too large, float32
    rounding in the first layer grows a few-fold in every layer, and both
    frameworks end up 1e-4 away from the exact values, and from each other,
    though neither does anything wrong. Measured against the float64 values
    (computed by PyTorch from the same float32 weights and batch), annlens is
    then as close as PyTorch is; a real difference, a wrong formula or a
    missing term, puts annlens far from the float64 values while PyTorch
    stays close, and still fails.
    """

    rows: list[Difference]
    dtype: str
    loss_annlens: float
    loss_torch: float
    tolerance: float = field(default=math.nan)
    atol: float = field(default=math.nan)
    rounding: float = field(default=math.nan)

    def __post_init__(self) -> None:
        self.tolerance, self.atol = resolve_tolerances(
            self.dtype, self.tolerance, self.atol
        )
        self.rounding = resolve_rounding(self.rounding)

    def tolerance_text(self) -> str:
        """The limits in words: ``0.0001 relative or 1e-06 absolute``, and the
        rounding allowance when it was measured."""
        text = f"{self.tolerance:g} relative or {self.atol:g} absolute"
        if any(row.error_ratio is not None for row in self.rows):
            text += f" or {self.rounding:g}x PyTorch's own {self.dtype} error"
        return text

    @property
    def max_abs(self) -> float:
        """The largest absolute difference over every row."""
        return max((row.max_abs for row in self.rows), default=0.0)

    @property
    def max_rel(self) -> float:
        """The largest relative difference over every row."""
        return max((row.max_rel for row in self.rows), default=0.0)

    @property
    def agrees(self) -> bool:
        """Whether every row is within :attr:`tolerance` or :attr:`atol`."""
        return not self.failures()

    def failures(self) -> list[Difference]:
        """The rows beyond both tolerances, or NaN."""
        return [
            row
            for row in self.rows
            if not row.within(self.tolerance, self.atol, self.rounding)
        ]

    def worst(self) -> Difference | None:
        """The row furthest beyond its tolerances (see :meth:`Difference.excess`).

        Among rows equally far (all beyond a tolerance of 0, say), the one
        with the largest relative difference. None when there are no rows.
        """
        return max(
            self.rows,
            key=lambda row: (self.excess(row), row.max_rel),
            default=None,
        )

    def excess(self, row: Difference) -> float:
        """How far beyond this result's limits ``row`` is."""
        return row.excess(self.tolerance, self.atol, self.rounding)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON values (:meth:`from_dict` reads it back)."""
        return {
            "dtype": self.dtype,
            "loss_annlens": self.loss_annlens,
            "loss_torch": self.loss_torch,
            "tolerance": self.tolerance,
            "atol": self.atol,
            "rounding": self.rounding,
            "rows": [row.to_dict() for row in self.rows],
        }

    @classmethod
    def from_dict(cls, data: Any) -> ParityResult:
        """The result :meth:`to_dict` wrote."""
        return cls(
            [Difference.from_dict(row) for row in data["rows"]],
            str(data["dtype"]),
            float(data["loss_annlens"]),
            float(data["loss_torch"]),
            float(data["tolerance"]),
            float(data["atol"]),
            float(data.get("rounding", math.nan)),
        )

    def to_dataframe(self) -> Any:
        """One row per compared quantity, as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "layer": row.layer,
                    "point": row.point,
                    "quantity": row.quantity,
                    "shape": row.shape,
                    "max_abs": row.max_abs,
                    "max_rel": row.max_rel,
                    "error_annlens": row.error_annlens,
                    "error_torch": row.error_torch,
                }
                for row in self.rows
            ]
        )

    def table(self) -> Any:
        """A rich Table for the terminal."""
        from annlens.analysis.compare.table import parity_table

        return parity_table(self)

    def to_html(self) -> str:
        """An HTML fragment (a ``<table>``) for the report."""
        from annlens.analysis.compare.table import parity_html

        return parity_html(self)

    def __rich__(self) -> Any:
        return self.table()

    def __repr__(self) -> str:
        state = "agrees" if self.agrees else f"{len(self.failures())} differ"
        return (
            f"ParityResult({len(self.rows)} quantities, dtype={self.dtype}, "
            f"max_rel={self.max_rel:.3g}, tolerance={self.tolerance:g}; {state})"
        )
