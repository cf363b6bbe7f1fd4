"""Per-coordinate adaptive step sizes: Adagrad, RMSProp and Adadelta.

Each divides the gradient by a running measure of its own size, so every
coordinate gets its own effective learning rate. The rules are written to
agree with PyTorch's definitions of the same names, hyperparameter for
hyperparameter, so that runs can be compared across the two.

References
----------
Duchi, J., Hazan, E. & Singer, Y. (2011). Adaptive subgradient methods for
online learning and stochastic optimization. JMLR 12.
Tieleman, T. & Hinton, G. (2012). Lecture 6.5, RMSProp. COURSERA: Neural
Networks for Machine Learning.
Graves, A. (2013). Generating sequences with recurrent neural networks.
arXiv:1308.0850 (the centered variant).
Zeiler, M. D. (2012). ADADELTA: an adaptive learning rate method.
arXiv:1212.5701.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from annlens.layers.base import Array
from annlens.optim.base import Optimizer, State, check_flag, check_range


def _with_weight_decay(param: Array, grad: Array, hyper: dict[str, Any]) -> Array:
    """``grad + weight_decay * param`` (coupled, L2-style), a new array or grad."""
    decay = hyper["weight_decay"]
    return grad + decay * param if decay else grad


class Adagrad(Optimizer):
    """Adagrad: steps shrink with the sum of all squared gradients so far.

    Parameters
    ----------
    model : Sequential
        The model to optimise.
    lr : float
        Learning rate (default 0.01).
    lr_decay : float
        The step-``t`` rate is ``lr / (1 + (t - 1) lr_decay)``.
    weight_decay : float
        Coupled L2 decay, added to the gradient.
    initial_accumulator_value : float
        The starting value of the running sum of squares.
    eps : float
        Added to the square root of the sum, for stability (default 1e-10).

    Notes
    -----
    With ``g = grad + weight_decay * param``, at step ``t``::

        s      = s + g * g                     (s starts at initial_accumulator_value)
        update = -lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)

    State: ``sum_sq``, the running sum ``s``, shaped like the parameter.
    """

    defaults: ClassVar[dict[str, Any]] = {
        "lr": 0.01,
        "lr_decay": 0.0,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "eps": 1e-10,
    }

    def validate(self, hyper: dict[str, Any], where: str) -> None:
        super().validate(hyper, where)
        name = type(self).__name__
        for key in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            check_range(hyper, key, 0.0, None, where, name)

    def rule(
        self, param: Array, grad: Array, state: State, hyper: dict[str, Any], t: int
    ) -> tuple[Array, State]:
        g = _with_weight_decay(param, grad, hyper)
        if "sum_sq" in state:
            s = state["sum_sq"] + g * g
        else:
            s = np.full_like(param, hyper["initial_accumulator_value"]) + g * g

        rate = hyper["lr"] / (1 + (t - 1) * hyper["lr_decay"])
        return -rate * g / (np.sqrt(s) + hyper["eps"]), {"sum_sq": s}


class RMSProp(Optimizer):
    """RMSProp: divide by a moving root mean square of the gradient.

    Parameters
    ----------
    model : Sequential
        The model to optimise.
    lr : float
        Learning rate (default 0.01).
    alpha : float
        Smoothing constant of the squared-gradient average, in [0, 1]
        (default 0.99).
    eps : float
        Added to the root mean square (default 1e-8).
    weight_decay : float
        Coupled L2 decay, added to the gradient.
    momentum : float
        Momentum on the normalised step, in [0, 1).
    centered : bool
        Divide by an estimate of the standard deviation (Graves 2013) instead
        of the root mean square.

    Notes
    -----
    With ``g = grad + weight_decay * param``::

        v      = alpha * v + (1 - alpha) * g * g          (v starts at 0)
        gbar   = alpha * gbar + (1 - alpha) * g           (centered only)
        denom  = sqrt(v - gbar * gbar) + eps   if centered else sqrt(v) + eps
        b      = momentum * b + g / denom                 (b starts at 0)
        update = -lr * b         with momentum, else   -lr * g / denom

    State: ``v``, and ``g_avg`` when centered, ``velocity`` with momentum.
    """

    defaults: ClassVar[dict[str, Any]] = {
        "lr": 0.01,
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "centered": False,
    }

    def validate(self, hyper: dict[str, Any], where: str) -> None:
        super().validate(hyper, where)
        name = type(self).__name__
        check_range(hyper, "alpha", 0.0, 1.0, where, name)
        check_range(hyper, "eps", 0.0, None, where, name)
        check_range(hyper, "weight_decay", 0.0, None, where, name)
        check_range(hyper, "momentum", 0.0, 1.0, where, name, high_open=True)
        check_flag(hyper, "centered", where, name)

    def rule(
        self, param: Array, grad: Array, state: State, hyper: dict[str, Any], t: int
    ) -> tuple[Array, State]:
        g = _with_weight_decay(param, grad, hyper)
        alpha = hyper["alpha"]
        zeros = np.zeros_like(param)
        v = alpha * state.get("v", zeros) + (1 - alpha) * g * g
        new_state = {"v": v}

        if hyper["centered"]:
            g_avg = alpha * state.get("g_avg", zeros) + (1 - alpha) * g
            # v >= g_avg**2 in exact arithmetic; the floor guards rounding.
            denom = np.sqrt(np.maximum(v - g_avg * g_avg, 0.0)) + hyper["eps"]
            new_state["g_avg"] = g_avg
        else:
            denom = np.sqrt(v) + hyper["eps"]

        if hyper["momentum"] > 0:
            velocity = hyper["momentum"] * state.get("velocity", zeros) + g / denom
            new_state["velocity"] = velocity
            return -hyper["lr"] * velocity, new_state
        return -hyper["lr"] * g / denom, new_state


class Adadelta(Optimizer):
    """Adadelta: a step whose units match the parameter's, from two averages.

    Parameters
    ----------
    model : Sequential
        The model to optimise.
    lr : float
        A factor on the Adadelta step (default 1.0, the paper's method).
    rho : float
        Smoothing constant of both averages, in [0, 1] (default 0.9).
    eps : float
        Added inside both square roots (default 1e-6).
    weight_decay : float
        Coupled L2 decay, added to the gradient.

    Notes
    -----
    With ``g = grad + weight_decay * param``::

        v      = rho * v + (1 - rho) * g * g                 (v, u start at 0)
        step   = sqrt(u + eps) / sqrt(v + eps) * g
        u      = rho * u + (1 - rho) * step * step
        update = -lr * step

    State: ``v`` (squared gradients) and ``u`` (squared steps).
    """

    defaults: ClassVar[dict[str, Any]] = {
        "lr": 1.0,
        "rho": 0.9,
        "eps": 1e-6,
        "weight_decay": 0.0,
    }

    def validate(self, hyper: dict[str, Any], where: str) -> None:
        super().validate(hyper, where)
        name = type(self).__name__
        check_range(hyper, "rho", 0.0, 1.0, where, name)
        check_range(hyper, "eps", 0.0, None, where, name)
        check_range(hyper, "weight_decay", 0.0, None, where, name)

    def rule(
        self, param: Array, grad: Array, state: State, hyper: dict[str, Any], t: int
    ) -> tuple[Array, State]:
        g = _with_weight_decay(param, grad, hyper)
        rho, eps = hyper["rho"], hyper["eps"]
        zeros = np.zeros_like(param)
        v = rho * state.get("v", zeros) + (1 - rho) * g * g
        u_old = state.get("u", zeros)

        step = np.sqrt(u_old + eps) / np.sqrt(v + eps) * g
        u = rho * u_old + (1 - rho) * step * step
        return -hyper["lr"] * step, {"v": v, "u": u}
