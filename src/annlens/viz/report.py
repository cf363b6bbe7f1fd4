"""The HTML report: one self-contained file a researcher opens in a browser.

:func:`build_report` writes ``report.html`` with, in order:

1. the experiment: its name, description and variants (each with its colour
   and the settings that differ from the base), the main settings, and the
   whole configuration folded away;
2. the diagnosis table: every finding, most severe first, with what was
   measured against the threshold and what to try; a single all-clear line
   when no rule fired;
3. when ``annlens compare`` was run on the run directory, "Against PyTorch":
   its verdict and, per variant, the parity and trajectory tables;
4. the figures, under one heading per question: "Is the signal flowing?",
   "Are units alive?", "Is the step size right?", "Did it learn?";
5. where the run came from (versions, commit, seed, times).

Figures are embedded as base64 PNG, the style sheet is inline, and there is
no script: the file needs no network and works with JavaScript off.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from annlens.errors import ConfigError, DataError, did_you_mean
from annlens.io.atomic import write_text
from annlens.io.manifest import end_label
from annlens.viz.comparison import comparison_section
from annlens.viz.findings import finding_rows, summary_line
from annlens.viz.gallery import QUESTIONS, ReportFigure, slug, standard_figures
from annlens.viz.rundir import RunTables, load_run
from annlens.viz.style import DPI, figure_png, save_figure, variant_palette
from annlens.viz.tables import layer_order, variants_of

logger = logging.getLogger("annlens")

TEMPLATE = "templates/report.html.j2"
HEADLINE_KEYS = (
    "seed",
    "data.name",
    "model.hidden",
    "model.activation",
    "model.init",
    "loss.name",
    "optimizer.name",
    "optimizer.lr",
    "optimizer.momentum",
    "schedule.name",
    "training.epochs",
    "training.batch_size",
)
NOT_SETTINGS = ("name", "description", "variants")

FigureLike = ReportFigure | tuple[Any, ...]


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"init": {"name": "he"}}}`` as ``{"model.init.name": "he"}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def show(value: Any) -> str:
    """A setting's value for reading."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={show(v)}" for k, v in value.items()) or "{}"
    return str(value)


def variant_rows(
    variants: Any, config: Mapping[str, Any] | None, found: Sequence[str]
) -> list[dict[str, Any]]:
    """Name, description and differing settings per variant, in report order.

    ``variants`` may be a list of names, a mapping of name to a description or
    to a mapping of settings, or a list of dicts with ``name`` (and
    ``description``); without it the config's ``variants`` are used, then the
    variants found in the tables.
    """
    if variants is None and config is not None:
        variants = config.get("variants") or None
    rows: list[dict[str, Any]] = []
    if variants is None:
        variants = list(found)
    if isinstance(variants, Mapping):
        variants = [
            {"name": name, **({"description": v} if isinstance(v, str) else dict(v))}
            for name, v in variants.items()
        ]
    for entry in variants:
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise ConfigError(
                f"each variant must be a name or a mapping with a 'name'; got {entry!r}"
            )
        settings = flatten({k: v for k, v in entry.items() if k not in NOT_SETTINGS})
        rows.append(
            {
                "name": str(entry["name"]),
                "description": str(entry.get("description") or ""),
                "settings": [(k, show(v)) for k, v in settings.items()],
            }
        )
    named = {row["name"] for row in rows}
    rows += [
        {"name": v, "description": "", "settings": []} for v in found if v not in named
    ]
    return rows


def as_report_figure(item: FigureLike) -> ReportFigure:
    """A :class:`ReportFigure` from one or a ``(question, name, figure[, caption])``."""
    if isinstance(item, ReportFigure):
        return item
    if isinstance(item, tuple) and len(item) in (3, 4) and isinstance(item[2], Figure):
        return ReportFigure(str(item[0]), slug(str(item[1])), item[2], *item[3:])
    raise ConfigError(
        "a report figure is a ReportFigure or a tuple (question, name, figure"
        f"[, caption]); got {type(item).__name__}"
    )


def _tables(source: Any) -> tuple[RunTables, Path | None]:
    if isinstance(source, RunTables):
        return source, None
    if isinstance(source, Mapping):
        keys = sorted(RunTables.__dataclass_fields__)
        unknown = sorted(set(source) - set(keys))
        if unknown:
            raise ConfigError(
                f"report tables take keys {keys}; got unknown {unknown}"
                f"{did_you_mean(str(unknown[0]), keys)}"
            )
        return RunTables(**source), None
    if isinstance(source, (str, os.PathLike)):
        return load_run(source), Path(source)
    raise ConfigError(
        "build_report reads a run directory, a RunTables or a mapping of tables; "
        f"got {type(source).__name__}"
    )


def _render(context: dict[str, Any]) -> str:
    try:
        import jinja2
    except ImportError as error:  # pragma: no cover - jinja2 is in the run extra
        raise ImportError(
            "the HTML report needs Jinja2; help: pip install 'annlens[run]'"
        ) from error
    text = resources.files("annlens.viz").joinpath(TEMPLATE).read_text("utf-8")
    environment = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.from_string(text).render(**context)


def _provenance(manifest: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    if not manifest:
        return []
    rows = []
    git = manifest.get("git")
    if isinstance(git, Mapping) and git.get("commit"):
        dirty = " (with uncommitted changes)" if git.get("dirty") else ""
        rows.append(("code", f"git {str(git['commit'])[:12]}{dirty}"))
    for key, label in (
        ("annlens", "annlens"),
        ("numpy", "NumPy"),
        ("python", "Python"),
        ("seed", "seed"),
        ("started", "started"),
        ("finished", end_label(manifest)),
        ("duration_s", "training time (s)"),
        ("status", "status"),
    ):
        if manifest.get(key) is not None:
            value = manifest[key]
            text = f"{value:.1f}" if isinstance(value, float) else show(value)
            rows.append((label, text))
    return rows


def build_report(
    source: str | os.PathLike[str] | RunTables | Mapping[str, Any],
    out_path: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    description: str | None = None,
    variants: Any = None,
    findings: Sequence[Any] | None = None,
    figures: Sequence[FigureLike] = (),
    standard: bool = True,
    figure_dir: str | os.PathLike[str] | None = None,
    config: Mapping[str, Any] | None = None,
    dpi: int = DPI,
    comparisons: Sequence[Any] | None = None,
) -> Path:
    """Write one self-contained ``report.html`` and return its path.

    Parameters
    ----------
    source : path, RunTables or mapping
        A run directory (read by :func:`annlens.viz.rundir.load_run`), or the
        tables themselves: a :class:`RunTables` or a mapping with any of its
        fields (``stats``, ``metrics``, ``histograms``, ``spectra``,
        ``config``, ``manifest``, ``findings``, ``comparisons``).
    out_path : path, optional
        Where to write; by default ``report.html`` in the run directory
        (required when ``source`` is not a folder).
    title, description : str, optional
        Default: the config's ``name`` and ``description``.
    variants : optional
        Names, a mapping of name to description or settings, or a list of
        dicts with ``name`` and ``description``; default the config's
        ``variants``, then the variants in the tables. Their order fixes the
        colours.
    findings : sequence of Finding or dict, optional
        Default: those in ``source``. An empty sequence gives the all-clear
        line; None (and none in ``source``) says diagnostics were not run.
    figures : sequence of ReportFigure or (question, name, figure[, caption])
        Extra figures, such as decision boundaries, placed after the standard
        ones of their question.
    standard : bool
        Draw the standard figures from the tables
        (:func:`annlens.viz.gallery.standard_figures`).
    figure_dir : path, optional
        Also save every figure there as PNG and SVG.
    config : mapping, optional
        The resolved experiment, when ``source`` does not carry it.
    dpi : int
        Pixels per inch of the embedded PNGs; they are shown at 100 CSS pixels
        per inch whatever this is, so a higher value is sharper on dense
        screens and makes a larger file.
    comparisons : sequence of Comparison, optional
        Each variant against its PyTorch twin
        (:class:`~annlens.analysis.compare.Comparison`), shown in an "Against
        PyTorch" section; default: those in ``source`` (``compare.json``),
        and no section when there are none.

    Returns
    -------
    Path
        The report written.
    """
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi < 1:
        raise ConfigError(
            f"build_report dpi must be an integer >= 1, got {dpi!r}; help: the "
            f"default {DPI} suits most screens"
        )
    tables, run_dir = _tables(source)
    if out_path is None:
        if run_dir is None:
            raise ConfigError(
                "build_report needs out_path when given tables rather than a "
                "run directory"
            )
        out_path = run_dir / "report.html"
    config = dict(config if config is not None else tables.config or {})
    findings = findings if findings is not None else tables.findings
    if comparisons is None:
        comparisons = tables.comparisons

    present = [
        t
        for t in (tables.stats, tables.metrics, tables.histograms, tables.spectra)
        if t is not None
    ]
    found = list(dict.fromkeys(v for t in present for v in variants_of(t)))
    rows = variant_rows(variants, config, found)
    if variants is not None and found:
        unknown = [row["name"] for row in rows if row["name"] not in found]
        if unknown:
            raise ConfigError(
                f"build_report variants {unknown} are not in the tables, which "
                f"hold {found}{did_you_mean(unknown[0], found)}"
            )
    palette = variant_palette([row["name"] for row in rows])
    for row in rows:
        row["colour"] = palette[row["name"]]
        row["label"] = row["name"] or "run"

    entries: list[ReportFigure] = []
    if standard:
        layers = layer_order(tables.stats) if tables.stats is not None else None
        entries += standard_figures(
            stats=tables.stats,
            metrics=tables.metrics,
            histograms=tables.histograms,
            spectra=tables.spectra,
            palette=palette,
            layers=layers,
        )
    entries += [as_report_figure(item) for item in figures]
    if not entries and not findings and not comparisons:
        raise DataError(
            "nothing to report: no figure could be drawn from the tables given "
            "and there are no findings or comparisons"
        )

    sections = []
    questions = list(QUESTIONS) + [
        e.question for e in entries if e.question not in QUESTIONS
    ]
    for question in dict.fromkeys(questions):
        shown = []
        for entry in (e for e in entries if e.question == question):
            width, height = entry.figure.get_size_inches()
            if figure_dir is not None:
                saved = save_figure(entry.figure, figure_dir, entry.name, dpi=dpi)
                png = saved["png"].read_bytes()
            else:
                png = figure_png(entry.figure, dpi)
            shown.append(
                {
                    "id": f"fig-{entry.name}",
                    "title": entry.title,
                    "caption": entry.caption,
                    "src": "data:image/png;base64,"
                    + base64.b64encode(png).decode("ascii"),
                    "width": round(width * 100),
                    "height": round(height * 100),
                }
            )
        sections.append({"id": slug(question), "question": question, "figures": shown})

    finding_list = finding_rows(findings) if findings else []
    settings = flatten({k: v for k, v in config.items() if k not in NOT_SETTINGS})
    context = {
        "title": title or config.get("name") or "annlens report",
        "description": description
        if description is not None
        else str(config.get("description") or ""),
        "variants": rows,
        "colours": palette,
        "headline": [(k, show(settings[k])) for k in HEADLINE_KEYS if k in settings],
        "settings": [(k, show(v)) for k, v in settings.items()],
        "diagnosed": findings is not None,
        "findings": finding_list,
        "finding_summary": summary_line(finding_list) if finding_list else "",
        "sections": sections,
        "comparison": comparison_section(comparisons) if comparisons else None,
        "provenance": _provenance(tables.manifest),
        "version": _version(),
    }
    html = _render(context)
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, html)
    logger.info("report written to %s (%d figures)", path, len(entries))
    return path


def _version() -> str:
    import annlens

    return str(getattr(annlens, "__version__", ""))
