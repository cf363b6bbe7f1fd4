"""The Optimizer contract: a pure update rule, hyperparameters per parameter,
the ``update`` hook stage, and a step that changes nothing until it can finish.

A step proposes an update for every parameter first, passing each through the
``update`` hook stage (and the caller's ``check``, if given), and only then
applies them all and commits the new optimizer state. A hook or check that
raises therefore leaves parameters and optimizer state exactly as they were
before the step.

Sign convention: an update is what is *added* to a parameter,
``param <- param + update`` (for SGD, ``update = -lr * grad``).

Hyperparameters are plain Python values (numbers, booleans, tuples), so that
:meth:`Optimizer.state_dict` is JSON-friendly apart from the state arrays.
State arrays shaped like their parameter have the model's dtype; 0-d state
arrays (running products such as NAdam's) are float64 bookkeeping.
"""

from __future__ import annotations

import fnmatch
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from annlens import errors
from annlens.errors import ConfigError, did_you_mean
from annlens.layers.base import Array, Layer
from annlens.model import Sequential

State = dict[str, Array]
#: One proposed change: (qualified name, layer, parameter name, update, new state).
Proposal = tuple[str, Layer, str, Array, State]


class Optimizer:
    """Base class of every optimizer.

    Parameters
    ----------
    model : Sequential
        The model whose parameters this optimizer changes.
    groups : mapping of str to dict, optional
        Per-parameter hyperparameters by glob over qualified names, applied in
        order over the defaults: ``{"dense_0.*": {"lr": 1e-4}}``.
    **hyperparameters
        Overrides of the optimizer's defaults (``lr``, ``momentum``, ...).

    Attributes
    ----------
    base : dict
        The hyperparameters in force where no group says otherwise.
    groups : dict of str to dict
        The per-parameter overrides, by glob pattern.
    lr_scale : float
        The factor on every learning rate, base and groups alike; a
        :class:`~annlens.optim.schedules.Schedule` sets it.
    t : int
        Steps taken (the bias corrections of Adam and its kin count from it).
    state : dict of str to dict of str to ndarray
        The per-parameter state by qualified name (momentum buffers, moments).

    Subclasses set ``defaults``, extend :meth:`validate` and implement
    :meth:`rule`. Every hyperparameter is checked when the optimizer is made,
    when a group is given and on :meth:`set`, before any step: a bad value
    raises :class:`~annlens.errors.ConfigError` naming the optimizer, the key,
    the value and the allowed range.
    """

    defaults: ClassVar[dict[str, Any]] = {"lr": 0.01}

    def __init__(
        self,
        model: Any,
        groups: Mapping[str, Mapping[str, Any]] | None = None,
        **hyperparameters: Any,
    ) -> None:
        if not isinstance(model, Sequential):
            raise ConfigError(
                f"{type(self).__name__} needs a Sequential model, got "
                f"{type(model).__name__}; help: build it as "
                f"{type(self).__name__}(model, lr=...), with the model itself, "
                "not its parameters"
            )
        self.model = model
        self.base = self._merge(dict(self.defaults), hyperparameters, "the optimizer")
        _check_groups(groups, type(self).__name__)
        self.groups = {
            pattern: {
                k: self.coerce(k, v, f"group {pattern!r}") for k, v in values.items()
            }
            for pattern, values in (groups or {}).items()
        }
        self.slots: list[tuple[str, Layer, str]] = [
            (f"{layer.name}.{name}", layer, name)
            for layer in model.layers
            for name in layer.params
        ]
        for pattern, values in self.groups.items():
            if not any(fnmatch.fnmatchcase(q, pattern) for q, _, _ in self.slots):
                names = [q for q, _, _ in self.slots]
                raise ConfigError(
                    f"optimizer group {pattern!r} matches no parameter; "
                    f"parameters: {', '.join(names)}"
                )
            self._merge(dict(self.base), values, f"group {pattern!r}")
        self.lr_scale = 1.0
        self.t = 0
        self.state: dict[str, State] = {}

    def _merge(
        self, into: dict[str, Any], values: Mapping[str, Any], where: str
    ) -> dict[str, Any]:
        for key, value in values.items():
            if key not in self.defaults:
                raise ConfigError(
                    f"{type(self).__name__} has no hyperparameter {key!r} "
                    f"(in {where}){did_you_mean(key, list(self.defaults))}; "
                    f"known: {', '.join(self.defaults)}"
                )
            into[key] = self.coerce(key, value, where)
        self.validate(into, where)
        return into

    def coerce(self, key: str, value: Any, where: str) -> Any:
        """Turn NumPy scalars into Python ones and sequences into tuples.

        Keeps updates in the parameter's dtype (a NumPy float64 scalar would
        promote a float32 array) and the state dictionary JSON-friendly.
        """
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, (list, tuple, np.ndarray)):
            return tuple(v.item() if isinstance(v, np.generic) else v for v in value)
        return value

    def validate(self, hyper: dict[str, Any], where: str) -> None:
        """Refuse out-of-range hyperparameters; subclasses add their own checks."""
        check_range(hyper, "lr", 0.0, None, where, type(self).__name__)

    def hyperparameters(self, qualified: str) -> dict[str, Any]:
        """The hyperparameters in force for one parameter, groups applied."""
        hyper = dict(self.base)
        for pattern, values in self.groups.items():
            if fnmatch.fnmatchcase(qualified, pattern):
                hyper.update(values)
        hyper["lr"] = hyper["lr"] * self.lr_scale
        return hyper

    def set(self, key: str, value: Any, pattern: str | None = None) -> None:
        """Change a base hyperparameter, or the group ``pattern``'s value.

        A base change reaches every parameter whose groups do not set ``key``
        themselves. Nothing changes when the value is refused.
        """
        if pattern is not None and not any(
            fnmatch.fnmatchcase(q, pattern) for q, _, _ in self.slots
        ):
            raise ConfigError(
                f"optimizer group {pattern!r} matches no parameter; "
                f"parameters: {', '.join(q for q, _, _ in self.slots)}"
            )
        if pattern is None:
            self.base = self._merge(dict(self.base), {key: value}, "set()")
        else:
            value = self.coerce(key, value, f"group {pattern!r}")
            merged = {**self.groups.get(pattern, {}), key: value}
            self._merge(dict(self.base), merged, f"group {pattern!r}")
            self.groups[pattern] = merged

    def zero_grad(self) -> None:
        """Set every gradient of the model to zero."""
        self.model.zero_grad()

    @property
    def lr(self) -> float:
        """The base learning rate after the schedule's scale.

        Setting it is ``set("lr", value)``: it changes the base rate, checked as
        any hyperparameter is, which a schedule then scales; a group that sets
        its own ``lr`` keeps it.
        """
        return float(self.base["lr"] * self.lr_scale)

    @lr.setter
    def lr(self, value: float) -> None:
        self.set("lr", value)

    def rule(
        self, param: Array, grad: Array, state: State, hyper: dict[str, Any], t: int
    ) -> tuple[Array, State]:
        """The pure update rule: ``(update, new state)`` for step ``t`` (from 1).

        Must not modify ``param``, ``grad``, ``hyper`` or the arrays in ``state``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define rule")

    def step(self, check: Callable[[Sequence[Proposal]], None] | None = None) -> None:
        """Propose, hook, then apply every update and commit the new state.

        ``check``, when given, sees every proposal (after the ``update`` hooks)
        before anything is applied; what it raises leaves everything unchanged.
        The trainer's NaN guard checks the updates this way. A subclass that
        overrides ``step`` takes ``check`` too.
        """
        t = self.t + 1
        proposals = []
        # Without groups every parameter shares the base values: resolve them once.
        shared = None if self.groups else self.hyperparameters("")
        for qualified, layer, name in self.slots:
            param, grad = layer.params[name], layer.grads[name]
            hyper = shared or self.hyperparameters(qualified)
            update, state = self.rule(
                param, grad, self.state.get(qualified, {}), hyper, t
            )
            if layer.hooked:
                update = layer.hook_table.fire("update", name, update)
            proposals.append((qualified, layer, name, update, state))
        if check is not None:
            check(proposals)

        for qualified, layer, name, update, state in proposals:
            layer.params[name] += update
            self.state[qualified] = state
        self.t = t
        self.model.state.step += 1

    # -- state for checkpoints -------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Step count, hyperparameters and per-parameter state (copies)."""
        return {
            "type": type(self).__name__,
            "t": self.t,
            "lr_scale": self.lr_scale,
            "base": dict(self.base),
            "groups": {k: dict(v) for k, v in self.groups.items()},
            "state": {
                q: {k: np.array(v, copy=True) for k, v in s.items()}
                for q, s in self.state.items()
            },
        }

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; checks before changing anything.

        Accepts the dictionary after a JSON round trip (tuples as lists, arrays
        as nested lists).
        """
        name = type(self).__name__
        if not isinstance(saved, Mapping):
            raise ConfigError(
                f"optimizer state must be a mapping from {name}.state_dict(), "
                f"got {type(saved).__name__}"
            )
        if saved.get("type") != name:
            raise ConfigError(
                f"optimizer state is for {saved.get('type')!r}, not {name!r}"
            )
        missing = sorted({"t", "lr_scale", "base", "groups", "state"} - set(saved))
        if missing:
            raise ConfigError(f"{name} optimizer state lacks {missing}")
        t, lr_scale = saved["t"], saved["lr_scale"]
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
            raise ConfigError(
                f"{name} optimizer state: t must be an integer >= 0, got {t!r}"
            )
        if not isinstance(lr_scale, numbers.Real) or not math.isfinite(lr_scale):
            raise ConfigError(
                f"{name} optimizer state: lr_scale must be a finite number, "
                f"got {lr_scale!r}"
            )
        for key in ("base", "groups", "state"):
            if not isinstance(saved[key], Mapping):
                raise ConfigError(
                    f"{name} optimizer state: {key} must be a mapping, "
                    f"got {saved[key]!r}"
                )
        for qualified, entries in saved["state"].items():
            if not isinstance(entries, Mapping):
                raise ConfigError(
                    f"{name} optimizer state: state[{qualified!r}] must map "
                    f"names to arrays, got {entries!r}"
                )
        _check_groups(saved["groups"], name)
        params = {q: layer.params[name] for q, layer, name in self.slots}
        unknown = sorted(set(saved["state"]) - set(params))
        if unknown:
            raise ConfigError(f"optimizer state names unknown parameters: {unknown}")
        base = self._merge(dict(self.defaults), saved["base"], "loaded state")
        groups = {
            pattern: {
                k: self.coerce(k, v, f"loaded group {pattern!r}")
                for k, v in values.items()
            }
            for pattern, values in saved["groups"].items()
        }
        for pattern, values in groups.items():
            if not any(fnmatch.fnmatchcase(q, pattern) for q in params):
                raise ConfigError(
                    f"loaded optimizer group {pattern!r} matches no parameter; "
                    f"parameters: {', '.join(params)}"
                )
            self._merge(dict(base), values, f"loaded group {pattern!r}")
        state: dict[str, State] = {}
        for qualified, entries in saved["state"].items():
            state[qualified] = {}
            for key, value in entries.items():
                shape = params[qualified].shape
                array = np.asarray(value)
                if array.ndim == 0:
                    state[qualified][key] = np.array(array, dtype=np.float64)
                elif array.shape == shape:
                    state[qualified][key] = np.array(array, dtype=self.model.dtype)
                else:
                    raise ConfigError(
                        f"optimizer state {qualified}.{key} has shape {array.shape}; "
                        f"the parameter has shape {shape}"
                    )

        self.base, self.groups, self.state = base, groups, state
        self.t = int(t)
        self.lr_scale = float(lr_scale)

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.base.items())
        return f"{type(self).__name__}({settings})"


def check_flag(hyper: Mapping[str, Any], key: str, where: str, owner: str) -> None:
    """Refuse ``hyper[key]`` unless it is True or False."""
    value = hyper.get(key)
    if value is not None and not isinstance(value, bool):
        raise ConfigError(
            f"{owner} {key} must be True or False, got {value!r} (in {where})"
        )


def check_betas(hyper: Mapping[str, Any], where: str, owner: str) -> None:
    """Refuse ``betas`` unless it is two numbers, each in [0, 1)."""
    betas = hyper.get("betas")
    if betas is None:
        return
    if not isinstance(betas, tuple) or len(betas) != 2:
        raise ConfigError(
            f"{owner} betas must be a pair (beta1, beta2), got {betas!r} (in {where})"
        )
    for index, beta in enumerate(betas):
        check_range(
            {f"betas[{index}]": beta},
            f"betas[{index}]",
            0.0,
            1.0,
            where,
            owner,
            high_open=True,
        )


def check_range(
    hyper: Mapping[str, Any],
    key: str,
    low: float | None,
    high: float | None,
    where: str,
    owner: str,
    high_open: bool = False,
) -> None:
    """Refuse ``hyper[key]`` outside ``[low, high]``, or ``[low, high)``."""
    value = hyper.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise ConfigError(f"{owner} {key} must be a number, got {value!r} (in {where})")
    too_low = low is not None and value < low
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high or not np.isfinite(value):
        right = ")" if high_open or high is None else "]"  # inf is refused too
        span = f"[{low if low is not None else '-inf'}, "
        span += f"{high if high is not None else 'inf'}{right}"
        raise ConfigError(
            f"{owner} {key} must be in {span}, got {value!r} (in {where})"
        )


def check_number(
    owner: str,
    key: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a float, or raise if it is outside the interval."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{owner} {key} must be a number, got {value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad = bad or (value <= low if low_open else value < low)
    if high is not None:
        bad = bad or (value >= high if high_open else value > high)
    if bad:
        left = "(" if low_open else "["
        right = ")" if high_open or high is None else "]"  # inf is refused too
        span = f"{left}{'-inf' if low is None else low}, "
        span += f"{'inf' if high is None else high}{right}"
        raise ConfigError(f"{owner} {key} must be in {span}, got {value!r}")
    return value


def check_count(owner: str, key: str, value: Any, low: int = 1) -> int:
    """Return ``value`` as an int, or raise unless it is an integer >= ``low``."""
    return errors.check_count(f"{owner} {key}", value, low)


def _check_groups(groups: Any, name: str) -> None:
    """Refuse ``groups`` that is not a mapping of pattern to a mapping of settings."""
    if groups is None:
        return
    example = "groups={'dense_0.*': {'lr': 0.01}}"
    if not isinstance(groups, Mapping):
        raise ConfigError(
            f"{name} groups must map a parameter pattern to its hyperparameters, "
            f"got {type(groups).__name__} {groups!r}; help: {example}"
        )
    for pattern, values in groups.items():
        if not isinstance(pattern, str) or not isinstance(values, Mapping):
            raise ConfigError(
                f"{name} group {pattern!r} must be a pattern (str) mapped to a "
                f"mapping of hyperparameters, got {values!r}; help: {example}"
            )
