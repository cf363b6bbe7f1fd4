"""Comparison results as a rich table for the terminal and as HTML for the report.

Both show the same columns. A parity row whose relative difference exceeds
the result's tolerance is marked "differs" (red in the terminal, class
``differs`` in HTML); a trajectory shows one row per step. rich is imported
only when a terminal table is asked for.
"""

from __future__ import annotations

import html
from typing import Any

PARITY_COLUMNS = ("layer", "hook point", "quantity", "shape", "max |Δ|", "max rel Δ")
TRAJECTORY_COLUMNS = (
    "step",
    "loss annlens",
    "loss torch",
    "|Δ loss|",
    "max |Δ param|",
    "max rel Δ param",
    "worst",
)


def _number(value: float) -> str:
    return f"{value:.3g}"


def _parity_cells(result: Any) -> list[tuple[list[str], bool]]:
    """Each row's cells and whether it is within tolerance."""
    return [
        (
            [
                row.layer,
                row.point,
                row.quantity,
                "×".join(str(n) for n in row.shape) or "scalar",
                _number(row.max_abs),
                _number(row.max_rel),
            ],
            row.within(result.tolerance, result.atol),
        )
        for row in result.rows
    ]


def _trajectory_cells(result: Any) -> list[list[str]]:
    return [
        [
            str(step.step),
            f"{step.loss_annlens:.6g}",
            f"{step.loss_torch:.6g}",
            _number(step.loss_abs),
            _number(step.param_max_abs),
            _number(step.param_max_rel),
            step.worst,
        ]
        for step in result.steps
    ]


def parity_table(result: Any) -> Any:
    """A rich Table of a :class:`~annlens.analysis.compare.ParityResult`."""
    from rich.markup import escape
    from rich.table import Table

    verdict = "agrees" if result.agrees else f"{len(result.failures())} differ"
    table = Table(
        title=f"annlens vs PyTorch, {result.dtype}: {verdict}",
        caption=f"tolerance {result.tolerance:g} relative, {result.atol:g} absolute; "
        f"loss {result.loss_annlens:.10g} vs {result.loss_torch:.10g}",
    )
    for column in PARITY_COLUMNS:
        numeric = column.startswith("max")
        table.add_column(column, justify="right" if numeric else "left")
    for cells, ok in _parity_cells(result):
        table.add_row(*map(escape, cells), style=None if ok else "bold red")
    return table


def trajectory_table(result: Any) -> Any:
    """A rich Table of a :class:`~annlens.analysis.compare.TrajectoryResult`."""
    from rich.markup import escape
    from rich.table import Table

    title = f"training side by side, {result.optimizer}, {result.dtype}"
    table = Table(title=escape(title))
    for column in TRAJECTORY_COLUMNS:
        table.add_column(column, justify="left" if column == "worst" else "right")
    for cells in _trajectory_cells(result):
        table.add_row(*map(escape, cells))
    return table


def _html_table(
    css: str, caption: str, columns: tuple[str, ...], rows: list[tuple[list[str], bool]]
) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = "\n".join(
        f'<tr class="{"agrees" if ok else "differs"}">'
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
        + "</tr>"
        for cells, ok in rows
    )
    return (
        f'<table class="{css}">\n<caption>{html.escape(caption)}</caption>\n'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n"
    )


def parity_html(result: Any) -> str:
    """An HTML ``<table>`` fragment of a parity result, for the report."""
    verdict = "agrees" if result.agrees else f"{len(result.failures())} differ"
    caption = (
        f"annlens vs PyTorch, {result.dtype}: {verdict} "
        f"(tolerance {result.tolerance:g} relative, {result.atol:g} absolute)"
    )
    return _html_table("annlens-parity", caption, PARITY_COLUMNS, _parity_cells(result))


def trajectory_html(result: Any) -> str:
    """An HTML ``<table>`` fragment of a trajectory result, for the report."""
    caption = f"training side by side, {result.optimizer}, {result.dtype}"
    rows = [(cells, True) for cells in _trajectory_cells(result)]
    return _html_table("annlens-trajectory", caption, TRAJECTORY_COLUMNS, rows)
