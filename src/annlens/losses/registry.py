"""Looking losses up by name, and registering new ones.

``get_loss("mse")`` returns a fresh instance; ``get_loss`` also accepts a
:class:`Loss` instance (returned as is) and keyword settings
(``get_loss("huber", delta=0.5)``).
"""

from __future__ import annotations

from typing import Any

from annlens.errors import (
    ConfigError,
    UnknownNameError,
    check_settings,
    unknown_name,
)
from annlens.losses.base import Loss

_REGISTRY: dict[str, type[Loss]] = {}


def register_loss(name: str, cls: type[Loss]) -> type[Loss]:
    """Make ``cls`` available as ``name`` to :func:`get_loss`."""
    if not (isinstance(cls, type) and issubclass(cls, Loss)):
        raise ConfigError(
            f"register_loss({name!r}) expects a Loss subclass, got {cls!r}"
        )
    _REGISTRY[name.lower()] = cls
    return cls


def loss_names() -> list[str]:
    """The registered loss names, sorted."""
    return sorted(_REGISTRY)


def loss_class(name: str) -> type[Loss] | None:
    """The loss class registered as ``name`` (any case), or None."""
    return _REGISTRY.get(name.lower())


def get_loss(spec: str | Loss, **settings: Any) -> Loss:
    """Return the loss that ``spec`` names.

    Parameters
    ----------
    spec : str or Loss
        A registered name, in any case, or an instance (returned unchanged).
    **settings
        Constructor arguments, such as ``reduction="sum"`` or ``delta=0.5``.

    Examples
    --------
    >>> get_loss("softmax_cross_entropy", label_smoothing=0.1)
    SoftmaxCrossEntropy(reduction='mean', label_smoothing=0.1)
    """
    if isinstance(spec, Loss):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"a loss is a name or a Loss instance, got {spec!r}")
    cls = loss_class(spec)
    if cls is None:
        raise UnknownNameError(unknown_name("loss", spec, loss_names()))
    check_settings("loss", spec, cls, settings)
    try:
        return cls(**settings)
    except TypeError as error:
        raise ConfigError(f"loss {spec!r}: {error}") from error
