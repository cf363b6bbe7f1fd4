"""Penalties added to the loss: L1, L2, and any function of the parameters.

A penalty is a function of the model. ``penalty.value(model)`` is the number
to add to the loss; ``penalty.add_gradients(model)`` adds its gradient to each
chosen parameter's gradient, replacing ``layer.grads[key]`` with a new array
(the old one is never written to, since hooks or collectors may hold it). The
training loop calls it between ``model.backward(..., fire_gradient_hooks=False)``
and ``model.finish_gradients()``, so ``gradient`` hooks see the total.

Penalties choose parameters by glob over qualified names; the default
``"*.W"`` takes every weight matrix and no bias.

Decoupled weight decay, which is not a penalty on the loss, is the
``weight_decay`` of :class:`~annlens.optim.adam.AdamW` (or
``decoupled_weight_decay=True`` on Adam and NAdam).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from annlens.errors import ConfigError, ShapeError
from annlens.layers.base import Array
from annlens.optim.base import check_number
from annlens.optim.select import PatternSelected, select_parameters


class Penalty(PatternSelected):
    """Base class: a penalty summed over the parameters a pattern chooses.

    Subclasses implement :meth:`term` and :meth:`gradient` for one parameter.
    """

    def term(self, param: Array) -> float:
        """The penalty of one parameter array."""
        raise NotImplementedError(f"{type(self).__name__} does not define term")

    def gradient(self, param: Array) -> Array:
        """d term / d param, a new array shaped and typed like ``param``."""
        raise NotImplementedError(f"{type(self).__name__} does not define gradient")

    def value(self, model: Any) -> float:
        """The penalty of the model, to add to the loss."""
        chosen = self.chosen(model)
        return float(sum(self.term(layer.params[key]) for _, layer, key in chosen))

    def gradients(self, model: Any) -> dict[str, Array]:
        """The penalty's gradient for each chosen parameter, by qualified name."""
        chosen = self.chosen(model)
        return {q: self.gradient(layer.params[key]) for q, layer, key in chosen}

    def add_gradients(self, model: Any) -> None:
        """Replace each chosen ``layer.grads[key]`` with itself plus the penalty's.

        Every penalty gradient is computed before any is added, so one that
        fails leaves all the gradients as they were.
        """
        chosen = self.chosen(model)
        extra = [self.gradient(layer.params[key]) for _, layer, key in chosen]
        for (_, layer, key), grad in zip(chosen, extra, strict=True):
            layer.grads[key] = layer.grads[key] + grad


class L2Penalty(Penalty):
    """The squared L2 norm of the weights, halved so its gradient is ``strength * W``.

    Parameters
    ----------
    strength : float
        ``lambda`` >= 0; the same number as coupled ``weight_decay`` in SGD.
    pattern : str or list of str
        Globs over qualified parameter names (default ``"*.W"``).

    Notes
    -----
    ``value = lambda / 2 * sum(W**2)``, ``gradient = lambda * W``.
    """

    def __init__(self, strength: float, pattern: str | Sequence[str] = "*.W"):
        super().__init__(pattern)
        self.strength = check_number("L2Penalty", "strength", strength, 0.0)

    def term(self, param: Array) -> float:
        return 0.5 * self.strength * float(np.sum(np.square(param, dtype=np.float64)))

    def gradient(self, param: Array) -> Array:
        return self.strength * param

    def config(self) -> dict[str, Any]:
        return {"strength": self.strength, **super().config()}


class L1Penalty(Penalty):
    """The L1 norm of the weights, which drives small weights to zero.

    Parameters
    ----------
    strength : float
        ``lambda`` >= 0.
    pattern : str or list of str
        Globs over qualified parameter names (default ``"*.W"``).

    Notes
    -----
    ``value = lambda * sum(|W|)``, ``gradient = lambda * sign(W)``, taking the
    subgradient 0 where a weight is exactly 0.
    """

    def __init__(self, strength: float, pattern: str | Sequence[str] = "*.W"):
        super().__init__(pattern)
        self.strength = check_number("L1Penalty", "strength", strength, 0.0)

    def term(self, param: Array) -> float:
        return self.strength * float(np.sum(np.abs(param), dtype=np.float64))

    def gradient(self, param: Array) -> Array:
        return self.strength * np.sign(param)

    def config(self) -> dict[str, Any]:
        return {"strength": self.strength, **super().config()}


def finite_difference(
    fn: Callable[[Array], float], param: Array, eps: float = 1e-6
) -> Array:
    """The gradient of ``fn`` at ``param`` by central differences, in float64.

    Each entry moves by ``h = eps * max(1, |param_i|)`` up and down; ``fn`` is
    called ``2 * param.size`` times on a private copy, never on ``param``.
    """
    point = np.array(param, dtype=np.float64)
    grad = np.empty_like(point)
    flat, flat_grad = point.reshape(-1), grad.reshape(-1)
    for index in range(flat.size):
        original = flat[index]
        h = eps * max(1.0, abs(original))
        flat[index] = up = original + h
        above = float(fn(point))
        flat[index] = down = original - h
        below = float(fn(point))
        flat[index] = original
        flat_grad[index] = (above - below) / (up - down)
    return grad


class CustomPenalty(Penalty):
    """A penalty from any function of one parameter array.

    Parameters
    ----------
    fn : callable
        ``fn(param) -> float``, called on each chosen parameter separately;
        the penalty is the sum over them. It must not modify its argument.
    grad_fn : callable, optional
        ``grad_fn(param) -> array`` of ``param``'s shape, the gradient of
        ``fn``. Without it, the gradient comes from central finite differences
        (see Notes), and a warning says so.
    pattern : str or list of str
        Globs over qualified parameter names (default ``"*.W"``).
    eps : float
        The relative finite-difference step (default 1e-6).
    name : str, optional
        A label for messages and the repr (default: ``fn``'s name).

    Notes
    -----
    Without ``grad_fn``, each entry's derivative is
    ``(fn(W + h e_i) - fn(W - h e_i)) / (2 h)`` with ``h = eps * max(1, |W_i|)``,
    computed in float64: two calls of ``fn`` per entry, so a 100 x 100 layer
    costs 20,000 calls every step. Exact up to O(h**2) truncation and about
    ``1e-10`` rounding for a smooth ``fn``; wrong at kinks such as ``|w|`` at 0.
    Use :meth:`check` to test a ``grad_fn`` against the same differences.

    Examples
    --------
    >>> import numpy as np
    >>> orthogonal = CustomPenalty(
    ...     lambda W: float(np.sum((W.T @ W - np.eye(W.shape[1])) ** 2)),
    ...     grad_fn=lambda W: 4 * W @ (W.T @ W - np.eye(W.shape[1])),
    ... )
    """

    def __init__(
        self,
        fn: Callable[[Array], float],
        grad_fn: Callable[[Array], Array] | None = None,
        pattern: str | Sequence[str] = "*.W",
        eps: float = 1e-6,
        name: str | None = None,
    ) -> None:
        super().__init__(pattern)
        if not callable(fn):
            raise ConfigError(f"CustomPenalty fn must be callable, got {fn!r}")
        if grad_fn is not None and not callable(grad_fn):
            raise ConfigError(
                f"CustomPenalty grad_fn must be callable or None, got {grad_fn!r}"
            )
        self.fn, self.grad_fn = fn, grad_fn
        self.eps = check_number("CustomPenalty", "eps", eps, 0.0, low_open=True)
        self.name = name or getattr(fn, "__name__", "fn")
        if grad_fn is None:
            warnings.warn(
                f"CustomPenalty {self.name!r} has no grad_fn: its gradient comes "
                "from central finite differences, two calls of fn per parameter "
                "entry at every step, which is slow for large layers; "
                "help: pass grad_fn, and test it with check()",
                UserWarning,
                stacklevel=2,
            )

    def term(self, param: Array) -> float:
        return float(self.fn(param))

    def gradient(self, param: Array) -> Array:
        if self.grad_fn is None:
            return finite_difference(self.fn, param, self.eps).astype(param.dtype)
        grad = np.asarray(self.grad_fn(param))
        if grad.shape != param.shape:
            raise ShapeError(
                f"CustomPenalty {self.name!r} grad_fn returned shape {grad.shape}; "
                f"expected the parameter's shape {param.shape}"
            )
        return grad.astype(param.dtype)

    def check(self, model: Any) -> dict[str, float]:
        """Compare ``grad_fn`` with finite differences on each chosen parameter.

        Returns
        -------
        dict of str to float
            The relative error ``|g - g_fd| / (|g| + |g_fd|)`` (Frobenius
            norms; 0 when both vanish) per qualified parameter name. Smooth
            penalties in float64 give about 1e-9 or less for a correct grad_fn.
        """
        if self.grad_fn is None:
            raise ConfigError(
                f"CustomPenalty {self.name!r} has no grad_fn to check; its "
                "gradient already is the finite difference"
            )
        errors = {}
        chosen = select_parameters(model, self.patterns, "CustomPenalty")
        for qualified, layer, key in chosen:
            param = np.array(layer.params[key], dtype=np.float64)
            given = np.asarray(self.grad_fn(param), dtype=np.float64)
            numeric = finite_difference(self.fn, param, self.eps)
            scale = np.linalg.norm(given) + np.linalg.norm(numeric)
            gap = np.linalg.norm(given - numeric)
            errors[qualified] = float(gap / scale) if scale > 0 else 0.0
        return errors

    def config(self) -> dict[str, Any]:
        return {
            "fn": self.name,
            "grad_fn": "given" if self.grad_fn is not None else "finite differences",
            **super().config(),
        }
