"""The hook stages: where in a layer a hook fires, its signature, what it replaces.

A hook point is ``<layer name>.<stage>``, such as ``dense_1.pre_activation``.
Where each stage sits inside a Dense layer with activation ``f``; a layer
without an activation (or a standalone Activation layer) has the same stages
minus the ones it has no value for::

        forward_pre     pre_activation     post_activation     forward
             |                |                   |               |
    input ---*--> z = xW + b -*---> a = f(z) -----*---------------*--> output
                                                                       |
    grad_input <-*-- delta W^T <-*-- delta = grad_output f'(z) <-*-----+
                 |               |                               |
             backward    pre_activation_grad               backward_pre

    when the whole backward is done:  gradient  (each parameter's final gradient)
    in the optimizer, before it acts: update    (each parameter's proposed change)
    at the loss, before backward:     loss      (its value and dL/d output)

Every signature starts with the layer (the model's loss point for ``loss``).
A hook returns None to observe, or an array of the same shape and dtype as the
value named by ``replaces`` to change it; later hooks and the layer then see
the replacement.
"""

from __future__ import annotations

from dataclasses import dataclass

from annlens.errors import UnknownNameError, unknown_name


@dataclass(frozen=True)
class Stage:
    """One stage: its name, the arguments after the layer, which one it replaces.

    Attributes
    ----------
    name : str
        The stage name, the part of a hook point after the dot.
    arguments : tuple of str
        The arguments a hook receives after the layer, in order.
    replaces : int
        The index into ``arguments`` of the value a returned array replaces.
    backward : bool
        Whether the stage is reached only after a loss: the loss itself, the
        backward pass and what follows it. A forward-only run never fires it,
        and in ``model.no_grad()`` the backward pass is refused before any of
        these hooks can run.
    per_parameter : bool
        Whether the stage fires once per parameter (``gradient``, ``update``);
        a layer without parameters has no such hook point.
    doc : str
        One line saying what the replaced value is.
    """

    name: str
    arguments: tuple[str, ...]
    replaces: int
    backward: bool = False
    per_parameter: bool = False
    doc: str = ""

    @property
    def signature(self) -> str:
        """The hook's signature, as ``fn(layer, input) -> input | None``."""
        replaced = self.arguments[self.replaces]
        return f"fn(layer, {', '.join(self.arguments)}) -> {replaced} | None"

    def __repr__(self) -> str:
        return f"Stage({self.name!r}: {self.signature})"


STAGES: dict[str, Stage] = {}


def register_stage(stage: Stage) -> Stage:
    """Add a stage (layers with hook points of their own, such as BatchNorm)."""
    STAGES[stage.name] = stage
    return stage


for _stage in (
    Stage("forward_pre", ("input",), 0, doc="the layer input, before anything"),
    Stage("pre_activation", ("z",), 0, doc="z = x W + b, before the activation"),
    Stage("post_activation", ("a",), 0, doc="a = f(z), after the activation"),
    Stage("forward", ("input", "output"), 1, doc="the layer output"),
    Stage(
        "backward_pre",
        ("grad_output",),
        0,
        backward=True,
        doc="dL/d output, as it arrives at the layer",
    ),
    Stage(
        "pre_activation_grad",
        ("delta",),
        0,
        backward=True,
        doc="delta = dL/dz, before the parameter gradients are formed from it",
    ),
    Stage(
        "backward",
        ("grad_input", "grad_output"),
        0,
        backward=True,
        doc="dL/d input, sent to the layer below; layer.grads is already set",
    ),
    Stage(
        "gradient",
        ("name", "grad"),
        1,
        backward=True,
        per_parameter=True,
        doc="a parameter's final gradient for the step",
    ),
    Stage(
        "update",
        ("name", "update"),
        1,
        backward=True,
        per_parameter=True,
        doc="the change the optimizer proposes (param <- param + update)",
    ),
    Stage(
        "loss",
        ("value", "grad"),
        1,
        backward=True,
        doc="dL/d output that starts the backward pass; value is the loss",
    ),
):
    register_stage(_stage)


def get_stage(name: str) -> Stage:
    """Return the stage called ``name``, or raise listing the known stages."""
    if name not in STAGES:
        raise UnknownNameError(unknown_name("hook stage", name, list(STAGES)))
    return STAGES[name]
