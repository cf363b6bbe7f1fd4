"""A model's architecture as JSON, and the model rebuilt from it.

:func:`describe_model` records, for each layer, its class name and its
``config()`` (the constructor arguments that rebuild it), plus the model's
seed, dtype and input width. :func:`build_model` looks each class name up,
calls it with the stored config and assembles a :class:`Sequential`.

Layer classes are found by name when a model is rebuilt, not when this module
is imported: every module of :mod:`annlens.layers` is scanned for
:class:`Layer` subclasses, so a layer added there later is found without
changes here. Layers defined elsewhere are made known with
:func:`register_layer`; a stored module name is never imported, so a
checkpoint cannot make annlens run code it names.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from collections.abc import Mapping
from typing import Any

import annlens.layers
from annlens.errors import CheckpointError, UnknownNameError, did_you_mean
from annlens.layers.base import Layer
from annlens.model import Sequential

logger = logging.getLogger("annlens")

_REGISTERED: dict[str, type[Layer]] = {}


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Make a layer class defined outside annlens rebuildable from checkpoints.

    Usable as a decorator; the class is found by its ``__name__``.
    """
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise CheckpointError(f"register_layer expects a Layer subclass, got {cls!r}")
    _REGISTERED[cls.__name__] = cls
    return cls


def layer_classes() -> dict[str, type[Layer]]:
    """Every known layer class by class name: annlens.layers, then registered."""
    found: dict[str, type[Layer]] = {}
    modules = [annlens.layers]
    for info in pkgutil.iter_modules(annlens.layers.__path__):
        try:
            modules.append(importlib.import_module(f"annlens.layers.{info.name}"))
        except Exception as error:  # a module being written may not import yet
            logger.debug("skipping annlens.layers.%s: %s", info.name, error)
    for module in modules:
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, Layer)
                and value is not Layer
            ):
                found.setdefault(value.__name__, value)
    return {**found, **_REGISTERED}


def describe_model(model: Any) -> dict[str, Any]:
    """The JSON-ready architecture of ``model``.

    Each layer entry holds its ``name``, ``type`` (class name), ``module``,
    ``config``, the
    names of its ``params`` and ``buffers``, and, when it has an activation,
    the activation's repr (settings included), which :func:`build_model`
    checks against the rebuilt layer.
    """
    layers = []
    for layer in model.layers:
        entry: dict[str, Any] = {
            "name": layer.name,
            "type": type(layer).__name__,
            "module": type(layer).__module__,
            "config": json_config(layer),
            "params": list(layer.params),
            "buffers": list(layer.buffers),
        }
        activation = getattr(layer, "activation", None)
        if activation is not None:
            entry["activation"] = repr(activation)
        layers.append(entry)
    return {
        "class": type(model).__name__,
        "seed": int(model.seed),
        "dtype": str(model.dtype),
        "in_features": int(model.in_features),
        "layers": layers,
    }


def json_config(layer: Layer) -> dict[str, Any]:
    """``layer.config()`` with values JSON can hold; others recorded as reprs."""
    config: dict[str, Any] = {}
    for key, value in layer.config().items():
        if _plain(value):
            config[key] = list(value) if isinstance(value, tuple) else value
        elif hasattr(value, "item") and _plain(value.item()):
            config[key] = value.item()
        else:
            config[key] = {"__repr__": repr(value)}
    return config


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def build_model(architecture: Mapping[str, Any]) -> Sequential:
    """Rebuild a model from :func:`describe_model`'s output, freshly initialised.

    The weights are those the stored seed draws; load the saved ones with
    ``model.load_state_dict`` (or use :meth:`Checkpoint.build_model`).

    Raises
    ------
    CheckpointError
        An unknown layer class, a config the class refuses, a config value that
        was not storable as JSON, or an activation that rebuilds differently.
    """
    if architecture.get("class") != "Sequential":
        raise CheckpointError(
            f"can rebuild only Sequential models, not {architecture.get('class')!r}"
        )
    known = layer_classes()
    layers = []
    for position, entry in enumerate(architecture["layers"]):
        layers.append(_build_layer(position, entry, known))
    try:
        model = Sequential(
            layers,
            seed=architecture["seed"],
            dtype=architecture["dtype"],
            in_features=architecture["in_features"],
        )
    except Exception as error:
        raise CheckpointError(f"the stored layers do not chain: {error}") from error

    for layer, entry in zip(model.layers, architecture["layers"], strict=True):
        stored = entry.get("activation")
        rebuilt = getattr(layer, "activation", None)
        if stored is not None and repr(rebuilt) != stored:
            raise CheckpointError(
                f"layer {layer.name!r} was saved with activation {stored} but "
                f"rebuilds with {rebuilt!r}, because its config() does not "
                "record the activation's settings; help: build the model in code "
                "and load the checkpoint into it with restore()"
            )
    return model


def _build_layer(position: int, entry: Mapping[str, Any], known: dict) -> Layer:
    type_name = entry["type"]
    cls = known.get(type_name)
    if cls is None:
        raise CheckpointError(
            f"layer {position} is a {type_name!r} (from {entry.get('module')}), "
            f"which annlens does not know{did_you_mean(type_name, list(known))}; "
            "help: import the module that defines it and pass the class to "
            "annlens.io.register_layer"
        )
    config = dict(entry["config"])
    opaque = [k for k, v in config.items() if isinstance(v, dict) and "__repr__" in v]
    if opaque:
        raise CheckpointError(
            f"layer {position} ({type_name}) cannot be rebuilt: its config "
            f"values {opaque} were objects stored only as text; help: build "
            "the model in code and load the checkpoint into it with restore()"
        )
    try:
        return cls(**config)
    except Exception as error:
        advice = ""
        if isinstance(error, UnknownNameError) and "unknown activation" in str(error):
            advice = (
                "; help: pass the activation's class to "
                "annlens.activations.register_activation before loading, or "
                "build the model in code and load the checkpoint into it with "
                "restore()"
            )
        raise CheckpointError(
            f"layer {position} ({type_name}) refused its stored config "
            f"{config}: {error}{advice}"
        ) from error
