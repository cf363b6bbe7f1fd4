"""The HTML report: diagnosis first, a section per question, everything embedded."""

from __future__ import annotations

import base64
import json
import warnings
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from annlens.errors import ConfigError, DataError
from annlens.training.history import History
from annlens.viz import QUESTIONS, build_report, gallery, plot_step_loss
from annlens.viz.findings import finding_rows, format_number, summary_line
from annlens.viz.gallery import standard_figures
from annlens.viz.style import VARIANT_COLORS
from viz_synthetic import synthetic_tables

PNG = b"\x89PNG\r\n\x1a\n"


class Outline(HTMLParser):
    """The parts of a page the tests look at, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, dict[str, str | None]]] = []
        self.headings: list[str] = []
        self.text: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append((tag, dict(attrs)))
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_h2:
            self.headings.append(data.strip())

    def index(self, tag: str, **attrs: str) -> int:
        for i, (name, found) in enumerate(self.events):
            if name == tag and all(found.get(k) == v for k, v in attrs.items()):
                return i
        raise AssertionError(f"no <{tag} {attrs}> in the page")

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [found for name, found in self.events if name == tag]


def outline(path: Path) -> Outline:
    parser = Outline()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@dataclass(frozen=True)
class DiagnosticFinding:
    """A stand-in with the field names of annlens.analysis.diagnostics.Finding."""

    rule: str
    severity: str
    variant: str
    layers: tuple[str, ...]
    step_range: tuple[int, int]
    measured: float
    threshold: float
    definition: str
    message: str
    suggestion: str
    source: str


FINDINGS = [
    {
        "rule": "low_update_ratio",
        "severity": "warning",
        "variant": "relu",
        "layer": "dense_1",
        "steps": [10, 20, 30, 40],
        "value": 2e-5,
        "threshold": 1e-4,
        "definition": "median ||update|| / ||W||",
        "message": "dense_1 <barely> moves.",
        "suggestion": "Raise the learning rate.",
    },
    DiagnosticFinding(
        rule="vanishing_gradients",
        severity="critical",
        variant="sigmoid",
        layers=("dense_0",),
        step_range=(0, 40),
        measured=0.004,
        threshold=0.01,
        definition="mean |delta| of dense_0 over that of the last layer",
        message="The signal reaching dense_0 is 250 times smaller.",
        suggestion="Use Glorot's initialisation.",
        source="Glorot and Bengio, 2010",
    ),
]


def small_figure(title: str) -> Figure:
    figure = Figure(figsize=(4, 2))
    ax = figure.subplots()
    ax.plot([0, 1], [1, 0])
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    figure.suptitle(title)
    return figure


@pytest.fixture(scope="module")
def tables():
    return synthetic_tables(
        np.random.default_rng(3),
        variants={"sigmoid": (0.3, 3e-5, "sigmoid"), "relu": (0.9, 1e-3, "relu")},
        steps=40,
        layers=["dense_0", "dense_1"],
    )


@pytest.fixture(scope="module")
def report(tables, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    return build_report(
        {
            "stats": tables.stats,
            "metrics": tables.metrics,
            "histograms": tables.histograms,
            "spectra": tables.spectra,
        },
        folder / "report.html",
        title="Two activations",
        findings=FINDINGS,
        figures=[("Did it learn?", "boundary", small_figure("Decision boundary"))],
        dpi=50,
    )


def test_report_has_every_question_heading_in_order(report: Path) -> None:
    headings = outline(report).headings
    positions = [headings.index(question) for question in QUESTIONS]
    assert positions == sorted(positions)
    assert headings[:2] == ["Experiment", "Diagnosis"]


def test_diagnosis_table_comes_before_the_first_figure(report: Path) -> None:
    page = outline(report)
    table = page.index("table", **{"class": "findings"})
    assert table < page.index("figure")
    assert table < page.index("img")


def test_every_figure_is_embedded_as_a_base64_png(report: Path) -> None:
    page = outline(report)
    images = page.all("img")
    assert len(images) == len(page.all("figure"))
    names = {str(found["id"]) for found in page.all("figure")}
    assert {
        "fig-gradient-flow",
        "fig-flow-comparison",
        "fig-gradient-norms",
        "fig-spectra",
        "fig-unit-health",
        "fig-activations-relu",
        "fig-update-ratios",
        "fig-curves",
        "fig-weights-sigmoid",
        "fig-boundary",
    } <= names
    for image in images:
        source = str(image["src"])
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == PNG
        assert image["alt"]


def test_report_refers_to_nothing_outside_itself(report: Path) -> None:
    page = outline(report)
    assert not page.all("script") and not page.all("link") and not page.all("iframe")
    for tag, found in page.events:
        for key in ("src", "href"):
            value = found.get(key)
            if value is not None:
                assert value.startswith(("#", "data:")), (tag, value)


def test_extra_figures_sit_under_their_question(report: Path) -> None:
    page = outline(report)
    learned = page.index("section", id="did-it-learn")
    assert page.index("figure", id="fig-boundary") > learned


def test_findings_are_listed_most_severe_first_with_measured_and_threshold(
    report: Path,
) -> None:
    text = " ".join(outline(report).text)
    assert text.index("vanishing_gradients") < text.index("low_update_ratio")
    assert "2 findings: 1 critical, 1 warning" in text
    assert "2.00e-05" in text and "1.00e-04" in text
    assert "0–40" in text and "10–40 (4 records)" in text
    assert "Glorot and Bengio, 2010" in text


def test_finding_text_is_escaped(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert "dense_1 &lt;barely&gt; moves." in html
    assert "<barely>" not in html


def test_variants_keep_their_palette_colour_in_the_variants_table(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert f"background: {VARIANT_COLORS[0]}" in html.split("sigmoid", 1)[0][-300:]


def test_all_clear_line_when_no_rule_fired(tables, tmp_path: Path) -> None:
    path = build_report(
        {"stats": tables.stats},
        tmp_path / "report.html",
        findings=[],
        standard=False,
        figures=[("Is the step size right?", "loss", small_figure("Loss"))],
        dpi=40,
    )
    page = outline(path)
    assert "All clear" in " ".join(page.text)
    assert not page.all("table") or all(
        t.get("class") != "findings" for t in page.all("table")
    )


def test_report_says_when_diagnostics_were_not_run(tables, tmp_path: Path) -> None:
    path = build_report(
        {"stats": tables.stats},
        tmp_path / "report.html",
        standard=False,
        figures=[("Did it learn?", "loss", small_figure("Loss"))],
        dpi=40,
    )
    text = " ".join(outline(path).text)
    assert "Diagnostics were not run" in text and "All clear" not in text
    assert text.count("Nothing this run recorded answers this question.") == 3


def test_a_figure_for_another_question_gets_a_section_after_the_four(
    tables, tmp_path: Path
) -> None:
    path = build_report(
        {"stats": tables.stats},
        tmp_path / "report.html",
        findings=[],
        standard=False,
        figures=[("What did dense_0 learn?", "filters", small_figure("Filters"))],
        dpi=40,
    )
    headings = outline(path).headings
    assert headings.index("What did dense_0 learn?") > headings.index(QUESTIONS[-1])


def test_report_from_a_run_directory(tables, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    wide = pd.DataFrame(
        {"epoch": [0, 1, 2], "loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7]}
    )
    wide.to_parquet(run / "metrics.parquet")
    tables.stats.query("layer == 'model'").to_parquet(run / "statistics.parquet")
    (run / "config.toml").write_text(
        'name = "from-disk"\ndescription = "read back"\nseed = 7\n'
        '[optimizer]\nname = "sgd"\nlr = 0.1\n'
        '[[variants]]\nname = "sigmoid"\ndescription = "the slow one"\n'
        'model = { activation = "sigmoid" }\n',
        encoding="utf-8",
    )
    (run / "manifest.json").write_text(
        json.dumps(
            {
                "annlens": "0.1.0",
                "git": {"commit": "abcdef1234567890"},
                "finished": "2026-01-02T03:04:05+00:00",
                "status": "interrupted",
            }
        ),
        encoding="utf-8",
    )
    (run / "findings.json").write_text(json.dumps(FINDINGS[:1]), encoding="utf-8")

    path = build_report(run, figure_dir=run / "figures", dpi=40)

    assert path == run / "report.html"
    page = outline(path)
    text = " ".join(page.text)
    assert page.headings[0] == "Experiment" and "from-disk" in text
    assert "the slow one" in text and "model.activation = sigmoid" in text
    assert "optimizer.lr" in text and "git abcdef123456" in text
    assert "low_update_ratio" in text
    assert "training stopped" in text and "training finished" not in text
    ids = {str(found["id"]) for found in page.all("figure")}
    assert {"fig-curves", "fig-step-loss"} <= ids
    assert (run / "figures" / "curves.png").is_file()
    assert (run / "figures" / "curves.svg").is_file()


def test_build_report_needs_an_out_path_for_tables(tables) -> None:
    with pytest.raises(ConfigError, match="out_path"):
        build_report({"stats": tables.stats}, standard=False)


def test_build_report_refuses_unknown_table_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="statistics.*did you mean 'stats'"):
        build_report({"statistics": pd.DataFrame()}, tmp_path / "r.html")


def test_build_report_takes_the_history_that_fit_returns(tables, tmp_path) -> None:
    history = History()
    history.append({"epoch": 0, "loss": 1.0, "val_loss": 1.2})
    history.append({"epoch": 1, "loss": 0.5, "val_loss": 0.7})

    path = build_report(
        {"stats": tables.stats, "metrics": history}, tmp_path / "r.html", dpi=40
    )
    assert "fig-curves" in {str(found["id"]) for found in outline(path).all("figure")}


def test_build_report_refuses_a_table_that_is_not_a_dataframe(tmp_path) -> None:
    with pytest.raises(
        ConfigError, match="'stats' must be a pandas DataFrame, got list"
    ):
        build_report({"stats": [1, 2]}, tmp_path / "r.html")


def test_nothing_to_report_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nothing to report"):
        build_report({"stats": None}, tmp_path / "r.html")


def test_finding_rows_read_dicts_and_objects_alike() -> None:
    rows = finding_rows(FINDINGS)
    assert [row["rule"] for row in rows] == ["vanishing_gradients", "low_update_ratio"]
    assert rows[0]["layer"] == "dense_0" and rows[0]["steps"] == "0–40"
    assert rows[0]["value"] == "0.004" and rows[0]["severity_class"] == "critical"


def test_summary_line_counts_findings_by_severity_most_severe_first() -> None:
    rows = finding_rows(FINDINGS * 2 + [{"rule": "note", "severity": "info"}])
    assert summary_line(rows) == "5 findings: 2 critical, 2 warnings, 1 info"


def test_finding_rows_shorten_long_layer_lists_and_keep_them_all_for_the_tooltip() -> (
    None
):
    layers = tuple(f"dense_{i}" for i in range(9))
    (row,) = finding_rows([{"rule": "r", "layers": layers, "step_range": [0, 135]}])
    assert row["layer"] == "dense_0 … dense_8 (9 layers)"
    assert row["layers"] == ", ".join(layers)
    assert row["steps"] == "0–135"


def test_finding_rows_need_a_rule() -> None:
    with pytest.raises(DataError, match="rule"):
        finding_rows([{"severity": "warning"}])


def test_format_number_reads_the_diagnostics_spelling_of_non_finite_values() -> None:
    assert format_number("NaN") == "NaN"
    assert format_number("Infinity") == "∞"
    assert format_number(0.0123456) == "0.0123"
    assert format_number(None) == "—"


def test_standard_figures_survive_a_run_that_diverged(tables) -> None:
    stats = tables.stats.copy()
    broken = (stats["variant"] == "relu") & (stats["step"] > 20)
    stats.loc[broken, "value"] = np.where(
        stats.loc[broken, "quantity"].isin(["loss", "l2"]), np.inf, np.nan
    )
    histograms = tables.histograms.copy()
    gone = (histograms["variant"] == "relu") & (histograms["step"] > 20)
    histograms.loc[gone, ["bin_lo", "bin_hi"]] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        entries = standard_figures(
            stats=stats, metrics=tables.metrics, histograms=histograms
        )
    names = {entry.name for entry in entries}
    assert {"gradient-flow", "activations-relu", "weights-relu", "step-loss"} <= names


def test_a_figure_that_fails_is_left_out_with_a_warning(
    tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> Figure:
        raise ValueError("bad data")

    monkeypatch.setattr(gallery, "plot_update_ratios", broken)
    with pytest.warns(RuntimeWarning, match="'update-ratios'.*bad data"):
        entries = standard_figures(stats=tables.stats)
    names = [entry.name for entry in entries]
    assert "update-ratios" not in names and "gradient-flow" in names


def test_standard_figures_tolerate_a_table_with_only_the_loss(tmp_path: Path) -> None:
    stats = pd.DataFrame(
        {
            "step": [0, 1, 2],
            "epoch": 0,
            "layer": "model",
            "stage": "model",
            "quantity": "loss",
            "value": [1.0, 0.8, 0.7],
        }
    )
    path = build_report({"stats": stats}, tmp_path / "r.html", findings=[], dpi=40)
    ids = [str(found["id"]) for found in outline(path).all("figure")]
    assert ids == ["fig-step-loss"]
    assert plot_step_loss(stats).get_suptitle()


@pytest.mark.parametrize("dpi", [0, -5, 1.5, True])
def test_a_dpi_that_is_not_a_positive_integer_is_refused_before_drawing(
    tmp_path: Path, dpi: object
) -> None:
    tables = synthetic_tables(np.random.default_rng(0), steps=5, layers=["dense_0"])
    out = tmp_path / "report.html"
    with pytest.raises(ConfigError, match=r"build_report dpi must be an integer >= 1"):
        build_report({"stats": tables.stats}, out, dpi=dpi)  # type: ignore[arg-type]
    assert not out.exists()


def test_a_variant_named_for_the_report_must_be_in_the_tables(tables, tmp_path: Path):
    with pytest.raises(ConfigError, match=r"\['relux'\] are not in the tables.*'relu'"):
        build_report(
            {"stats": tables.stats},
            tmp_path / "report.html",
            variants=["sigmoid", "relux"],
            standard=False,
        )

    assert not (tmp_path / "report.html").exists()


def test_variants_whose_names_slug_alike_get_figures_of_their_own() -> None:
    tables = synthetic_tables(
        np.random.default_rng(4),
        variants={"v_1": (0.3, 3e-5, "sigmoid"), "v-1": (0.9, 1e-3, "relu")},
        steps=20,
        layers=["dense_0", "dense_1"],
    )

    entries = standard_figures(stats=tables.stats, histograms=tables.histograms)

    names = [entry.name for entry in entries]
    assert len(names) == len(set(names))
    assert {"activations-v-1", "activations-v-1-2", "weights-v-1-2"} <= set(names)
