"""Looking activations up by name, and registering new ones.

``get_activation("relu")`` returns a fresh instance; ``get_activation`` also
accepts an :class:`Activation` instance (returned as is), ``None`` (identity)
and keyword settings (``get_activation("leaky_relu", alpha=0.1)``).
"""

from __future__ import annotations

from typing import Any

from annlens.activations.base import Activation
from annlens.errors import (
    ConfigError,
    UnknownNameError,
    check_settings,
    unknown_name,
)

_REGISTRY: dict[str, type[Activation]] = {}


def register_activation(name: str, cls: type[Activation]) -> type[Activation]:
    """Make ``cls`` available as ``name`` to :func:`get_activation`."""
    if not (isinstance(cls, type) and issubclass(cls, Activation)):
        raise ConfigError(
            f"register_activation({name!r}) expects an Activation subclass, got {cls!r}"
        )
    _REGISTRY[name] = cls
    return cls


def activation_names() -> list[str]:
    """The registered activation names, sorted."""
    return sorted(_REGISTRY)


def get_activation(
    spec: str | dict[str, Any] | Activation | None, **settings: Any
) -> Activation:
    """Return the activation that ``spec`` names.

    Parameters
    ----------
    spec : str, dict, Activation or None
        A registered name, a dict of a name and settings (what
        :meth:`Activation.config` returns), an instance (returned unchanged)
        or None (identity).
    **settings
        Constructor arguments for a named activation, such as ``alpha``.
    """
    if spec is None:
        spec = "identity"
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        stored = {k: v for k, v in spec.items() if k != "name"}
        spec, settings = spec["name"], {**stored, **settings}
    if not isinstance(spec, str):
        raise ConfigError(
            "an activation is a name, a dict with a 'name' key and its settings, "
            f"or an Activation instance, got {spec!r}"
        )
    if spec not in _REGISTRY:
        raise UnknownNameError(unknown_name("activation", spec, activation_names()))
    check_settings("activation", spec, _REGISTRY[spec], settings)
    try:
        return _REGISTRY[spec](**settings)
    except TypeError as error:
        raise ConfigError(f"activation {spec!r}: {error}") from error
