"""Ready-made hooks, each a few lines on the public hook API.

Every recipe takes the model first, registers its hooks with
``model.register_hook`` and returns something with ``remove()`` that is also a
context manager (a :class:`~annlens.hooks.HookHandle`, or a recorder holding
one), so it can be undone, used in a ``with`` block, or handed to a scope with
``scope.add(...)``.

- :func:`record_stats`: scalar statistics of a value every N steps.
- :func:`store_tensors`: full copies for chosen steps, within a byte budget.
- :func:`scale_gradient`, :func:`clip_gradient`: change a layer's gradient.
- :func:`freeze`: zero a layer's gradient, so plain SGD leaves it unchanged.
- :func:`add_noise`: Gaussian noise on activations from a seeded generator.
- :func:`max_norm`, :func:`non_negative`: constraints on weights, applied by
  replacing the optimizer's update so the weights after the step satisfy them.
- :func:`stop_forward`: end the forward pass after a layer.

Full statistics collectors (histograms, quantiles, streaming tables) belong to
the analysis layer; these recipes stay small on purpose.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import numpy as np

from annlens.errors import ConfigError, HookError, UnknownNameError, did_you_mean
from annlens.hooks.context import HookContext
from annlens.hooks.control import StopForward
from annlens.hooks.handles import HookHandle, RemoveOnExit
from annlens.hooks.select import LayerFilter
from annlens.hooks.stages import STAGES

Statistic = Callable[[np.ndarray], float]

DEFAULT_STATS: dict[str, Statistic] = {
    "mean": lambda v: float(np.mean(v)),
    "std": lambda v: float(np.std(v)),
    "abs_max": lambda v: float(np.max(np.abs(v))),
    "norm": lambda v: float(np.linalg.norm(v)),
}


def _number(value: Any, what: str, rule: str) -> float:
    """``value`` as a float when it is a finite real number obeying ``rule``.

    ``rule`` is ``"finite"``, ``"> 0"`` or ``">= 0"``; anything else (a string,
    a bool, NaN, a number on the wrong side) is refused naming ``what``.
    """
    number = (
        float(value)
        if isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        else float("nan")
    )
    ok = np.isfinite(number) and (
        rule == "finite" or (number > 0 if rule == "> 0" else number >= 0)
    )
    if not ok:
        kind = "a finite number" if rule == "finite" else f"a number {rule}"
        raise ConfigError(f"{what} must be {kind}, got {value!r}")
    return number


def _statistics(stats: Mapping[str, Statistic] | Iterable[str]) -> dict[str, Statistic]:
    """``name -> fn`` from a mapping, or from names of :data:`DEFAULT_STATS`."""
    if isinstance(stats, Mapping):
        for name, fn in stats.items():
            if not callable(fn):
                raise ConfigError(
                    f"record_stats stats= maps names to functions fn(array) -> "
                    f"float; {name!r} maps to {fn!r}"
                )
        return dict(stats)
    if isinstance(stats, str):
        stats = [stats]
    chosen = {}
    for name in stats:
        if name not in DEFAULT_STATS:
            raise UnknownNameError(
                f"record_stats has no statistic {name!r}"
                f"{did_you_mean(str(name), list(DEFAULT_STATS))}; known: "
                f"{', '.join(DEFAULT_STATS)}; help: pass a mapping "
                "{name: fn(array) -> float} for statistics of your own"
            )
        chosen[name] = DEFAULT_STATS[name]
    return chosen


class HookRegistry(Protocol):
    """What a recipe needs from a model: ``register_hook``."""

    def register_hook(
        self,
        point: str,
        fn: Callable[..., Any],
        *,
        layers: LayerFilter = None,
        prepend: bool = False,
    ) -> HookHandle: ...


def _value(stage: str, arguments: tuple[Any, ...]) -> Any:
    """The value a stage passes on: the one a hook there could replace."""
    return arguments[STAGES[stage].replaces]


def _point(ctx: HookContext, arguments: tuple[Any, ...]) -> str:
    """The row label: the hook point, plus the parameter for per-parameter stages."""
    if STAGES[ctx.stage].per_parameter:
        return f"{ctx.point}.{arguments[0]}"
    return ctx.point


class _Recipe(RemoveOnExit):
    """Base of the recipes that keep data: holds the handle, removes it on exit."""

    handle: HookHandle

    def remove(self) -> None:
        """Unregister the recipe's hooks; the data it kept stays."""
        self.handle.remove()


# -- observing --------------------------------------------------------------------


class StatsRecorder(_Recipe):
    """Scalar statistics of a hook point's value, every ``every`` steps.

    The value is the one the stage passes on (for ``loss``, dL/d output).

    Attributes
    ----------
    rows : list of dict
        One row per firing: ``step``, ``point`` (with ``.W`` appended for
        per-parameter stages) and one entry per statistic.
    """

    def __init__(
        self, every: int, stats: Mapping[str, Statistic] | Iterable[str]
    ) -> None:
        if not isinstance(every, int) or every < 1:
            raise ConfigError(
                f"record_stats every= must be an integer >= 1, got {every!r}"
            )
        self.every = every
        self.stats = _statistics(stats)
        self.rows: list[dict[str, Any]] = []

    def __call__(self, layer: Any, *arguments: Any, ctx: HookContext) -> None:
        if ctx.step % self.every:
            return
        value = np.asarray(_value(ctx.stage, arguments))
        row: dict[str, Any] = {"step": ctx.step, "point": _point(ctx, arguments)}
        row.update({name: fn(value) for name, fn in self.stats.items()})
        self.rows.append(row)

    def series(self, point: str, stat: str) -> tuple[list[int], list[float]]:
        """``(steps, values)`` of one statistic at one point, for plotting."""
        if stat not in self.stats:
            raise UnknownNameError(
                f"record_stats recorded no statistic {stat!r}"
                f"{did_you_mean(stat, list(self.stats))}; it records "
                f"{', '.join(self.stats)}"
            )
        rows = [row for row in self.rows if row["point"] == point]
        points = list(dict.fromkeys(row["point"] for row in self.rows))
        if not rows and points:
            raise UnknownNameError(
                f"record_stats recorded nothing at {point!r}"
                f"{did_you_mean(point, points)}; it recorded at {', '.join(points)}"
            )
        return [row["step"] for row in rows], [row[stat] for row in rows]

    def __repr__(self) -> str:
        return f"StatsRecorder(every={self.every}, {len(self.rows)} rows)"


def record_stats(
    model: HookRegistry,
    point: str = "post_activation",
    every: int = 1,
    stats: Mapping[str, Statistic] | Iterable[str] | None = None,
    layers: LayerFilter = None,
) -> StatsRecorder:
    """Record scalar statistics of the value at ``point`` every ``every`` steps.

    Parameters
    ----------
    model : Sequential
        The model.
    point : str
        Stage, hook point or glob, as in ``model.register_hook``.
    every : int
        Record when ``ctx.step % every == 0`` (every firing in such a step).
    stats : mapping of str to callable, or names, optional
        ``name -> fn(array) -> float``, or names among the defaults: mean,
        std, abs_max and norm (all four by default).
    layers : optional
        Layer filter, as in ``model.register_hook``.
    """
    recorder = StatsRecorder(every, stats if stats is not None else DEFAULT_STATS)
    recorder.handle = model.register_hook(point, recorder, layers=layers)
    return recorder


class TensorStore(_Recipe):
    """Full copies of a hook point's value for chosen steps, within a byte budget.

    Attributes
    ----------
    tensors : dict of (int, str) to ndarray
        ``(step, point) -> copy``; the first firing in a step is kept.
    nbytes : int
        Bytes held so far, never more than ``budget``.
    refused : int
        Copies not kept because the budget was full.
    """

    def __init__(self, steps: Iterable[int] | None, budget: int, on_full: str) -> None:
        if not isinstance(budget, int) or budget < 0:
            raise ConfigError(
                f"store_tensors budget= must be bytes >= 0, got {budget!r}"
            )
        if on_full not in ("warn", "raise"):
            raise ConfigError(
                f"store_tensors on_full= must be 'warn' or 'raise', got {on_full!r}"
            )
        self.steps = None if steps is None else set(steps)
        self.budget, self.on_full = budget, on_full
        self.tensors: dict[tuple[int, str], np.ndarray] = {}
        self.nbytes = 0
        self.refused = 0

    def __call__(self, layer: Any, *arguments: Any, ctx: HookContext) -> None:
        key = (ctx.step, _point(ctx, arguments))
        if (
            self.steps is not None and ctx.step not in self.steps
        ) or key in self.tensors:
            return
        value = np.asarray(_value(ctx.stage, arguments))
        if self.nbytes + value.nbytes > self.budget:
            self._refuse(key, value.nbytes)
            return
        self.tensors[key] = value.copy()
        self.nbytes += value.nbytes

    def _refuse(self, key: tuple[int, str], size: int) -> None:
        message = (
            f"store_tensors budget of {self.budget:,} bytes is full "
            f"({self.nbytes:,} used); {key[1]} at step {key[0]} needs {size:,} more"
        )
        if self.on_full == "raise":
            raise HookError(f"{message}; help: raise budget= or choose fewer steps")
        if not self.refused:
            warnings.warn(
                f"{message}; not kept (further refusals are silent)", stacklevel=2
            )
        self.refused += 1

    def __repr__(self) -> str:
        return (
            f"TensorStore({len(self.tensors)} tensors, "
            f"{self.nbytes:,}/{self.budget:,} bytes)"
        )


def store_tensors(
    model: HookRegistry,
    point: str,
    steps: Iterable[int] | None = None,
    budget: int = 64 * 2**20,
    on_full: str = "warn",
    layers: LayerFilter = None,
) -> TensorStore:
    """Keep full copies of the value at ``point`` for ``steps`` (None: all).

    A copy that would take the total past ``budget`` bytes is refused: with
    ``on_full="warn"`` it is skipped with one warning, with ``"raise"`` the
    step stops with a :class:`~annlens.errors.HookError`.
    """
    store = TensorStore(steps, budget, on_full)
    store.handle = model.register_hook(point, store, layers=layers)
    return store


# -- changing gradients --------------------------------------------------------------


def scale_gradient(
    model: HookRegistry, layers: LayerFilter, factor: float
) -> HookHandle:
    """Multiply the final gradient of every parameter of ``layers`` by ``factor``."""
    factor = _number(factor, "scale_gradient factor", "finite")

    def scale(layer: Any, name: str, grad: np.ndarray) -> np.ndarray:
        return grad * grad.dtype.type(factor)

    return model.register_hook("gradient", scale, layers=layers)


def clip_gradient(
    model: HookRegistry, layers: LayerFilter, max_norm: float
) -> HookHandle:
    """Rescale each parameter gradient of ``layers`` whose L2 norm exceeds ``max_norm``.

    Notes
    -----
    Per parameter: ``grad <- grad * min(1, max_norm / ||grad||)``.
    """
    max_norm = _number(max_norm, "clip_gradient max_norm", "> 0")

    def clip(layer: Any, name: str, grad: np.ndarray) -> np.ndarray | None:
        norm = float(np.linalg.norm(grad))
        return grad * grad.dtype.type(max_norm / norm) if norm > max_norm else None

    return model.register_hook("gradient", clip, layers=layers)


def freeze(model: HookRegistry, layers: LayerFilter) -> HookHandle:
    """Zero every parameter gradient of ``layers``.

    Notes
    -----
    Plain SGD then leaves the layer unchanged. Weight decay, momentum built up
    before the freeze, and adaptive optimizers can still move it; to hold a
    layer exactly with those, zero its ``update`` instead.
    """

    def zero(layer: Any, name: str, grad: np.ndarray) -> np.ndarray:
        return np.zeros_like(grad)

    return model.register_hook("gradient", zero, layers=layers)


# -- changing activations ------------------------------------------------------------


def add_noise(
    model: HookRegistry,
    std: float,
    seed: int | np.random.Generator = 0,
    point: str = "post_activation",
    layers: LayerFilter = None,
    training_only: bool = True,
) -> HookHandle:
    """Add Gaussian noise ``N(0, std^2)`` to the value at ``point``.

    The noise comes from its own generator (``seed`` or a Generator), so it
    never shifts the model's dropout masks. With ``training_only`` nothing is
    added in evaluation mode.
    """
    std = _number(std, "add_noise std", ">= 0")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def noise(layer: Any, *arguments: Any, ctx: HookContext) -> np.ndarray | None:
        if training_only and not ctx.training:
            return None
        value = _value(ctx.stage, arguments)
        return value + rng.normal(0.0, std, value.shape).astype(value.dtype)

    return model.register_hook(point, noise, layers=layers)


# -- constraining weights ------------------------------------------------------------


def _constrain(
    model: HookRegistry,
    layers: LayerFilter,
    params: Iterable[str],
    project: Callable[[np.ndarray], np.ndarray],
) -> HookHandle:
    """Replace the update so that ``param + update == project(param + update)``."""
    names = set(params)

    def constrain(layer: Any, name: str, update: np.ndarray) -> np.ndarray | None:
        if name not in names:
            return None
        param = layer.params[name]
        return project(param + update) - param

    return model.register_hook("update", constrain, layers=layers)


def max_norm(
    model: HookRegistry,
    layers: LayerFilter,
    limit: float,
    params: Iterable[str] = ("W",),
    axis: int = 0,
) -> HookHandle:
    """Keep the L2 norm of each unit's incoming weights at most ``limit``.

    Notes
    -----
    ``W`` has shape (in_features, out_features), so with ``axis=0`` each
    column (one unit's incoming weights) is rescaled after the step:
    ``w <- w * min(1, limit / ||w||)``. Rounding can leave a norm a few ulps
    above ``limit``.

    References
    ----------
    Srivastava, N. et al. (2014). Dropout: a simple way to prevent neural
    networks from overfitting. JMLR 15, 1929-1958 (max-norm regularisation).
    """
    limit = _number(limit, "max_norm limit", "> 0")

    def project(weights: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(weights, axis=axis, keepdims=True)
        scale = np.minimum(1.0, limit / np.maximum(norms, np.finfo(weights.dtype).tiny))
        return weights * scale.astype(weights.dtype)

    return _constrain(model, layers, params, project)


def non_negative(
    model: HookRegistry, layers: LayerFilter, params: Iterable[str] = ("W",)
) -> HookHandle:
    """Keep the weights of ``layers`` at or above zero after every step."""
    return _constrain(model, layers, params, lambda weights: np.maximum(weights, 0))


# -- stopping --------------------------------------------------------------------


def stop_forward(model: HookRegistry, after: str) -> HookHandle:
    """End every forward pass after the layer called ``after`` (its output is kept).

    ``model.capture`` returns what it captured up to that point, with
    ``stopped_at`` set; ``model.forward`` raises the
    :class:`~annlens.hooks.StopForward`, whose ``value`` is that output.
    """

    def stop(layer: Any, x: np.ndarray, output: np.ndarray) -> None:
        raise StopForward(f"stop_forward after {layer.name!r}")

    return model.register_hook(f"{after}.forward", stop)
