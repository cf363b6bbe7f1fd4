"""Experiments: one TOML file in, a complete, reproducible, analysed run out.

- :func:`load_config` reads and validates an experiment file (or the built-in
  default), with ``key=value`` overrides.
- :func:`run_experiment` trains every variant and writes the run directory;
  :func:`resume_experiment` continues a stopped one.
- :func:`rebuild_report`, :func:`inspect_path`, :func:`compare_experiment`
  back the ``annlens report``, ``inspect`` and ``compare`` commands.
"""

from annlens.experiment.compare import compare_experiment
from annlens.experiment.config import load_config, resolve_variants, validate
from annlens.experiment.inspect import inspect_path
from annlens.experiment.reporting import rebuild_report
from annlens.experiment.results import Run, VariantResult
from annlens.experiment.runner import (
    resume_experiment,
    run_experiment,
    run_is_complete,
    run_lacks_outputs,
)
from annlens.experiment.schema import Experiment

__all__ = [
    "Experiment",
    "Run",
    "VariantResult",
    "compare_experiment",
    "inspect_path",
    "load_config",
    "rebuild_report",
    "resolve_variants",
    "resume_experiment",
    "run_experiment",
    "run_is_complete",
    "run_lacks_outputs",
    "validate",
]
