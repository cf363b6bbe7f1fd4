"""What a hook can know besides its arguments: the run state and the hook context.

:class:`RunState` is shared by a model and all its layers: the training step,
the epoch, train or evaluation mode, whether gradients are being kept, and the
generator that draws noise such as dropout masks. :class:`HookContext` is the
snapshot a hook receives when it asks for one with a ``ctx`` keyword argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RunState:
    """Mutable state shared by a model and its layers.

    Attributes
    ----------
    step : int
        Optimizer steps taken so far.
    epoch : int
        The current epoch (0 before training).
    training : bool
        Training mode (batch statistics, dropout on) or evaluation mode.
    grad_enabled : bool
        False inside ``model.no_grad()``: nothing is kept for backward.
    rng : numpy.random.Generator
        The generator for noise drawn during forward (dropout masks).
    """

    step: int = 0
    epoch: int = 0
    training: bool = True
    grad_enabled: bool = True
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))


@dataclass(frozen=True)
class HookContext:
    """Where and when a hook fires.

    Attributes
    ----------
    point : str
        The hook point, ``<layer name>.<stage>``.
    stage : str
        The stage name.
    layer : str
        The layer name (``"loss"`` for the loss point).
    layer_index : int or None
        The layer's position in its model (None for a standalone layer and for
        the loss point).
    step : int
        Optimizer steps taken so far: 0 during the first training step.
    epoch : int
        The current epoch.
    training : bool
        Whether the model is in training mode.
    grad_enabled : bool
        False inside ``model.no_grad()``.
    """

    point: str
    stage: str
    layer: str
    layer_index: int | None
    step: int
    epoch: int
    training: bool
    grad_enabled: bool
