"""A pass that leaves no trace: hooks silenced, the model's state put back after.

:func:`quiet_pass` is the context in which the second-order tools run their
one ordinary forward and backward pass. Inside it no hook fires (the Hessian
is that of the layers' own maths, and a collector fed by hooks must not see
these passes), and gradients are kept. When it ends, also on error, the model
is as it was: what each layer kept for backward, its gradients, its buffers
(BatchNorm's running statistics, which a training-mode pass updates), the
noise generator (which a training-mode dropout draws from), the grad mode and
every hook's registration. Parameters are never written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from annlens.model import Sequential


class _Saved:
    """What a pass may change in ``model``, kept so it can be put back."""

    def __init__(self, model: Sequential) -> None:
        self.model = model
        self.layers = [
            (layer, layer.cache, layer.grads, dict(layer.grads), dict(layer.buffers))
            for layer in model.layers
        ]
        self.hooked = [(owner, owner.hooked) for owner in model.hook_owners()]
        self.output_shape = model.output_shape
        self.rng = model.state.rng.bit_generator.state
        self.grad_enabled = model.state.grad_enabled

    def restore(self) -> None:
        for layer, cache, grads, grad_items, buffer_items in self.layers:
            layer.cache = cache
            grads.clear()
            grads.update(grad_items)
            layer.grads = grads
            layer.buffers.clear()
            layer.buffers.update(buffer_items)
        for owner, hooked in self.hooked:
            owner.hooked = hooked
        self.model.output_shape = self.output_shape
        self.model.state.rng.bit_generator.state = self.rng
        self.model.state.grad_enabled = self.grad_enabled

    def __repr__(self) -> str:
        return f"_Saved({len(self.layers)} layers)"


@contextlib.contextmanager
def quiet_pass(model: Sequential) -> Iterator[Any]:
    """Within the block, hooks are silent and gradients on; afterwards, all restored.

    Examples
    --------
    >>> with quiet_pass(model):  # doctest: +SKIP
    ...     output = model.forward(x)
    """
    saved = _Saved(model)
    try:
        for owner in model.hook_owners():
            owner.hooked = False
        model.state.grad_enabled = True
        yield model
    finally:
        saved.restore()
