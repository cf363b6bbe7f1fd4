"""What a hook can know besides its arguments: the run state and the hook context.

:class:`RunState` is shared by a model and all its layers: the training step,
the epoch, train or evaluation mode, whether gradients are being kept, and the
generator that draws noise such as dropout masks. :class:`HookContext` is the
snapshot a hook receives when it asks for one with a ``ctx`` keyword argument.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

StateWatcher = Callable[["RunState"], None]


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

    Notes
    -----
    Code that acts once per step, such as a sampler that pauses its hooks
    between the steps it reads, can :meth:`watch` the state: the watcher is
    called each time ``step`` or ``epoch`` takes a new value, which costs
    nothing on the layers' hot path.
    """

    def __init__(
        self,
        step: int = 0,
        epoch: int = 0,
        training: bool = True,
        grad_enabled: bool = True,
        rng: np.random.Generator | None = None,
    ) -> None:
        self._step = step
        self._epoch = epoch
        self.training = training
        self.grad_enabled = grad_enabled
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self._watchers: tuple[StateWatcher, ...] = ()

    @property
    def step(self) -> int:
        return self._step

    @step.setter
    def step(self, value: int) -> None:
        if value != self._step:
            self._step = value
            self._notify()

    @property
    def epoch(self) -> int:
        return self._epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        if value != self._epoch:
            self._epoch = value
            self._notify()

    def watch(self, watcher: StateWatcher) -> Callable[[], None]:
        """Call ``watcher(state)`` whenever ``step`` or ``epoch`` changes.

        Returns the function that stops watching (calling it twice is harmless).
        """
        self._watchers = (*self._watchers, watcher)

        def unwatch() -> None:
            self._watchers = tuple(w for w in self._watchers if w is not watcher)

        return unwatch

    def _notify(self) -> None:
        for watcher in self._watchers:
            watcher(self)

    def __repr__(self) -> str:
        mode = "training" if self.training else "evaluation"
        grads = "" if self.grad_enabled else ", no_grad"
        return f"RunState(step={self.step}, epoch={self.epoch}, {mode}{grads})"


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
