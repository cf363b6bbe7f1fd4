"""Dropout: inverted dropout with masks drawn from the model's seeded generator.

Holds the layer and its hook stage of its own, ``mask``, where a hook can read
the mask of each training step or replace it (to feed the same mask to another
framework, or to switch units off by hand).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from annlens.errors import ConfigError
from annlens.hooks.stages import Stage, register_stage
from annlens.layers.base import Array, Layer

register_stage(
    Stage(
        "mask",
        ("mask",),
        0,
        doc="the dropout mask of this pass, 0 or 1 / (1 - p), in training mode",
    )
)


class Dropout(Layer):
    """Inverted dropout: zero each input with probability ``p``, scale the rest.

    Parameters
    ----------
    p : float
        The probability of dropping a unit, in [0, 1).
    name : str, optional
        The layer name; the model assigns ``dropout_<index>`` when omitted.

    Notes
    -----
    The mask is the *scaled* mask: each entry is ``0`` or ``1 / (1 - p)``,
    shape (batch, features), in the model's dtype. In training mode::

        keep_ij ~ Bernoulli(1 - p)         drawn from model.state.rng
        mask    = keep / (1 - p)
        output  = x * mask
        grad_input = grad_output * mask

    so the expected output equals the input and evaluation mode is the identity
    (no mask, nothing drawn, ``grad_input = grad_output``). The hook stage
    ``mask`` fires in training mode with ``fn(layer, mask)`` before the mask is
    applied; a returned array replaces it for this forward and its backward.

    The uniforms behind a mask are drawn in float64 whatever the model's dtype,
    so one seed gives the same masks in float32 and float64. With ``p = 0``
    nothing is drawn and the mask is all ones.

    References
    ----------
    Srivastava, N. et al. (2014). Dropout: a simple way to prevent neural
    networks from overfitting. JMLR 15, 1929-1958.
    """

    kind: ClassVar[str] = "dropout"
    stages: ClassVar[tuple[str, ...]] = (
        "forward_pre",
        "mask",
        "forward",
        "backward_pre",
        "backward",
    )

    def __init__(self, p: float = 0.5, name: str | None = None) -> None:
        super().__init__(name)
        valid = isinstance(p, (int, float, np.floating)) and not isinstance(p, bool)
        if not valid or not 0.0 <= p < 1.0:
            raise ConfigError(
                f"Dropout p must be a probability in [0, 1), got {p!r}"
                + ("; help: p = 1 would drop every unit" if p == 1 else "")
            )
        self.p = float(p)

    def compute(self, x: Array) -> Array:
        if not self.state.training:
            self.keep(None)
            return x.copy()

        if self.p == 0.0:
            mask = np.ones_like(x)
        else:
            keep = self.state.rng.random(x.shape) >= self.p
            mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        if self.hooked:
            mask = self.hook_table.fire("mask", mask)

        self.keep(mask)
        return x * mask

    def compute_backward(self, grad_output: Array) -> Array:
        (mask,) = self.cache  # type: ignore[misc]
        if mask is None:
            return grad_output
        return grad_output * mask

    def config(self) -> dict[str, Any]:
        return {"p": self.p, "name": self.name}
