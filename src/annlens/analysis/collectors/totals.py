"""Whole-model quantities: the loss and the global gradient norm.

Both are written with layer ``"model"`` and stage ``"model"``: ``loss`` when
the model's ``loss`` hook stage fires (``model.loss(...)``), ``grad_norm``
once every parameter's final gradient of the step has been seen.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from annlens.analysis.collectors.base import Collector, Observation, wanted
from annlens.model.sequential import LossPoint

if TYPE_CHECKING:
    from annlens.analysis.collectors.recorder import Recorder


class LossValue(Collector):
    """The training loss at each recorded step, as ``loss``.

    Notes
    -----
    Read at the ``loss`` hook stage, so the loop must compute the loss with
    ``model.loss(loss, output, target)``. Other per-step values (accuracy)
    can be added with ``recorder.log("accuracy", value)``.
    """

    name = "loss"
    quantities = ("loss",)

    def stages(self, layer: Any) -> list[str]:
        return ["model"] if isinstance(layer, LossPoint) else []

    def observe(self, obs: Observation, recorder: Recorder) -> None:
        value = float(obs.value)
        recorder.stats.add(obs.step, obs.epoch, "model", "model", ("loss",), (value,))


class GradNorm(Collector):
    """The L2 norm of all parameter gradients together, as ``grad_norm``.

    Notes
    -----
    ``grad_norm = √(Σ_p ||grads[p]||²)`` over every parameter of the model,
    whatever layer filter the recorder has; the same norm that global-norm
    clipping uses. The row is written when the last parameter's gradient of
    the step arrives; a second pass at the same step starts the sum again.
    """

    name = "grad_norm"
    quantities = ("grad_norm",)
    model_wide = True

    def __init__(self) -> None:
        self._expected: set[tuple[str, str]] = set()
        self._seen: set[tuple[str, str]] = set()
        self._total = 0.0
        self._step = -1

    def stages(self, layer: Any) -> list[str]:
        chosen = wanted(("gradient",), layer)
        self._expected |= {(layer.name, stage.split(":", 1)[1]) for stage in chosen}
        return chosen

    def observe(self, obs: Observation, recorder: Recorder) -> None:
        assert obs.param is not None, "gradient stages are per parameter"
        key = (obs.name, obs.param)
        if obs.step != self._step or key in self._seen:
            self._step, self._seen, self._total = obs.step, set(), 0.0
        self._seen.add(key)
        self._total += obs.stats.sumsq()
        if self._seen >= self._expected:
            norm = math.sqrt(self._total) if self._total >= 0 else math.nan
            recorder.stats.add(
                obs.step, obs.epoch, "model", "model", ("grad_norm",), (norm,)
            )
            self._seen = set()
            self._total = 0.0
