"""The Activation contract: a value, its first and its second derivative.

An activation maps the pre-activation ``z`` to the post-activation
``a = f(z)``. Backpropagation needs ``f'`` to turn ``dL/da`` into the delta
``dL/dz``; exact Hessian-vector products need ``f''`` as well. Derivatives take
both ``z`` and ``a`` because several are cheapest written from the cached
output (``sigmoid' = a (1 - a)``). This file holds the contract and the
adapter for plain functions; the functions themselves live in ``library.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]


#: The modules of the built-in activations (see ``Activation.vouched``).
_VOUCHED_MODULES = ("annlens.activations.library", "annlens.activations.softmax")


class Activation:
    """An elementwise nonlinearity ``a = f(z)`` with ``f'`` and ``f''``.

    Subclasses set ``name`` and implement :meth:`forward`, :meth:`derivative`
    and, for second-order analysis, :meth:`second_derivative`.

    Notes
    -----
    Backward pass of an elementwise activation::

        delta = dL/dz = dL/da * f'(z)

    Activations that are not elementwise (softmax) set ``elementwise = False``
    and override :meth:`backward` and :meth:`jvp` with their Jacobian products.
    """

    name: str = "activation"
    elementwise: bool = True
    #: Whether the class is one of annlens's own, whose tests vouch that
    #: forward and backward return an ndarray of z's shape and dtype; a layer
    #: checks the results of every other activation (yours, or a subclass).
    vouched: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.vouched = cls.__module__ in _VOUCHED_MODULES

    def forward(self, z: Array) -> Array:
        """Return ``a = f(z)``, same shape as ``z``."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def derivative(self, z: Array, a: Array) -> Array:
        """Return ``f'(z)`` elementwise; ``a`` is ``f(z)``, already computed."""
        raise NotImplementedError(f"{type(self).__name__} does not define derivative")

    def second_derivative(self, z: Array, a: Array) -> Array:
        """Return ``f''(z)`` elementwise, needed for exact Hessian-vector products."""
        raise NotImplementedError(
            f"{type(self).__name__} does not define a second derivative; "
            "help: give f'' to use exact Hessian-vector products"
        )

    def backward(self, z: Array, a: Array, grad_a: Array) -> Array:
        """Return the delta ``dL/dz`` from ``grad_a = dL/da``."""
        return grad_a * self.derivative(z, a)

    def jvp(self, z: Array, a: Array, v: Array) -> Array:
        """Return the Jacobian-vector product ``J_f(z) v`` (forward mode)."""
        return self.derivative(z, a) * v

    def __call__(self, z: Array) -> Array:
        return self.forward(z)

    def settings(self) -> dict[str, Any]:
        """The constructor arguments of this instance (public attributes)."""
        public = vars(self).items()
        return {k: v for k, v in public if not k.startswith("_") and k != "name"}

    def config(self) -> str | dict[str, Any]:
        """The name, or the name and settings, that rebuild this activation."""
        settings = self.settings()
        return {"name": self.name, **settings} if settings else self.name

    def __repr__(self) -> str:
        settings = self.settings()
        inner = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        return f"{type(self).__name__}({inner})"


class FunctionActivation(Activation):
    """An activation made from plain functions ``f``, ``f'`` and optionally ``f''``.

    Parameters
    ----------
    f : callable, (batch, units) -> (batch, units)
        The function ``a = f(z)``.
    df : callable, (batch, units) -> (batch, units)
        Its derivative ``f'(z)``, a function of ``z`` alone.
    d2f : callable, optional
        Its second derivative ``f''(z)``.
    name : str
        The name shown in summaries and used in the registry.

    Examples
    --------
    >>> cube = FunctionActivation(lambda z: z**3, lambda z: 3 * z**2, name="cube")
    """

    def __init__(
        self,
        f: Callable[[Array], Array],
        df: Callable[[Array], Array],
        d2f: Callable[[Array], Array] | None = None,
        name: str = "custom",
    ) -> None:
        self._f, self._df, self._d2f = f, df, d2f
        self.name = name

    def forward(self, z: Array) -> Array:
        return self._f(z)

    def derivative(self, z: Array, a: Array) -> Array:
        return self._df(z)

    def second_derivative(self, z: Array, a: Array) -> Array:
        if self._d2f is None:
            return super().second_derivative(z, a)
        return self._d2f(z)

    def __repr__(self) -> str:
        return f"FunctionActivation(name={self.name!r})"
