"""Checkpoints read back: load and verify a checkpoint folder, restore a model.

:func:`load_checkpoint` checks the format, the sha256 of ``meta.json`` (see
:mod:`annlens.io.checkpoint_integrity`) and the sha256 of the tensors file
before decoding anything; :func:`restore` checks that a checkpoint fits the
model and changes nothing when it does not. The layout is described in
:mod:`annlens.io.checkpoint`, which also writes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from annlens.errors import CheckpointError
from annlens.io.architecture import build_model, json_config
from annlens.io.checkpoint_format import (
    FORMAT,
    FORMAT_VERSION,
    META_FILE,
    TENSORS_FILE,
    Arrays,
)
from annlens.io.checkpoint_integrity import verify_meta
from annlens.io.manifest import annlens_version
from annlens.io.tree import join_arrays, tensor_names

logger = logging.getLogger("annlens")


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
        Nothing there; not an annlens checkpoint; a newer format, or an older
        one whose ``meta.json`` has no sha256 of its own; a damaged or edited
        ``meta.json`` (it does not match its recorded sha256); a tensors file
        that is missing, truncated, altered or not safetensors; an array named
        in ``meta.json`` that the file lacks.
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
    tensors = read_tensors(folder, meta, where)
    return Checkpoint(folder, meta, tensors)


def _read_meta(folder: Path, where: str) -> dict[str, Any]:
    """``meta.json``, parsed and checked against its own sha256."""
    meta = read_meta_file(folder, where)
    version = meta["format_version"]
    if version < FORMAT_VERSION:
        raise CheckpointError(
            f"{where} has format version {version}, whose {META_FILE} carries no "
            "sha256 of its own: an edit to it (the epochs done, a "
            "hyperparameter) could not be detected, so nothing was loaded; help: "
            "if you are sure it was not edited, seal it once with "
            f"annlens.io.upgrade_checkpoint({str(folder)!r})"
        )
    verify_meta(meta, where)
    return meta


def read_meta_file(folder: Path, where: str) -> dict[str, Any]:
    """Parse ``meta.json`` and check its format and version, not its digest.

    Used by :func:`load_checkpoint`, which then checks the digest, and by
    :func:`annlens.io.checkpoint.upgrade_checkpoint`, which adds one.
    """
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
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(
            f"{where}: {META_FILE} has format version {version!r}, which no "
            f"annlens wrote (expected 1 to {FORMAT_VERSION})"
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{where} has format version {version!r}; this annlens "
            f"({annlens_version()}) reads version {FORMAT_VERSION}; help: "
            "upgrade annlens"
        )
    missing = [k for k in ("model", "tensors") if not isinstance(meta.get(k), dict)]
    if missing:
        raise CheckpointError(f"{where}: {META_FILE} lacks {missing}")
    return meta


def read_tensors(folder: Path, meta: dict[str, Any], where: str) -> Arrays:
    """The tensors file, checked against the size and sha256 in ``meta``."""
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

    try:
        needed = [
            f"model.{entry['name']}.{key}"
            for entry in meta["model"]["architecture"]["layers"]
            for key in (*entry["params"], *entry["buffers"])
        ]
    except (KeyError, TypeError) as error:
        raise CheckpointError(
            f"{where}: {META_FILE} has no readable model.architecture.layers "
            f"(a list of layers, each with its name, params and buffers): "
            f"{type(error).__name__} {error}; nothing was loaded"
        ) from None
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
        A model with the same layers (class and name, in order) and the same
        layer settings the checkpoint's architecture records (activation,
        bias, BatchNorm momentum, eps and affine, Dropout rate, ...); the
        initializer is not compared, as the saved weights replace what it
        drew, and sizes are compared as the parameters' shapes.
    optimizer, schedule : optional
        Objects of the same types as those saved.

    Returns
    -------
    Checkpoint
        The checkpoint restored (to reach its ``extra``).

    Raises
    ------
    CheckpointError
        The layers differ, a layer setting differs (the message names the
        layer, the setting, and the saved and current values), a shape
        differs, the checkpoint holds no state for
        an optimizer or schedule that was passed, a type differs, or the
        optimizer was not built on ``model`` (the schedule not made on it).
    """
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = load_checkpoint(checkpoint)
    where = f"checkpoint {str(checkpoint.path)!r}"
    _check_layers(checkpoint, model, where)
    for part, owner in (("optimizer", optimizer), ("schedule", schedule)):
        if owner is not None and checkpoint.meta.get(part) is None:
            raise CheckpointError(f"{where} holds no {part} state to restore")
    if optimizer is not None and getattr(optimizer, "model", None) is not model:
        raise CheckpointError(
            f"{where}: the optimizer {optimizer!r} was not built on the model "
            "being restored; nothing was changed"
        )
    if schedule is not None and optimizer is not None:
        if getattr(schedule, "optimizer", None) is not optimizer:
            raise CheckpointError(
                f"{where}: the schedule {schedule!r} was not made on the optimizer "
                "being restored; nothing was changed"
            )

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
    _check_settings(checkpoint, model, where)
    dtype = checkpoint.architecture["dtype"]
    if dtype != str(model.dtype):
        logger.warning(
            "%s was saved in %s and is loaded into a %s model",
            where,
            dtype,
            model.dtype,
        )


# config keys not compared: the name is compared above, the saved weights
# replace what the initializer drew, and sizes are compared as shapes on loading
_NOT_COMPARED = frozenset(
    {"name", "init", "in_features", "out_features", "num_features"}
)


def _check_settings(checkpoint: Checkpoint, model: Any, where: str) -> None:
    """Refuse a layer whose recorded settings differ from the saved ones.

    Only values stored as JSON are compared; an object recorded as its repr
    (``{"__repr__": ...}``) is skipped, as its text may differ between runs.
    """
    differences = []
    for entry, layer in zip(
        checkpoint.architecture["layers"], model.layers, strict=True
    ):
        saved = entry.get("config")
        if not isinstance(saved, dict):
            continue
        current = json_config(layer)
        for key, value in saved.items():
            if key in _NOT_COMPARED or key not in current or _opaque(value):
                continue
            if _opaque(current[key]) or current[key] == value:
                continue
            differences.append(
                f"layer {layer.name!r} was saved with {key} {value!r} but the "
                f"model's has {current[key]!r}"
            )
    if differences:
        raise CheckpointError(
            f"{where} does not fit the model: {'; '.join(differences)}; nothing "
            "was changed; help: build the model with the saved settings (see "
            "the checkpoint's architecture)"
        )


def _opaque(value: Any) -> bool:
    return isinstance(value, dict) and "__repr__" in value


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
