"""Gradient clipping by value and by global norm, applied to a model's gradients.

The trainer clips after the ``gradient`` hook stage and before the update, so
hooks see the gradients as backpropagation made them and the optimizer sees
them clipped. Both functions replace ``layer.grads`` entries with new arrays
and never write into the old ones (a hook may still hold them).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def clip_by_value(model: Any, limit: float) -> None:
    """Clip every gradient element into ``[-limit, limit]``."""
    for layer in model.layers:
        for name, grad in layer.grads.items():
            layer.grads[name] = np.clip(grad, -limit, limit)


def clip_by_norm(model: Any, max_norm: float) -> float:
    """Scale all gradients together so that their global norm is at most ``max_norm``.

    Returns
    -------
    float
        The global norm before clipping.

    Notes
    -----
    As PyTorch's ``clip_grad_norm_``::

        norm  = sqrt(sum over every gradient g of sum(g^2))
        scale = max_norm / (norm + 1e-6)
        g     = g * scale          only when scale < 1
    """
    grads = [grad for layer in model.layers for grad in layer.grads.values()]
    norm = float(np.sqrt(sum(float(np.sum(grad * grad)) for grad in grads)))
    scale = max_norm / (norm + 1e-6)
    if scale < 1.0:
        for layer in model.layers:
            for name, grad in layer.grads.items():
                layer.grads[name] = grad * grad.dtype.type(scale)
    return norm
