"""The network of an experiment, from its ``[model]`` section.

Either the stack keys (``hidden``, ``activation``, ``init``, ``batchnorm``,
``dropout``) or an explicit ``layers`` list give a :class:`Sequential`; every
name is checked here, with the config key it came from, before anything
trains.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from annlens.activations import get_activation
from annlens.errors import AnnlensError, ConfigError
from annlens.experiment.schema import LayerSpec, ModelSection, Named
from annlens.layers import Activation, Dense, Layer, get_initializer
from annlens.layers.init import Initializer
from annlens.model import Sequential


@contextlib.contextmanager
def config_key(key: str) -> Iterator[None]:
    """Name the config ``key`` in an error raised in the block that does not.

    The objects a config names (activations, initialisers, optimizers,
    schedules, collectors) check their own settings and speak of themselves
    ("unknown activation 'rleu'"); the prefix says where in the file the
    value is: ``model.activation: unknown activation 'rleu'``.
    """
    try:
        yield
    except AnnlensError as error:
        if error.args and isinstance(error.args[0], str):
            message = error.args[0]
            if not any(f"{key}{end}" in message for end in (".", " ", ":")):
                error.args = (f"{key}: {message}", *error.args[1:])
        raise


def initializer(spec: str | Named | None) -> str | Initializer | None:
    """The initialiser a config names, as a name or a configured object."""
    if spec is None or isinstance(spec, str):
        return spec
    return get_initializer(spec.name, **spec.settings())


def _batchnorm(momentum: float | None = None, name: str | None = None) -> Layer:
    from annlens.layers.batchnorm import BatchNorm

    if momentum is None:
        return BatchNorm(name=name)
    return BatchNorm(momentum=momentum, name=name)


def _dropout(rate: float, name: str | None = None) -> Layer:
    from annlens.layers.dropout import Dropout

    return Dropout(rate, name=name)


def check_model_names(section: ModelSection) -> str | Initializer | None:
    """Refuse an unknown activation or initialiser, or bad initialiser settings,
    naming the key; return the initialiser.

    Run for the base experiment too when it has variants: a value every
    variant overrides is still a mistake in the file.
    """
    with config_key("model.init"):
        init = initializer(section.init)
        if isinstance(init, str):
            get_initializer(init)
    with config_key("model.activation"):
        get_activation(section.activation)
    with config_key("model.output_activation"):
        get_activation(section.output_activation)
    return init


def _stacked_layers(section: ModelSection, n_in: int, n_out: int) -> list[Layer]:
    """Dense layers of the ``hidden`` widths, with optional BatchNorm and Dropout."""
    layers: list[Layer] = []
    width = n_in
    init = check_model_names(section)
    for units in section.hidden:
        if section.batchnorm:
            layers += [Dense(width, units, None, init), _batchnorm()]
            layers.append(Activation(section.activation))
        else:
            layers.append(Dense(width, units, section.activation, init))
        if section.dropout > 0:
            layers.append(_dropout(section.dropout))
        width = units
    layers.append(Dense(width, n_out, section.output_activation, init))
    return layers


def _explicit_layers(specs: list[LayerSpec], n_in: int, n_out: int) -> list[Layer]:
    """The layers of ``model.layers``; a dense layer without units is the output.

    The schema has refused keys a layer's type does not take, and a missing
    ``activation`` or ``rate``.
    """
    layers: list[Layer] = []
    width = n_in
    for position, spec in enumerate(specs):
        with config_key(f"model.layers.{position}"):
            width = _add_layer(layers, spec, width, n_out)
    if width != n_out:
        raise ConfigError(
            f"model.layers ends with width {width}, but the data has {n_out} outputs; "
            "help: leave units out of the last dense layer"
        )
    return layers


def _add_layer(layers: list[Layer], spec: LayerSpec, width: int, n_out: int) -> int:
    """Append the layer ``spec`` describes; return the width after it."""
    if spec.type == "dense":
        units = spec.units if spec.units is not None else n_out
        init = initializer(spec.init)
        layers.append(
            Dense(width, units, spec.activation, init, spec.bias, name=spec.name)
        )
        width = units
    elif spec.type == "activation":
        assert spec.activation is not None  # required by the schema
        layers.append(Activation(spec.activation, name=spec.name))
    elif spec.type == "batchnorm":
        layers.append(_batchnorm(spec.momentum, spec.name))
    else:
        assert spec.rate is not None  # required by the schema
        layers.append(_dropout(spec.rate, spec.name))
    return width


def build_model(section: ModelSection, n_in: int, n_out: int, seed: int) -> Sequential:
    """The Sequential model a ``[model]`` section describes."""
    if section.layers:
        layers = _explicit_layers(section.layers, n_in, n_out)
    else:
        layers = _stacked_layers(section, n_in, n_out)
    return Sequential(layers, seed=seed, dtype=section.dtype, in_features=n_in)
