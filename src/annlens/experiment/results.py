"""What a run returns: per-variant results and the whole run, with a summary table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from rich.table import Table

from annlens.errors import ConfigError
from annlens.experiment.schema import Experiment


@dataclass
class VariantResult:
    """One trained variant.

    Attributes
    ----------
    name : str
        The variant's name.
    parts : Parts
        The data, model, loss, optimizer and schedule it trained with.
    history : History
        The per-epoch rows of the trainer.
    test : dict
        Loss and metrics on the held-out test part (empty when there is none).
    recorder : Recorder
        The statistics collected while it trained.
    stopped : dict or None
        The finding that says where training hit NaN or Inf, when it did.
    """

    name: str
    parts: Any
    history: Any
    test: dict[str, float]
    recorder: Any
    stopped: dict[str, Any] | None = None

    @property
    def model(self) -> Any:
        """The trained model."""
        return self.parts.model

    @property
    def statistics(self) -> pd.DataFrame:
        """This variant's rows of the long statistics table."""
        return self.recorder.to_dataframe()

    def __repr__(self) -> str:
        return f"VariantResult({self.name!r}, test={self.test})"


@dataclass
class Run:
    """A finished run: its directory, config, variants, tables and findings.

    Attributes
    ----------
    directory : Path
        The run directory.
    experiment : Experiment
        The resolved config.
    variants : dict of str to VariantResult
        Each variant by name.
    metrics : pandas.DataFrame
        Per-epoch metrics, one row per variant and epoch.
    statistics : pandas.DataFrame
        The long statistics table (step, epoch, variant, layer, stage,
        quantity, value).
    findings : list
        The diagnoses, filled when the outputs are written.
    report_path : Path or None
        report.html, when written.

    For a run of one variant (an experiment without variants, whose variant
    is ``"base"``), :attr:`model` and :attr:`history` are that variant's.
    """

    directory: Path
    experiment: Experiment
    variants: dict[str, VariantResult]
    metrics: pd.DataFrame
    statistics: pd.DataFrame
    findings: list[Any] = field(default_factory=list)
    report_path: Path | None = None

    @property
    def model(self) -> Any:
        """The trained model of the run's only variant."""
        return self.only().model

    @property
    def history(self) -> Any:
        """The history of the run's only variant."""
        return self.only().history

    def only(self) -> VariantResult:
        """The one variant of a run that has one; refused when there are more."""
        if len(self.variants) != 1:
            raise ConfigError(
                f"this run has variants {list(self.variants)}; help: pick one, "
                "run.variants[name].model"
            )
        return next(iter(self.variants.values()))

    def summary_table(self) -> Table:
        """One row per variant: epochs, final losses, test score and findings.

        The test score is the accuracy for classes and the RMSE, in the
        target's own units, for regression. A regression loss on standardised
        targets is in standardised units: when every variant's is, the loss
        headers say ``(std. y)`` and the caption explains it; when only some
        are, the caption names them.
        """
        table = Table(title=f"{self.experiment.name}: summary")
        scaled = [
            name
            for name, result in self.variants.items()
            if getattr(result.parts.data, "targets_standardized", False)
        ]
        unit = "\n(std. y)" if len(scaled) == len(self.variants) else ""
        if unit:
            table.caption = (
                "std. y: loss on standardised targets (y - mean) / std; "
                "test rmse in the target's own units"
            )
        elif scaled:
            table.caption = (
                f"loss of {', '.join(scaled)} on standardised targets "
                "(y - mean) / std; test rmse in the target's own units"
            )
        restored = [
            name
            for name, result in self.variants.items()
            if _restores_best(result.parts.experiment)
        ]
        if restored:
            which = (
                ""
                if len(restored) == len(self.variants)
                else (f" of {', '.join(restored)}")
            )
            note = (
                f"test{which}: scored with the weights of the best epoch "
                "(early_stopping.restore_best); the losses are the last epoch's"
            )
            table.caption = f"{table.caption}\n{note}" if table.caption else note
        # a long variant name folds onto more lines rather than squeezing the
        # numbers out of a narrow terminal
        table.add_column("variant", overflow="fold")
        for column in ("epochs", f"train loss{unit}", f"val loss{unit}"):
            table.add_column(column, no_wrap=True)
        table.add_column("test", no_wrap=True)
        table.add_column("findings")
        for name, result in self.variants.items():
            last = result.history.rows[-1] if result.history.rows else {}
            found = [f for f in self.findings if _variant_of(f) == name]
            rules = sorted({_rule_of(f).replace("_", " ") for f in found})
            table.add_row(
                name,
                str(len(result.history.rows)),
                _number(last.get("loss")),
                _number(last.get("val_loss")),
                _test_score(result.test),
                ", ".join(rules) if rules else "none",
            )
        return table

    def __repr__(self) -> str:
        return f"Run({str(self.directory)!r}, variants={list(self.variants)})"


def _restores_best(experiment: Any) -> bool:
    """Whether early stopping puts the best epoch's weights back at the end."""
    stopping = experiment.training.early_stopping
    return stopping is not None and bool(stopping.restore_best)


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _test_score(test: dict[str, float]) -> str:
    """Test accuracy, else RMSE (in the target's units), else the test loss."""
    if "accuracy" in test:
        return f"acc {test['accuracy']:.3f}"
    if "rmse" in test:
        return f"rmse {test['rmse']:.4g}"
    return f"loss {test['loss']:.4f}" if "loss" in test else "-"


def _variant_of(finding: Any) -> str:
    return str(finding.get("variant") if isinstance(finding, dict) else finding.variant)


def _rule_of(finding: Any) -> str:
    return str(finding.get("rule") if isinstance(finding, dict) else finding.rule)
