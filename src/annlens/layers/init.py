"""Weight initialisers, all drawing from one seeded generator.

A weight matrix has shape ``(fan_in, fan_out)`` because a Dense layer computes
``z = x W + b`` with ``x`` of shape ``(batch, fan_in)``. Every initialiser is
a callable ``init(shape, rng, dtype) -> array`` looked up by name with
:func:`get_initializer`.

References
----------
Glorot, X. & Bengio, Y. (2010). Understanding the difficulty of training deep
feedforward neural networks. AISTATS.
He, K. et al. (2015). Delving deep into rectifiers. ICCV.
LeCun, Y. et al. (1998). Efficient BackProp. Neural Networks: Tricks of the Trade.
Saxe, A. et al. (2014). Exact solutions to the nonlinear dynamics of learning
in deep linear neural networks. ICLR.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from annlens.errors import (
    ConfigError,
    UnknownNameError,
    check_settings,
    unknown_name,
)

Shape = tuple[int, ...]


def gain(activation: str | None, alpha: float = 0.01) -> float:
    """The recommended scale for an activation, as in He et al. and PyTorch.

    identity, sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu: sqrt(2/(1+alpha²));
    selu: 3/4. Other activations get 1.
    """
    gains = {
        "tanh": 5 / 3,
        "relu": math.sqrt(2.0),
        "leaky_relu": math.sqrt(2.0 / (1 + alpha**2)),
        "selu": 0.75,
    }
    return gains.get(activation or "identity", 1.0)


class Initializer:
    """Base class: ``init(shape, rng, dtype)`` returns a new array."""

    name = "initializer"
    #: The name and settings :func:`get_initializer` made it from, if it did.
    made_as: dict[str, Any] | None = None

    def __call__(
        self, shape: Shape, rng: np.random.Generator, dtype: DTypeLike
    ) -> NDArray:
        return np.asarray(self.sample(shape, rng), dtype=dtype)

    def sample(self, shape: Shape, rng: np.random.Generator) -> NDArray:
        raise NotImplementedError(f"{type(self).__name__} does not define sample")

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "made_as")
        return f"{type(self).__name__}({inner})"

    def config(self) -> dict[str, Any]:
        """The name and settings that rebuild it with :func:`get_initializer`.

        The name it was asked for (``"he_normal"``, with the settings given)
        when :func:`get_initializer` made it; otherwise its class's name and
        its attributes.
        """
        made_as = getattr(self, "made_as", None)
        if made_as is not None:
            return dict(made_as)
        settings = {k: v for k, v in vars(self).items() if k != "made_as"}
        return {"name": self.name, **settings}

    def describe(self) -> str:
        """``"normal(std=0.01)"``: the name and settings, for summaries."""
        config = self.config()
        name = config.pop("name")
        inner = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{name}({inner})" if inner else str(name)


def _real(owner: str, key: str, value: Any, nonnegative: bool = False) -> float:
    """``value`` as a float when it is a finite real number (``>= 0`` if asked)."""
    real = isinstance(value, (int, float, np.integer, np.floating))
    if (
        isinstance(value, bool)
        or not real
        or not math.isfinite(value)
        or (nonnegative and value < 0)
    ):
        kind = "a finite number >= 0" if nonnegative else "a finite number"
        raise ConfigError(f"{owner} initialiser: {key} must be {kind}, got {value!r}")
    return float(value)


def _fans(shape: Shape) -> tuple[int, int]:
    if len(shape) < 2:
        return shape[0], shape[0]
    return shape[0], shape[1]


class Zeros(Initializer):
    """All zeros."""

    name = "zeros"

    def sample(self, shape: Shape, rng: np.random.Generator) -> NDArray:
        return np.zeros(shape)


class Constant(Initializer):
    """Every entry equal to ``value``."""

    name = "constant"

    def __init__(self, value: float = 0.0) -> None:
        self.value = _real("constant", "value", value)

    def sample(self, shape: Shape, rng: np.random.Generator) -> NDArray:
        return np.full(shape, self.value)


class Normal(Initializer):
    """Normal with mean ``mean`` and standard deviation ``std``."""

    name = "normal"

    def __init__(self, std: float = 1.0, mean: float = 0.0) -> None:
        self.std = _real("normal", "std", std, nonnegative=True)
        self.mean = _real("normal", "mean", mean)

    def sample(self, shape: Shape, rng: np.random.Generator) -> NDArray:
        return rng.normal(self.mean, self.std, size=shape)


class Uniform(Initializer):
    """Uniform on ``[-a, a]``."""

    name = "uniform"

    def __init__(self, a: float = 1.0) -> None:
        self.a = _real("uniform", "a", a, nonnegative=True)

    def sample(self, shape: Shape, rng: np.random.Generator) -> NDArray:
        return rng.uniform(-self.a, self.a, size=shape)


class VarianceScaling(Initializer):
    """Variance ``scale² / fan``, normal or uniform: the family of Glorot, He, LeCun.

    Notes
    -----
    ``fan`` is fan_in, fan_out or their mean (``mode="fan_avg"``). Uniform
    draws on ``[-b, b]`` with ``b = scale * sqrt(3 / fan)`` have that variance.
    """

    name = "variance_scaling"

    def __init__(
        self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "normal"
    ) -> None:
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ConfigError(
                f"initialiser mode must be fan_in, fan_out or fan_avg, got {mode!r}"
            )
        if distribution not in ("normal", "uniform"):
            raise ConfigError(
                "initialiser distribution must be normal or uniform, "
                f"got {distribution!r}"
            )
        self.scale = _real(self.name, "scale (the gain)", scale, nonnegative=True)
        self.mode, self.distribution = mode, distribution

    def std(self, shape: Shape) -> float:
        """The standard deviation this initialiser gives a matrix of ``shape``."""
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}
        return self.scale / math.sqrt(fan[self.mode])

    def sample(self, shape: Shape, rng: np.random.Generator) -> NDArray:
        std = self.std(shape)
        if self.distribution == "normal":
            return rng.normal(0.0, std, size=shape)
        bound = std * math.sqrt(3.0)
        return rng.uniform(-bound, bound, size=shape)


def glorot(distribution: str = "uniform", gain_: float = 1.0) -> VarianceScaling:
    """Glorot/Xavier: variance ``gain² · 2 / (fan_in + fan_out)``."""
    return VarianceScaling(gain_, "fan_avg", distribution)


def he(
    distribution: str = "normal",
    mode: str = "fan_in",
    nonlinearity: str = "relu",
    alpha: float = 0.01,
) -> VarianceScaling:
    """He/Kaiming: variance ``gain(nonlinearity)² / fan``."""
    return VarianceScaling(gain(nonlinearity, alpha), mode, distribution)


def lecun(distribution: str = "normal") -> VarianceScaling:
    """LeCun: variance ``1 / fan_in``."""
    return VarianceScaling(1.0, "fan_in", distribution)


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al., 2014).

    Notes
    -----
    The QR decomposition of a Gaussian matrix, with the signs of R's diagonal
    folded into Q so that the result is uniform over orthogonal matrices.
    """

    name = "orthogonal"

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = _real("orthogonal", "gain", gain)

    def sample(self, shape: Shape, rng: np.random.Generator) -> NDArray:
        rows, cols = shape[0], int(np.prod(shape[1:])) if len(shape) > 1 else 1
        flat = rng.normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(flat)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)


_FACTORIES: dict[str, Any] = {
    "zeros": Zeros,
    "constant": Constant,
    "normal": Normal,
    "uniform": Uniform,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": lambda gain=1.0: glorot("uniform", gain),
    "glorot_normal": lambda gain=1.0: glorot("normal", gain),
    "xavier_uniform": lambda gain=1.0: glorot("uniform", gain),
    "xavier_normal": lambda gain=1.0: glorot("normal", gain),
    "he_uniform": functools.partial(he, "uniform"),
    "he_normal": functools.partial(he, "normal"),
    "kaiming_uniform": functools.partial(he, "uniform"),
    "kaiming_normal": functools.partial(he, "normal"),
    "lecun_uniform": lambda: lecun("uniform"),
    "lecun_normal": lambda: lecun("normal"),
    "orthogonal": Orthogonal,
}


def initializer_names() -> list[str]:
    """The names :func:`get_initializer` accepts, sorted."""
    return sorted(_FACTORIES)


def get_initializer(spec: str | Initializer, **settings: Any) -> Initializer:
    """Return the initialiser ``spec`` names, built with ``settings``.

    Examples
    --------
    >>> get_initializer("he_normal", mode="fan_out")
    VarianceScaling(scale=1.4142135623730951, mode='fan_out', distribution='normal')
    """
    if isinstance(spec, Initializer):
        return spec
    if not isinstance(spec, str) or spec not in _FACTORIES:
        raise UnknownNameError(
            unknown_name("initialiser", str(spec), initializer_names())
        )
    check_settings("initialiser", spec, _FACTORIES[spec], settings)
    try:
        made: Initializer = _FACTORIES[spec](**settings)
    except TypeError as error:
        raise ConfigError(f"initialiser {spec!r}: {error}") from error
    made.made_as = {"name": spec, **settings}
    return made
