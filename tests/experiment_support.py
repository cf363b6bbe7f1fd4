"""Shared helpers of the experiment and command-line tests: tiny configs and readers.

Every experiment here is tiny (iris, one hidden layer of 16 units, a few
epochs, statistics every 5 steps, no figures and no report) so that a run
takes well under a second. iris splits into 90 training samples, so a batch of
16 gives 6 steps per epoch (the last batch holds 10).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w

STEPS_PER_EPOCH = 6

TINY: dict[str, Any] = {
    "name": "tiny",
    "seed": 7,
    "data": {"name": "iris"},
    "model": {"hidden": [16]},
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    "training": {"epochs": 2, "batch_size": 16},
    "collect": {"every": 5},
    "output": {"figures": False, "report": False},
}

# Two variants that exercise every piece of state a resumed run needs: the
# momentum and step schedule with BatchNorm's running statistics in the
# first; Adam, Dropout (the model's noise generator) and early stopping (its
# best weights) in the second.
TWO_VARIANTS: dict[str, Any] = {
    **TINY,
    "name": "pair",
    "training": {"epochs": 3, "batch_size": 16},
    "variants": [
        {
            "name": "plain",
            "model": {"batchnorm": True},
            "schedule": {"name": "step", "step_size": 1, "gamma": 0.5},
        },
        {
            "name": "drop",
            "model": {"dropout": 0.3},
            "optimizer": {"name": "adam", "lr": 0.01},
            "training": {"early_stopping": {"patience": 5}},
        },
    ],
}


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with the sections of ``changes`` merged in."""
    result = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def tiny(**changes: Any) -> dict[str, Any]:
    """The tiny one-variant config, with ``changes`` merged in."""
    return merged(TINY, changes)


def two_variants(**changes: Any) -> dict[str, Any]:
    """The tiny two-variant config, with ``changes`` merged in."""
    return merged(TWO_VARIANTS, changes)


def write_experiment(path: Path, config: dict[str, Any]) -> Path:
    """Write ``config`` as an experiment TOML file at ``path``."""
    path.write_text(tomli_w.dumps(config))
    return path


def run_dirs(root: Path) -> list[Path]:
    """The run directories under ``root``, oldest first (none when absent)."""
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir())


def only_run_dir(root: Path) -> Path:
    """The single run directory under ``root``."""
    found = run_dirs(root)
    assert len(found) == 1, f"expected one run directory under {root}, got {found}"
    return found[0]


def checkpoint_tensors(run_dir: Path, tag: str) -> dict[str, np.ndarray]:
    """Every array of ``checkpoints/<tag>/tensors.safetensors``."""
    from safetensors.numpy import load_file

    return load_file(run_dir / "checkpoints" / tag / "tensors.safetensors")


def assert_same_tensors(first: dict[str, Any], second: dict[str, Any]) -> None:
    """Same names, dtypes, shapes and bytes."""
    assert sorted(first) == sorted(second)
    for name in first:
        assert first[name].dtype == second[name].dtype, name
        assert first[name].shape == second[name].shape, name
        assert first[name].tobytes() == second[name].tobytes(), name


def checkpoint_meta(run_dir: Path, tag: str) -> dict[str, Any]:
    """``checkpoints/<tag>/meta.json`` without its creation time.

    The integrity record goes too: it is the digest of the content, creation
    time included, so it differs whenever the time does.
    """
    meta = json.loads((run_dir / "checkpoints" / tag / "meta.json").read_text())
    del meta["created"]
    del meta["integrity"]
    return dict(meta)


def assert_same_run(first: Path, second: Path, variants: list[str]) -> None:
    """Two run directories hold identical tables and checkpoints.

    Checkpoints are compared by their tensors (bit for bit) and their meta
    data but for the time written: the optimizer's hyperparameters and
    step, the schedule's state, the trainer's (history, data-order generator,
    callbacks) and the recorder's.
    """
    for table in ("metrics", "statistics", "histograms"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(first / f"{table}.parquet"),
            pd.read_parquet(second / f"{table}.parquet"),
            check_exact=True,
        )
    for variant in variants:
        for which in ("last", "best"):
            tag = f"{variant}-{which}"
            assert_same_tensors(
                checkpoint_tensors(first, tag), checkpoint_tensors(second, tag)
            )
            assert checkpoint_meta(first, tag) == checkpoint_meta(second, tag), tag


def manifest(run_dir: Path) -> dict[str, Any]:
    """The run's manifest.json."""
    return dict(json.loads((run_dir / "manifest.json").read_text()))


# A child process that runs an experiment and dies without any clean-up
# (os._exit) once the optimizer of one variant has taken a number of steps,
# as a killed process would: argv is the config as JSON, the output folder,
# the variant and the step count.
STOPPING_SCRIPT = """
import json, os, sys
from annlens.experiment import callbacks, run_experiment

config, out, variant = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
after = int(sys.argv[4])

def die(self, trainer, logs):
    if self.recorder.variant == variant and trainer.optimizer.t >= after:
        os._exit(17)

callbacks.EndEpoch.on_batch_end = die
run_experiment(config, out=out)
"""


def run_and_die(
    tmp_path: Path, config: dict[str, Any], out: Path, variant: str, after: int
) -> subprocess.CompletedProcess[str]:
    """Run ``config`` in a child that dies after ``after`` steps of ``variant``."""
    script = tmp_path / "stopping.py"
    script.write_text(STOPPING_SCRIPT)
    return subprocess.run(
        [
            sys.executable,
            str(script),
            json.dumps(config),
            str(out),
            variant,
            str(after),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
