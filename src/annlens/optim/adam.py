"""The Adam family: Adam (with AMSGrad), AdamW, NAdam and Adamax.

All four keep a moving average of the gradient (the first moment ``m``) and a
measure of its size (the second moment ``v``, or Adamax's infinity norm
``u``), both corrected for their start at zero. They differ in how weight
decay enters (coupled into the gradient, or decoupled from it as in AdamW),
in whether the denominator may shrink (AMSGrad), and in how momentum is
applied (NAdam's Nesterov look-ahead). The rules agree with PyTorch's
definitions of the same names, hyperparameter for hyperparameter.

References
----------
Kingma, D. P. & Ba, J. (2015). Adam: a method for stochastic optimization.
ICLR. (Adam; Adamax in section 7.1.)
Reddi, S. J., Kale, S. & Kumar, S. (2018). On the convergence of Adam and
beyond. ICLR. (AMSGrad.)
Loshchilov, I. & Hutter, F. (2019). Decoupled weight decay regularization.
ICLR. (AdamW.)
Dozat, T. (2016). Incorporating Nesterov momentum into Adam. ICLR workshop.
(NAdam.)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from annlens.layers.base import Array
from annlens.optim.base import Optimizer, State, check_betas, check_flag, check_range


class Adam(Optimizer):
    """Adam, with optional AMSGrad and coupled or decoupled weight decay.

    Parameters
    ----------
    model : Sequential
        The model to optimise.
    lr : float
        Learning rate (default 1e-3).
    betas : tuple of two floats
        Decay rates of the first and second moment averages, each in [0, 1)
        (default (0.9, 0.999)).
    eps : float
        Added to the corrected root second moment (default 1e-8).
    weight_decay : float
        Weight decay; coupled (added to the gradient, the L2 way) unless
        ``decoupled_weight_decay``.
    amsgrad : bool
        Divide by the largest second moment seen so far (Reddi et al. 2018).
    decoupled_weight_decay : bool
        Shrink the parameter directly, as :class:`AdamW` does.

    Notes
    -----
    At step ``t``, with ``g = grad + weight_decay * param`` when decay is
    coupled and ``g = grad`` when it is decoupled::

        m      = beta1 * m + (1 - beta1) * g               (m, v start at 0)
        v      = beta2 * v + (1 - beta2) * g * g
        v_max  = max(v_max, v)                             (amsgrad only)
        denom  = sqrt(v or v_max) / sqrt(1 - beta2**t) + eps
        update = -lr / (1 - beta1**t) * m / denom
        update = update - lr * weight_decay * param        (decoupled only)

    The decoupled form is ``param <- (1 - lr * weight_decay) * param`` followed
    by the Adam step, written as one additive update.

    State: ``m``, ``v`` and, with amsgrad, ``v_max``.
    """

    defaults: ClassVar[dict[str, Any]] = {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
        "decoupled_weight_decay": False,
    }

    def validate(self, hyper: dict[str, Any], where: str) -> None:
        super().validate(hyper, where)
        name = type(self).__name__
        check_betas(hyper, where, name)
        check_range(hyper, "eps", 0.0, None, where, name)
        check_range(hyper, "weight_decay", 0.0, None, where, name)
        for flag in ("amsgrad", "decoupled_weight_decay"):
            check_flag(hyper, flag, where, name)

    def decoupled(self, hyper: dict[str, Any]) -> bool:
        """Whether weight decay shrinks the parameter instead of the gradient."""
        return bool(hyper["decoupled_weight_decay"])

    def rule(
        self, param: Array, grad: Array, state: State, hyper: dict[str, Any], t: int
    ) -> tuple[Array, State]:
        beta1, beta2 = hyper["betas"]
        lr, decay = hyper["lr"], hyper["weight_decay"]
        decoupled = self.decoupled(hyper)
        g = grad + decay * param if decay and not decoupled else grad

        zeros = np.zeros_like(param)
        m = beta1 * state.get("m", zeros) + (1 - beta1) * g
        v = beta2 * state.get("v", zeros) + (1 - beta2) * g * g
        new_state = {"m": m, "v": v}
        if hyper["amsgrad"]:
            v = np.maximum(state.get("v_max", zeros), v)
            new_state["v_max"] = v

        denom = np.sqrt(v) / math.sqrt(1 - beta2**t) + hyper["eps"]
        update = -(lr / (1 - beta1**t)) * m / denom
        if decay and decoupled:
            update = update - lr * decay * param
        return update, new_state


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019).

    Takes Adam's parameters except ``decoupled_weight_decay`` (always on);
    ``weight_decay`` defaults to 1e-2.

    Notes
    -----
    The decay does not pass through Adam's normalisation: each step shrinks
    every weight by the same fraction ``lr * weight_decay``, then takes the
    Adam step of the loss gradient alone::

        update = adam_step(grad) - lr * weight_decay * param

    With coupled L2 instead, ``weight_decay * param`` joins the gradient and is
    divided by ``sqrt(v)``, so weights with large gradients are barely decayed.
    """

    defaults: ClassVar[dict[str, Any]] = {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 1e-2,
        "amsgrad": False,
    }

    def decoupled(self, hyper: dict[str, Any]) -> bool:
        return True


class NAdam(Optimizer):
    """NAdam: Adam with Nesterov momentum and a momentum warm-up schedule.

    Parameters
    ----------
    model : Sequential
        The model to optimise.
    lr : float
        Learning rate (default 2e-3).
    betas : tuple of two floats
        As in :class:`Adam` (default (0.9, 0.999)).
    eps : float
        Added to the corrected root second moment (default 1e-8).
    weight_decay : float
        Coupled unless ``decoupled_weight_decay``.
    momentum_decay : float
        ``psi``, the speed of the momentum warm-up (default 4e-3).
    decoupled_weight_decay : bool
        Shrink the parameter directly, the AdamW way.

    Notes
    -----
    The momentum coefficient warms up over the steps, and the product of all
    coefficients so far replaces ``beta1**t`` in the bias correction::

        mu_t   = beta1 * (1 - 0.5 * 0.96 ** (t * psi))
        P_t    = mu_1 * mu_2 * ... * mu_t                   (state: mu_product)
        m      = beta1 * m + (1 - beta1) * g
        v      = beta2 * v + (1 - beta2) * g * g
        denom  = sqrt(v / (1 - beta2**t)) + eps
        update = -lr * ((1 - mu_t) / (1 - P_t) * g
                        + mu_{t+1} / (1 - P_t * mu_{t+1}) * m) / denom

    State: ``m``, ``v`` and the 0-d ``mu_product``.
    """

    defaults: ClassVar[dict[str, Any]] = {
        "lr": 2e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum_decay": 4e-3,
        "decoupled_weight_decay": False,
    }

    def validate(self, hyper: dict[str, Any], where: str) -> None:
        super().validate(hyper, where)
        name = type(self).__name__
        check_betas(hyper, where, name)
        check_range(hyper, "eps", 0.0, None, where, name)
        check_range(hyper, "weight_decay", 0.0, None, where, name)
        check_range(hyper, "momentum_decay", 0.0, None, where, name)
        check_flag(hyper, "decoupled_weight_decay", where, name)

    def rule(
        self, param: Array, grad: Array, state: State, hyper: dict[str, Any], t: int
    ) -> tuple[Array, State]:
        beta1, beta2 = hyper["betas"]
        lr, decay = hyper["lr"], hyper["weight_decay"]
        decoupled = hyper["decoupled_weight_decay"]
        g = grad + decay * param if decay and not decoupled else grad

        psi = hyper["momentum_decay"]
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        product = float(state.get("mu_product", 1.0)) * mu

        zeros = np.zeros_like(param)
        m = beta1 * state.get("m", zeros) + (1 - beta1) * g
        v = beta2 * state.get("v", zeros) + (1 - beta2) * g * g
        denom = np.sqrt(v / (1 - beta2**t)) + hyper["eps"]

        update = -(lr * (1.0 - mu) / (1.0 - product)) * g / denom
        update = update - (lr * mu_next / (1.0 - product * mu_next)) * m / denom
        if decay and decoupled:
            update = update - lr * decay * param
        return update, {"m": m, "v": v, "mu_product": np.array(product)}


class Adamax(Optimizer):
    """Adamax: Adam with the infinity norm in place of the second moment.

    Parameters
    ----------
    model : Sequential
        The model to optimise.
    lr : float
        Learning rate (default 2e-3).
    betas : tuple of two floats
        Decay rates of the first moment and the infinity norm (default
        (0.9, 0.999)).
    eps : float
        Added to ``|g|`` inside the maximum (default 1e-8).
    weight_decay : float
        Coupled L2 decay, added to the gradient.

    Notes
    -----
    With ``g = grad + weight_decay * param``::

        m      = beta1 * m + (1 - beta1) * g                (m, u start at 0)
        u      = max(beta2 * u, |g| + eps)
        update = -lr / (1 - beta1**t) * m / u

    ``u`` needs no bias correction: the maximum is not pulled towards its
    zero start. State: ``m`` and ``u``.
    """

    defaults: ClassVar[dict[str, Any]] = {
        "lr": 2e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
    }

    def validate(self, hyper: dict[str, Any], where: str) -> None:
        super().validate(hyper, where)
        name = type(self).__name__
        check_betas(hyper, where, name)
        check_range(hyper, "eps", 0.0, None, where, name)
        check_range(hyper, "weight_decay", 0.0, None, where, name)

    def rule(
        self, param: Array, grad: Array, state: State, hyper: dict[str, Any], t: int
    ) -> tuple[Array, State]:
        beta1, beta2 = hyper["betas"]
        decay = hyper["weight_decay"]
        g = grad + decay * param if decay else grad

        zeros = np.zeros_like(param)
        m = beta1 * state.get("m", zeros) + (1 - beta1) * g
        u = np.maximum(beta2 * state.get("u", zeros), np.abs(g) + hyper["eps"])
        update = -(hyper["lr"] / (1 - beta1**t)) * m / u
        return update, {"m": m, "u": u}
