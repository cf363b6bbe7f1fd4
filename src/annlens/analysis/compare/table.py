"""Comparison results as a rich table for the terminal and as HTML for the report.

Both show the same columns. A parity row beyond the result's limits is marked
"differs" (red in the terminal, class ``differs`` in HTML); a trajectory shows
one row per step, with the parameter or buffer furthest beyond the
tolerances, and a step beyond them is marked as drifting (yellow, class
``drifts``), not as a difference: drift is reported, not judged. rich is imported
only when a terminal table is asked for.
"""

from __future__ import annotations

import html
from typing import Any

PARITY_COLUMNS = (
    "layer",
    "hook point",
    "quantity",
    "shape",
    "max |Δ|",
    "max rel Δ",
    "error ratio",
)
TRAJECTORY_COLUMNS = (
    "step",
    "loss annlens",
    "loss torch",
    "|Δ loss|",
    "worst parameter",
    "its |Δ|",
    "its rel Δ",
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
                "—" if row.error_ratio is None else _number(row.error_ratio),
            ],
            row.within(result.tolerance, result.atol, result.rounding),
        )
        for row in result.rows
    ]


def _parity_caption(result: Any) -> str:
    caption = (
        f"tolerance {result.tolerance_text()}; loss {result.loss_annlens:.10g} "
        f"vs {result.loss_torch:.10g}"
    )
    if any(row.error_ratio is not None for row in result.rows):
        caption += (
            "; error ratio: annlens's distance from float64 values over PyTorch's"
        )
    return caption


def _trajectory_cells(result: Any) -> list[tuple[list[str], bool]]:
    """Each step's cells and whether it is within the result's tolerances."""
    return [
        (
            [
                str(step.step),
                f"{step.loss_annlens:.6g}",
                f"{step.loss_torch:.6g}",
                _number(step.loss_abs),
                step.worst,
                _number(step.worst_abs),
                _number(step.worst_rel),
            ],
            step.excess(result.tolerance, result.atol) <= 1,
        )
        for step in result.steps
    ]


def _trajectory_title(result: Any) -> str:
    recipe = f" with {result.recipe}" if result.recipe else ""
    return f"training side by side, {result.optimizer}{recipe}, {result.dtype}"


def _trajectory_caption(result: Any) -> str:
    caption = (
        f"drift, not judged; rows beyond {result.tolerance:g} relative and "
        f"{result.atol:g} absolute are marked"
    )
    return caption if result.stopped is None else f"{result.stopped}; {caption}"


def parity_table(result: Any, title: str | None = None) -> Any:
    """A rich Table of a :class:`~annlens.analysis.compare.ParityResult`.

    ``title``, when given, comes before the verdict: ``"<title>; annlens vs
    PyTorch, float32: agrees"``.
    """
    from rich.markup import escape
    from rich.table import Table

    verdict = "agrees" if result.agrees else f"{len(result.failures())} differ"
    heading = f"annlens vs PyTorch, {result.dtype}: {verdict}"
    table = Table(
        title=escape(heading if title is None else f"{title}; {heading}"),
        caption=escape(_parity_caption(result)),
    )
    for column in PARITY_COLUMNS:
        numeric = column.startswith(("max", "error"))
        table.add_column(
            column, justify="right" if numeric else "left", overflow="fold"
        )
    for cells, ok in _parity_cells(result):
        table.add_row(*map(escape, cells), style=None if ok else "bold red")
    return table


def trajectory_table(result: Any, title: str | None = None) -> Any:
    """A rich Table of a :class:`~annlens.analysis.compare.TrajectoryResult`.

    ``title``, when given, comes before the optimizer and what else each step
    does. Steps beyond the tolerances are yellow: drift is reported, not judged.
    """
    from rich.markup import escape
    from rich.table import Table

    heading = _trajectory_title(result)
    table = Table(
        title=escape(heading if title is None else f"{title}; {heading}"),
        caption=escape(_trajectory_caption(result)),
    )
    for column in TRAJECTORY_COLUMNS:
        numeric = column != "worst parameter"
        table.add_column(
            column, justify="right" if numeric else "left", overflow="fold"
        )
    for cells, ok in _trajectory_cells(result):
        table.add_row(*map(escape, cells), style=None if ok else "yellow")
    return table


def _html_table(
    css: str,
    caption: str,
    columns: tuple[str, ...],
    rows: list[tuple[list[str], bool]],
    beyond: str = "differs",
) -> str:
    """A ``<table>``; each row's class is ``agrees``, or ``beyond`` when not ok."""
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = "\n".join(
        f'<tr class="{"agrees" if ok else beyond}">'
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
        f"annlens vs PyTorch, {result.dtype}: {verdict} ({_parity_caption(result)})"
    )
    return _html_table("annlens-parity", caption, PARITY_COLUMNS, _parity_cells(result))


def trajectory_html(result: Any) -> str:
    """An HTML ``<table>`` fragment of a trajectory result, for the report."""
    caption = f"{_trajectory_title(result)} ({_trajectory_caption(result)})"
    rows = _trajectory_cells(result)
    return _html_table(
        "annlens-trajectory", caption, TRAJECTORY_COLUMNS, rows, beyond="drifts"
    )
