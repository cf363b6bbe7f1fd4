"""The Collector contract and what a collector sees when a hook fires.

A collector turns values seen at hook points into rows of the statistics
table. It never registers hooks itself: it says which *table stages* it wants
at each layer (:meth:`Collector.stages`), and the
:class:`~annlens.analysis.collectors.recorder.Recorder` registers one hook per
layer and hook stage, builds one :class:`Observation` per firing and hands it
to every collector that asked for that stage.

Table stages and the hook stages that feed them:

====================  =====================  =====================================
table stage           hook stage             value
====================  =====================  =====================================
``input``             ``forward_pre``        the layer input ``x``
``pre_activation``    ``pre_activation``     ``z``
``post_activation``   ``post_activation``    ``a = f(z)``
``output``            ``forward``            the output of a layer without ``a``
``grad_output``       ``backward_pre``       dL/d output
``delta``             ``pre_activation_grad``  dL/dz
``grad_input``        ``backward``           dL/d input
``param:<p>``         ``gradient``           the parameter the step's forward used
``gradient:<p>``      ``gradient``           its final gradient
``update:<p>``        ``update``             the optimizer's proposed change
``model``             ``loss``               the loss value
====================  =====================  =====================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from annlens.analysis.collectors.reductions import Array, Reductions

if TYPE_CHECKING:
    from annlens.analysis.collectors.recorder import Recorder

#: The hook stage behind each table stage (per-parameter stages by prefix).
HOOK_STAGE: dict[str, str] = {
    "input": "forward_pre",
    "pre_activation": "pre_activation",
    "post_activation": "post_activation",
    "output": "forward",
    "grad_output": "backward_pre",
    "delta": "pre_activation_grad",
    "grad_input": "backward",
    "param": "gradient",
    "gradient": "gradient",
    "update": "update",
    "model": "loss",
}

#: The order of stages within a step in exported tables.
STAGE_ORDER: dict[str, int] = {
    "input": 0,
    "pre_activation": 1,
    "post_activation": 2,
    "output": 3,
    "grad_output": 4,
    "delta": 5,
    "grad_input": 6,
    "param": 7,
    "gradient": 8,
    "update": 9,
    "model": 10,
}

#: The per-parameter stage families, written ``<family>:<parameter name>``.
PARAMETER_FAMILIES = ("param", "gradient", "update")


def stage_family(stage: str) -> str:
    """``"gradient"`` for ``"gradient:W"``; other stages are their own family."""
    return stage.split(":", 1)[0]


def available_stages(layer: Any) -> list[str]:
    """The table stages a layer can feed, in firing order.

    ``output`` is offered only by layers without a ``post_activation`` stage
    (where it would repeat ``a``), and the per-parameter stages only by layers
    with parameters.
    """
    hook_stages = set(getattr(layer, "stages", ()))
    params = list(getattr(layer, "params", {}) or {})
    stages = []
    for stage, hook in HOOK_STAGE.items():
        if hook not in hook_stages or stage == "model":
            continue
        if stage == "output" and "post_activation" in hook_stages:
            continue
        if stage in PARAMETER_FAMILIES:
            stages += [f"{stage}:{name}" for name in params]
        else:
            stages.append(stage)
    return stages


def activation_name(layer: Any) -> str | None:
    """The name of a layer's nonlinearity (Dense or Activation), else None."""
    activation = getattr(layer, "activation", None)
    return getattr(activation, "name", None) if activation is not None else None


@dataclass(slots=True)
class Observation:
    """One hook firing, as the collectors see it.

    Attributes
    ----------
    layer : Layer
        The layer that fired (the model's loss point for stage ``model``).
    name : str
        The layer name used in the table (``"model"`` for the loss).
    stage : str
        The table stage, such as ``"delta"`` or ``"gradient:W"``.
    value : ndarray
        The value passed on there, a read-only view: (batch, units) for
        activations and gradients flowing through layers, the parameter's
        shape for per-parameter stages, () for the loss.
    stats : Reductions
        Reductions of ``value``, shared by every collector of this firing.
    step : int
        ``model.state.step``: optimizer steps taken before this batch.
    epoch : int
        ``model.state.epoch``.
    record : bool
        Whether this step writes rows (``step % every == 0``); collectors that
        accumulate over an epoch also see the other steps.
    epoch_start : bool
        Whether this is the first recorded step of its epoch.
    parameters : bool
        Whether this step writes parameter-level rows (see the recorder's
        ``parameter_every``); ``record`` equals it at per-parameter stages.
    param : str or None
        The parameter name for per-parameter stages.
    """

    layer: Any
    name: str
    stage: str
    value: Array
    stats: Reductions
    step: int
    epoch: int
    record: bool
    epoch_start: bool
    parameters: bool = True
    param: str | None = None


class Collector:
    """Base class: turns observations into rows of the recorder's tables.

    Subclasses set ``name`` (the name ``stats=`` accepts) and ``quantities``
    (what they write), and implement :meth:`stages` and :meth:`observe`.

    Attributes
    ----------
    every_step : bool
        Observe every training step, not only the recorded ones; the default
        answer of :meth:`listens_at`.
    model_wide : bool
        Observe every layer, whatever layer filter the recorder was given.
    """

    name: ClassVar[str] = "collector"
    quantities: ClassVar[tuple[str, ...]] = ()
    every_step: ClassVar[bool] = False
    model_wide: ClassVar[bool] = False

    def stages(self, layer: Any) -> list[str]:
        """The table stages wanted at ``layer`` (empty: none)."""
        return []

    def listens_at(self, step: int, recorder: Recorder) -> bool:
        """Whether to observe ``step`` although the recorder writes no rows there.

        The recorder pauses its hooks at steps where no collector listens, so
        that those steps cost nothing. A collector that needs the step before
        a recorded one (the gradient cosine) or chosen steps (kept tensors)
        says so here; the default is ``every_step``.
        """
        return self.every_step

    def observe(self, obs: Observation, recorder: Recorder) -> None:
        """Fold one firing in; write rows with ``recorder.stats.add``."""

    def end_epoch(self, recorder: Recorder, epoch: int, step: int) -> None:
        """Write epoch-level rows and reset epoch accumulators."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-friendly state to resume with (accumulators, not settings)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def settings(self) -> dict[str, Any]:
        """The constructor arguments, for ``repr`` and the recorder's state."""
        return {}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({inner})"


def wanted(stages: Sequence[str], layer: Any) -> list[str]:
    """The table stages of ``layer`` that a stage list selects.

    A list entry is a stage (``"delta"``), a family (``"gradient"``: every
    ``gradient:<p>``) or one per-parameter stage (``"gradient:W"``).
    """
    chosen = set(stages)
    return [
        stage
        for stage in available_stages(layer)
        if stage in chosen or stage_family(stage) in chosen
    ]
