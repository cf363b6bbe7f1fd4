"""Checkpoints: save a model (with optimizer, schedule and more), load it, restore it.

Layout. A checkpoint is a folder holding two files::

    ckpt/
      tensors.safetensors   every array: parameters, buffers, optimizer state
      meta.json             everything else, the sha256 of the tensors file
                            and the sha256 of its own content

``tensors.safetensors`` names its arrays:

- ``model.<layer>.<name>``: parameters and buffers, ``model.dense_0.W`` of
  shape (in, out), ``model.dense_0.b`` (out,), ``model.batchnorm_0.gamma``,
  ``model.batchnorm_0.running_mean``;
- ``optimizer.state.<parameter>.<slot>``: optimizer state, such as
  ``optimizer.state.dense_0.W.velocity``;
- ``schedule.*``, ``extra.*``, ``rng.*``: arrays inside those parts of the
  state (usually none).

``meta.json`` holds the format name and version, the annlens and NumPy
versions, the architecture (each layer's class and ``config()``, the model's
seed, dtype and input width), the model's noise-generator state
(``model.state.rng.bit_generator.state``), the step and epoch, the optimizer's
type, hyperparameters and step, the schedule's state and ``extra``, with
``{"__tensor__": name}`` where an array sits in the tensors file; last its
``integrity`` record, the sha256 of all the rest (see
:mod:`annlens.io.checkpoint_integrity`). The tensors' sha256 sits inside what
that digest covers, so the two digests together cover the whole checkpoint.

Loading into PyTorch. The tensors file is plain safetensors, so
``safetensors.torch.load_file(ckpt / "tensors.safetensors")`` reads it. A Dense
layer computes ``x W + b`` with ``W`` of shape (in, out), while
``torch.nn.Linear`` keeps ``weight`` as (out, in): set
``linear.weight = W.T`` and ``linear.bias = b``; BatchNorm's ``gamma``,
``beta``, ``running_mean`` and ``running_var`` are ``BatchNorm1d``'s
``weight``, ``bias``, ``running_mean`` and ``running_var``.

Safety. A checkpoint is written into a hidden temporary folder beside its
final place, every file ``fsync``-ed, then renamed into place. An existing one
is first renamed aside (``.<name>.old-*``) and removed only once the new one is
in place. A run killed at any moment therefore leaves at the path the old
checkpoint or the new one, never a mixture; killed between the two renames, it
leaves nothing there and the old one aside, which :func:`load_checkpoint`
points to in its message. Nothing is pickled. :func:`load_checkpoint` checks
the format and both digests before decoding anything, so a truncated, edited,
altered or foreign file raises :class:`~annlens.errors.CheckpointError` and
loads nothing; :func:`restore` checks that the checkpoint fits the model and
changes nothing when it does not.

Older checkpoints. Format version 1 had no digest of ``meta.json``, so an
edit to it cannot be told from the original: :func:`load_checkpoint` refuses
it, and :func:`upgrade_checkpoint` seals one that its owner vouches for.

This module writes checkpoints; reading, verifying and restoring them live in
:mod:`annlens.io.checkpoint_load`, and the format constants in
:mod:`annlens.io.checkpoint_format` (all importable from here too).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from annlens.errors import CheckpointError
from annlens.io.architecture import describe_model
from annlens.io.atomic import fsync_dir, naming, temporary_sibling, write_text
from annlens.io.checkpoint_format import (
    FORMAT,
    FORMAT_VERSION,
    META_FILE,
    TENSORS_FILE,
    Arrays,
)
from annlens.io.checkpoint_integrity import seal_meta, verify_meta
from annlens.io.checkpoint_load import (
    Checkpoint,
    is_checkpoint,
    load_checkpoint,
    read_meta_file,
    read_tensors,
    restore,
)
from annlens.io.manifest import annlens_version, now_utc
from annlens.io.tree import split_arrays

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "META_FILE",
    "TENSORS_FILE",
    "Arrays",
    "Checkpoint",
    "collect_state",
    "is_checkpoint",
    "load_checkpoint",
    "restore",
    "save_checkpoint",
    "upgrade_checkpoint",
]

logger = logging.getLogger("annlens")


# -- saving --------------------------------------------------------------------


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Any,
    optimizer: Any = None,
    schedule: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder at ``path``, atomically; return its path.

    Parameters
    ----------
    path : path-like
        The checkpoint folder. An existing checkpoint there is replaced; any
        other existing file or non-empty folder is refused.
    model : Sequential
        Its parameters, buffers, architecture, noise generator, step and epoch.
    optimizer : Optimizer, optional
        Its ``state_dict()``: type, hyperparameters, step and per-parameter state.
    schedule : Schedule, optional
        Its ``state_dict()``.
    extra : mapping, optional
        Anything else to keep (collector state, the data-order generator's
        state, the best metric so far): nested dicts and lists of numbers,
        strings and arrays.

    Raises
    ------
    CheckpointError
        Something in the state cannot be stored without pickling, ``path``
        holds something other than a checkpoint or lies under a file, or the
        optimizer was not built on ``model`` (or the schedule not made on the
        optimizer).
    """
    from safetensors.numpy import save as encode

    folder = Path(path)
    _check_owners(folder, model, optimizer, schedule)
    tensors, meta = collect_state(model, optimizer, schedule, extra)
    blob = encode(tensors, metadata={"format": FORMAT})
    meta["tensors"] = {
        "file": TENSORS_FILE,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
    }
    # the digest covers meta.json as a reader will parse it
    sealed = seal_meta(json.loads(json.dumps(meta)))
    _check_replaceable(folder)
    _write_folder(folder, blob, json.dumps(sealed, indent=2) + "\n")
    logger.debug("saved checkpoint %s (%d bytes of tensors)", folder, len(blob))
    return folder


def upgrade_checkpoint(path: str | os.PathLike[str]) -> Path:
    """Seal a checkpoint of format version 1 with the digest of its ``meta.json``.

    Version 1 recorded no sha256 of ``meta.json``, so :func:`load_checkpoint`
    cannot tell an edited one from the original and refuses it. Upgrade only
    a checkpoint you trust not to have been edited: from then on it loads, and
    any later edit is refused. The tensors file is checked against the sha256
    that ``meta.json`` records for it first, and is not rewritten; ``meta.json``
    is replaced atomically. A checkpoint of the current version is checked
    and left as it is.

    Parameters
    ----------
    path : path-like
        The checkpoint folder (or a file inside it).

    Returns
    -------
    Path
        The checkpoint folder.

    Raises
    ------
    CheckpointError
        Not a checkpoint; a newer format; a tensors file that does not match;
        a current-version checkpoint that fails its own check (it is not
        resealed).
    """
    folder = Path(path)
    if folder.is_file() and folder.name in (META_FILE, TENSORS_FILE):
        folder = folder.parent
    where = f"checkpoint {str(folder)!r}"
    if not folder.is_dir():
        raise CheckpointError(f"no checkpoint folder at {str(folder)!r} to upgrade")
    meta = read_meta_file(folder, where)
    if meta["format_version"] == FORMAT_VERSION:
        verify_meta(meta, where)
        return folder
    read_tensors(folder, meta, where)
    sealed = seal_meta({**meta, "format_version": FORMAT_VERSION})
    write_text(folder / META_FILE, json.dumps(sealed, indent=2) + "\n")
    logger.info(
        "%s: sealed format version %d as %d",
        where,
        meta["format_version"],
        FORMAT_VERSION,
    )
    return folder


def collect_state(
    model: Any, optimizer: Any, schedule: Any, extra: Mapping[str, Any] | None
) -> tuple[Arrays, dict[str, Any]]:
    """The arrays and the JSON-ready meta of a checkpoint (without the hash)."""
    tensors: Arrays = {
        f"model.{name}": np.ascontiguousarray(value)
        for name, value in model.state_dict().items()
    }
    rng_tree, rng_arrays = split_arrays(model.state.rng.bit_generator.state, "rng")
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "annlens_version": annlens_version(),
        "numpy_version": np.__version__,
        "created": now_utc().isoformat(),
        "model": {
            "architecture": describe_model(model),
            "rng": rng_tree,
            "step": int(model.state.step),
            "epoch": int(model.state.epoch),
        },
    }
    tensors.update(rng_arrays)
    for key, owner in (("optimizer", optimizer), ("schedule", schedule)):
        if owner is None:
            meta[key] = None
            continue
        tree, arrays = split_arrays(owner.state_dict(), key)
        meta[key], tensors = tree, {**tensors, **arrays}
    tree, arrays = split_arrays(dict(extra or {}), "extra")
    meta["extra"], tensors = tree, {**tensors, **arrays}
    return tensors, meta


def _check_owners(folder: Path, model: Any, optimizer: Any, schedule: Any) -> None:
    """Refuse a model that is none, or an optimizer or schedule of something else."""
    where = f"cannot save a checkpoint at {str(folder)!r}"
    if not callable(getattr(model, "state_dict", None)) or not hasattr(model, "state"):
        raise CheckpointError(
            f"{where}: model must be a Sequential, got {type(model).__name__}"
        )
    if optimizer is not None and getattr(optimizer, "model", None) is not model:
        raise CheckpointError(
            f"{where}: the optimizer {optimizer!r} was not built on this model, so "
            "its state would not fit the parameters saved beside it"
        )
    if schedule is not None and optimizer is not None:
        if getattr(schedule, "optimizer", None) is not optimizer:
            raise CheckpointError(
                f"{where}: the schedule {schedule!r} was not made on this optimizer"
            )


def _check_replaceable(folder: Path) -> None:
    """Refuse to replace anything but a checkpoint (or an empty folder)."""
    for above in folder.parents:
        if above.exists():
            if not above.is_dir():
                raise CheckpointError(
                    f"cannot save a checkpoint at {str(folder)!r}: "
                    f"{str(above)!r} is a file, not a folder"
                )
            break
    if not folder.exists() and not folder.is_symlink():
        return
    if not folder.is_dir() or folder.is_symlink():
        raise CheckpointError(
            f"cannot save a checkpoint at {str(folder)!r}: a file is there"
        )
    if any(folder.iterdir()) and not (folder / META_FILE).is_file():
        raise CheckpointError(
            f"cannot save a checkpoint at {str(folder)!r}: the folder holds "
            f"files but no {META_FILE}, so it is not a checkpoint to replace"
        )


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _write_folder(folder: Path, blob: bytes, meta: str) -> None:
    """Stage both files in a hidden folder, then rename it into place."""
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = temporary_sibling(folder)
    staging.mkdir()
    try:
        # An error names the file where it was going, not the hidden staging.
        with naming(folder / TENSORS_FILE):
            _write_file(staging / TENSORS_FILE, blob)
        with naming(folder / META_FILE):
            _write_file(staging / META_FILE, meta.encode("utf-8"))
        fsync_dir(staging)
        if folder.exists():
            retired = temporary_sibling(folder, "old")
            os.replace(folder, retired)
            try:
                os.replace(staging, folder)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.replace(retired, folder)
                raise
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, folder)
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for stale in (
        *parent.glob(f".{folder.name}.tmp-*"),
        *parent.glob(f".{folder.name}.old-*"),
    ):
        shutil.rmtree(stale, ignore_errors=True)
