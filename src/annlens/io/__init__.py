"""Files on disk: checkpoints, run directories, manifests, tables and exports.

- :func:`save_checkpoint`, :func:`load_checkpoint`, :func:`restore`: a model
  (with optimizer, schedule and extra state) as safetensors plus JSON;
  :func:`upgrade_checkpoint` seals one of the older format.
- :class:`RunDir`: one folder per run, with config, manifest, tables,
  checkpoints, figures and report; :class:`RunLock`, held by the one process
  that runs or resumes it.
- :func:`export`: a run's tables as CSV, Parquet or JSON.
"""

from annlens.io.architecture import (
    build_model,
    describe_model,
    layer_classes,
    register_layer,
)
from annlens.io.atomic import atomic_write
from annlens.io.checkpoint import (
    Checkpoint,
    is_checkpoint,
    load_checkpoint,
    restore,
    save_checkpoint,
    upgrade_checkpoint,
)
from annlens.io.export import export
from annlens.io.lock import RunLock
from annlens.io.manifest import build_manifest, finish_manifest, git_state
from annlens.io.rundir import RunDir
from annlens.io.tables import STATISTICS_COLUMNS, TableWriter

__all__ = [
    "STATISTICS_COLUMNS",
    "Checkpoint",
    "RunDir",
    "RunLock",
    "TableWriter",
    "atomic_write",
    "build_manifest",
    "build_model",
    "describe_model",
    "export",
    "finish_manifest",
    "git_state",
    "is_checkpoint",
    "layer_classes",
    "load_checkpoint",
    "register_layer",
    "restore",
    "save_checkpoint",
    "upgrade_checkpoint",
]
