"""Checkpoints: save a model (with optimizer, schedule and more), load it, restore it.

Layout. A checkpoint is a folder holding two files::

    ckpt/
      tensors.safetensors   every array: parameters, buffers, optimizer state
      meta.json             everything else, and the sha256 of the tensors file

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
``{"__tensor__": name}`` where an array sits in the tensors file.

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
the format and the sha256 before decoding anything, so a truncated, altered or
foreign file raises :class:`~annlens.errors.CheckpointError` and loads nothing;
:func:`restore` checks that the checkpoint fits the model and changes nothing
when it does not.
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
from numpy.typing import NDArray

from annlens.errors import CheckpointError
from annlens.io.architecture import build_model, describe_model
from annlens.io.atomic import fsync_dir, temporary_sibling
from annlens.io.manifest import annlens_version, now_utc
from annlens.io.tree import join_arrays, split_arrays, tensor_names

logger = logging.getLogger("annlens")

FORMAT = "annlens-checkpoint"
FORMAT_VERSION = 1
TENSORS_FILE = "tensors.safetensors"
META_FILE = "meta.json"

Arrays = dict[str, NDArray[Any]]


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
        Something in the state cannot be stored without pickling, or ``path``
        holds something other than a checkpoint.
    """
    from safetensors.numpy import save as encode

    folder = Path(path)
    tensors, meta = collect_state(model, optimizer, schedule, extra)
    blob = encode(tensors, metadata={"format": FORMAT})
    meta["tensors"] = {
        "file": TENSORS_FILE,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
    }
    _check_replaceable(folder)
    _write_folder(folder, blob, json.dumps(meta, indent=2) + "\n")
    logger.debug("saved checkpoint %s (%d bytes of tensors)", folder, len(blob))
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


def _check_replaceable(folder: Path) -> None:
    """Refuse to replace anything but a checkpoint (or an empty folder)."""
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
        _write_file(staging / TENSORS_FILE, blob)
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


# -- loading --------------------------------------------------------------------


class Checkpoint:
    """A checkpoint read and verified by :func:`load_checkpoint`.

    Attributes
    ----------
    path : Path
        The checkpoint folder.
    meta : dict
        The parsed ``meta.json``.
    tensors : dict of str to ndarray
        Every array of the tensors file, by its name in the file.
    """

    def __init__(self, path: Path, meta: dict[str, Any], tensors: Arrays) -> None:
        self.path = path
        self.meta = meta
        self.tensors = tensors

    @property
    def architecture(self) -> dict[str, Any]:
        """Layer classes and configs, seed, dtype, input width."""
        return dict(self.meta["model"]["architecture"])

    @property
    def step(self) -> int:
        """The model's step when saved."""
        return int(self.meta["model"]["step"])

    @property
    def epoch(self) -> int:
        """The model's epoch when saved."""
        return int(self.meta["model"]["epoch"])

    @property
    def annlens_version(self) -> str:
        """The annlens version that wrote the checkpoint."""
        return str(self.meta.get("annlens_version"))

    @property
    def rng_state(self) -> dict[str, Any]:
        """The model's noise-generator state (``bit_generator.state``)."""
        return dict(join_arrays(self.meta["model"]["rng"], self.tensors))

    @property
    def extra(self) -> dict[str, Any]:
        """What was passed as ``extra``, arrays in place."""
        return dict(join_arrays(self.meta.get("extra") or {}, self.tensors))

    def model_state(self) -> Arrays:
        """Parameters and buffers by qualified name, ``dense_0.W`` (copies)."""
        return {
            name[len("model.") :]: np.array(value, copy=True)
            for name, value in self.tensors.items()
            if name.startswith("model.")
        }

    def optimizer_state(self) -> dict[str, Any] | None:
        """The optimizer's ``state_dict()`` as saved, or None."""
        tree = self.meta.get("optimizer")
        return None if tree is None else dict(join_arrays(tree, self.tensors))

    def schedule_state(self) -> dict[str, Any] | None:
        """The schedule's ``state_dict()`` as saved, or None."""
        tree = self.meta.get("schedule")
        return None if tree is None else dict(join_arrays(tree, self.tensors))

    def build_model(self) -> Any:
        """A new model with the stored architecture, weights, generator and step.

        Raises
        ------
        CheckpointError
            A layer class is unknown or cannot be rebuilt from its config (see
            :func:`annlens.io.architecture.build_model`).
        """
        model = build_model(self.architecture)
        restore(self, model)
        return model

    def __repr__(self) -> str:
        layers = [entry["type"] for entry in self.architecture["layers"]]
        return (
            f"Checkpoint(path={str(self.path)!r}, layers={layers}, step={self.step}, "
            f"epoch={self.epoch}, optimizer={self.meta.get('optimizer') is not None})"
        )


def is_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` looks like a checkpoint folder (it holds ``meta.json``)."""
    return (Path(path) / META_FILE).is_file()


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and verify a checkpoint folder (or a file inside one).

    Raises
    ------
    CheckpointError
        Nothing there; not an annlens checkpoint; a newer format; a damaged
        ``meta.json``; a tensors file that is missing, truncated, altered or
        not safetensors; an array named in ``meta.json`` that the file lacks.
    """
    folder = Path(path)
    if folder.is_file() and folder.name in (META_FILE, TENSORS_FILE):
        folder = folder.parent
    where = f"checkpoint {str(folder)!r}"
    if not folder.exists():
        aside = sorted(folder.parent.glob(f".{folder.name}.old-*"))
        hint = (
            f"; help: a save was interrupted, and the previous checkpoint is "
            f"at {str(aside[-1])!r}"
            if aside
            else ""
        )
        raise CheckpointError(f"no checkpoint at {str(folder)!r}{hint}")
    if not folder.is_dir():
        raise CheckpointError(
            f"{str(folder)!r} is a file, not an annlens checkpoint (a folder "
            f"holding {META_FILE} and {TENSORS_FILE})"
        )

    meta = _read_meta(folder, where)
    tensors = _read_tensors(folder, meta, where)
    return Checkpoint(folder, meta, tensors)


def _read_meta(folder: Path, where: str) -> dict[str, Any]:
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise CheckpointError(f"{where} is not an annlens checkpoint: no {META_FILE}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{where}: {META_FILE} is damaged: {error}") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{where} is not an annlens checkpoint: {META_FILE} does not say "
            f"format {FORMAT!r}"
        )
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{where} has format version {version!r}; this annlens "
            f"({annlens_version()}) reads version {FORMAT_VERSION}; help: "
            "upgrade annlens"
        )
    missing = [k for k in ("model", "tensors") if not isinstance(meta.get(k), dict)]
    if missing:
        raise CheckpointError(f"{where}: {META_FILE} lacks {missing}")
    return meta


def _read_tensors(folder: Path, meta: dict[str, Any], where: str) -> Arrays:
    from safetensors import SafetensorError
    from safetensors.numpy import load as decode

    record = meta["tensors"]
    if record.get("file") != TENSORS_FILE:
        raise CheckpointError(
            f"{where}: {META_FILE} names tensors file {record.get('file')!r}, "
            f"expected {TENSORS_FILE!r}"
        )
    tensors_path = folder / TENSORS_FILE
    if not tensors_path.is_file():
        raise CheckpointError(f"{where}: {TENSORS_FILE} is missing")
    blob = tensors_path.read_bytes()
    expected_size = record.get("bytes")
    if len(blob) != expected_size:
        raise CheckpointError(
            f"{where}: {TENSORS_FILE} has {len(blob)} bytes, {META_FILE} "
            f"recorded {expected_size} (truncated or replaced); nothing was loaded"
        )
    digest = hashlib.sha256(blob).hexdigest()
    if digest != record.get("sha256"):
        raise CheckpointError(
            f"{where}: {TENSORS_FILE} does not match the sha256 recorded in "
            f"{META_FILE} (altered or replaced); nothing was loaded"
        )
    try:
        tensors = decode(blob)
    except (SafetensorError, ValueError) as error:
        raise CheckpointError(f"{where}: {TENSORS_FILE} is damaged: {error}") from error

    needed = [
        f"model.{entry['name']}.{key}"
        for entry in meta["model"]["architecture"]["layers"]
        for key in (*entry["params"], *entry["buffers"])
    ]
    for part in ("optimizer", "schedule", "extra"):
        needed += tensor_names(meta.get(part))
    needed += tensor_names(meta["model"].get("rng"))
    lacking = sorted(set(needed) - set(tensors))
    if lacking:
        raise CheckpointError(f"{where}: {TENSORS_FILE} lacks arrays {lacking}")
    return tensors


# -- restoring --------------------------------------------------------------------


def restore(
    checkpoint: Checkpoint | str | os.PathLike[str],
    model: Any,
    optimizer: Any = None,
    schedule: Any = None,
) -> Checkpoint:
    """Load a checkpoint's state into an existing model (and optimizer, schedule).

    Sets the parameters and buffers, the noise generator's state, the step and
    the epoch; the optimizer's and the schedule's state when they are given.
    Either all of it is restored or, on any mismatch, none of it.

    Parameters
    ----------
    checkpoint : Checkpoint or path-like
        A loaded checkpoint, or its folder.
    model : Sequential
        A model with the same layers (class and name, in order).
    optimizer, schedule : optional
        Objects of the same types as those saved.

    Returns
    -------
    Checkpoint
        The checkpoint restored (to reach its ``extra``).

    Raises
    ------
    CheckpointError
        The layers differ, a shape differs, the checkpoint holds no state for
        an optimizer or schedule that was passed, or a type differs.
    """
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = load_checkpoint(checkpoint)
    where = f"checkpoint {str(checkpoint.path)!r}"
    _check_layers(checkpoint, model, where)
    for part, owner in (("optimizer", optimizer), ("schedule", schedule)):
        if owner is not None and checkpoint.meta.get(part) is None:
            raise CheckpointError(f"{where} holds no {part} state to restore")

    saved = _snapshot(model, optimizer, schedule)
    try:
        model.load_state_dict(checkpoint.model_state())
        if optimizer is not None:
            optimizer.load_state_dict(checkpoint.optimizer_state())
        if schedule is not None:
            schedule.load_state_dict(checkpoint.schedule_state())
        _set_rng(model, checkpoint.rng_state)
        model.state.step = checkpoint.step
        model.state.epoch = checkpoint.epoch
    except Exception as error:
        _put_back(saved, model, optimizer, schedule)
        raise CheckpointError(
            f"{where} does not fit: {error}; nothing was changed"
        ) from error
    return checkpoint


def _check_layers(checkpoint: Checkpoint, model: Any, where: str) -> None:
    stored = [(e["type"], e["name"]) for e in checkpoint.architecture["layers"]]
    current = [(type(layer).__name__, layer.name) for layer in model.layers]
    if stored != current:
        raise CheckpointError(
            f"{where} holds layers {stored}, but the model has {current}; "
            "nothing was changed"
        )
    dtype = checkpoint.architecture["dtype"]
    if dtype != str(model.dtype):
        logger.warning(
            "%s was saved in %s and is loaded into a %s model",
            where,
            dtype,
            model.dtype,
        )


def _snapshot(model: Any, optimizer: Any, schedule: Any) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "generator": model.state.rng,
        "rng": model.state.rng.bit_generator.state,
        "step": model.state.step,
        "epoch": model.state.epoch,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "schedule": schedule.state_dict() if schedule is not None else None,
    }


def _put_back(saved: dict[str, Any], model: Any, optimizer: Any, schedule: Any) -> None:
    model.load_state_dict(saved["model"])
    model.state.rng = saved["generator"]
    model.state.rng.bit_generator.state = saved["rng"]
    model.state.step, model.state.epoch = saved["step"], saved["epoch"]
    if optimizer is not None:
        optimizer.load_state_dict(saved["optimizer"])
    if schedule is not None:
        schedule.load_state_dict(saved["schedule"])


def _set_rng(model: Any, state: dict[str, Any]) -> None:
    """Continue the model's noise generator from ``state``."""
    kind = state.get("bit_generator")
    current = model.state.rng.bit_generator
    if type(current).__name__ != kind:
        allowed = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
        if kind not in allowed:
            raise CheckpointError(f"unknown bit generator {kind!r}")
        model.state.rng = np.random.Generator(getattr(np.random, kind)())
        current = model.state.rng.bit_generator
    current.state = state
