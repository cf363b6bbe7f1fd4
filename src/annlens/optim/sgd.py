"""Stochastic gradient descent, with classical or Nesterov momentum.

References
----------
Sutskever, I. et al. (2013). On the importance of initialization and momentum
in deep learning. ICML.
"""

from __future__ import annotations

from typing import Any, ClassVar

from annlens.errors import ConfigError
from annlens.layers.base import Array
from annlens.optim.base import Optimizer, State, check_flag, check_range


class SGD(Optimizer):
    """SGD with optional momentum, Nesterov momentum and coupled weight decay.

    Notes
    -----
    With ``g = grad + weight_decay * param`` and velocity ``v`` (PyTorch's form)::

        v      = momentum * v + (1 - dampening) * g      (v = g at the first step)
        step   = g + momentum * v   if nesterov else v
        update = -lr * step

    This is exactly ``torch.optim.SGD``'s rule; Nesterov momentum needs
    ``momentum > 0`` and ``dampening = 0``.

    State: ``velocity``, the momentum buffer (absent without momentum).
    """

    defaults: ClassVar[dict[str, Any]] = {
        "lr": 0.01,
        "momentum": 0.0,
        "dampening": 0.0,
        "nesterov": False,
        "weight_decay": 0.0,
    }

    def validate(self, hyper: dict[str, Any], where: str) -> None:
        super().validate(hyper, where)
        name = type(self).__name__
        check_range(hyper, "momentum", 0.0, 1.0, where, name, high_open=True)
        check_range(hyper, "dampening", 0.0, 1.0, where, name)
        check_range(hyper, "weight_decay", 0.0, None, where, name)
        check_flag(hyper, "nesterov", where, name)
        if hyper["nesterov"] and (hyper["momentum"] <= 0 or hyper["dampening"] != 0):
            raise ConfigError(
                f"{name} nesterov needs momentum > 0 and dampening = 0, got "
                f"momentum={hyper['momentum']!r}, dampening={hyper['dampening']!r} "
                f"(in {where})"
            )

    def rule(
        self, param: Array, grad: Array, state: State, hyper: dict[str, Any], t: int
    ) -> tuple[Array, State]:
        g = grad + hyper["weight_decay"] * param if hyper["weight_decay"] else grad
        momentum = hyper["momentum"]
        if not momentum:
            return -hyper["lr"] * g, {}

        if "velocity" in state:
            v = momentum * state["velocity"] + (1 - hyper["dampening"]) * g
        else:
            v = g.copy()
        step = g + momentum * v if hyper["nesterov"] else v
        return -hyper["lr"] * step, {"velocity": v}
