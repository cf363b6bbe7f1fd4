"""Gradient clipping: by the global norm of all gradients, or entry by entry.

Both functions act on the model's current gradients (``layer.grads``), after
backward and any penalties, before the optimizer step. They replace each
changed gradient with a new array and never write into the old one, and both
return the global L2 norm *before* clipping, the number worth logging.

References
----------
Pascanu, R., Mikolov, T. & Bengio, Y. (2013). On the difficulty of training
recurrent neural networks. ICML.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from annlens.errors import NonFiniteError
from annlens.optim.base import check_number
from annlens.optim.select import Slot, as_patterns, select_parameters


def _chosen(model: Any, pattern: str | Sequence[str], owner: str) -> list[Slot]:
    return select_parameters(model, as_patterns(pattern, owner), owner)


def _norm(model: Any, chosen: list[Slot]) -> float:
    """The global L2 norm of the chosen gradients, refusing NaN and Inf."""
    total = 0.0
    for qualified, layer, key in chosen:
        grad = layer.grads[key]
        if not np.all(np.isfinite(grad)):
            raise NonFiniteError(
                f"gradient {qualified} holds NaN or Inf; clipping cannot fix it",
                step=model.state.step,
                layer=layer.name,
                stage="gradient",
                count=int(np.sum(~np.isfinite(grad))),
            )
        total += float(np.sum(np.square(grad, dtype=np.float64)))
    return float(np.sqrt(total))


def grad_norm(model: Any, pattern: str | Sequence[str] = "*") -> float:
    """The global L2 norm of the gradients that ``pattern`` chooses (all by default).

    Notes
    -----
    ``||g|| = sqrt(sum over parameters p of sum(grads[p] ** 2))``, in float64.
    """
    return _norm(model, _chosen(model, pattern, "grad_norm"))


def clip_grad_norm(
    model: Any, max_norm: float, pattern: str | Sequence[str] = "*"
) -> float:
    """Scale all chosen gradients together so their global norm is at most ``max_norm``.

    Parameters
    ----------
    model : Sequential
        The model whose ``layer.grads`` are clipped.
    max_norm : float
        The largest global L2 norm allowed, > 0.
    pattern : str or list of str
        Globs over qualified parameter names (default: every parameter).

    Returns
    -------
    float
        The global norm before clipping.

    Raises
    ------
    NonFiniteError
        When a gradient holds NaN or Inf, naming it; nothing is changed.

    Notes
    -----
    When ``||g|| > max_norm``, every chosen gradient becomes
    ``g * (max_norm / ||g||)``: the direction is kept and the global norm
    becomes ``max_norm`` exactly, up to rounding (no small constant is added
    to the denominator).
    """
    limit = check_number("clip_grad_norm", "max_norm", max_norm, 0.0, low_open=True)
    chosen = _chosen(model, pattern, "clip_grad_norm")
    norm = _norm(model, chosen)
    if norm > limit:
        factor = limit / norm
        for _, layer, key in chosen:
            layer.grads[key] = layer.grads[key] * factor
    return norm


def clip_grad_value(
    model: Any, clip_value: float, pattern: str | Sequence[str] = "*"
) -> float:
    """Clip every chosen gradient entry into ``[-clip_value, clip_value]``.

    Parameters
    ----------
    model : Sequential
        The model whose ``layer.grads`` are clipped.
    clip_value : float
        The largest absolute value allowed, > 0.
    pattern : str or list of str
        Globs over qualified parameter names (default: every parameter).

    Returns
    -------
    float
        The global L2 norm before clipping.

    Raises
    ------
    NonFiniteError
        When a gradient holds NaN or Inf, naming it; nothing is changed.

    Notes
    -----
    Unlike norm clipping, this changes the direction of the gradient.
    """
    limit = check_number(
        "clip_grad_value", "clip_value", clip_value, 0.0, low_open=True
    )
    chosen = _chosen(model, pattern, "clip_grad_value")
    norm = _norm(model, chosen)
    for _, layer, key in chosen:
        layer.grads[key] = np.clip(layer.grads[key], -limit, limit)
    return norm
