"""The hook stages: where in a layer a hook fires, its signature, what it replaces.

A hook point is ``<layer name>.<stage>``, such as ``dense_1.pre_activation``.
Where each stage sits inside a Dense layer with activation ``f``::

    forward_pre        pre_activation      post_activation      forward
        |                    |                    |                 |
    x --+--> z = x W + b ----+----> a = f(z) -----+---------------> output
                                                                      |
    grad_input <--+-- delta W^T <--+-- delta = grad_a f'(z) <--+------+ grad_output
                  |                |                           |
               backward   pre_activation_grad            backward_pre

    after the whole backward:  gradient (each parameter's final gradient)
    in the optimizer:           update   (each parameter's proposed change)
    at the loss:                loss     (its value and the gradient it sends back)

Every signature starts with the layer (the loss object for ``loss``). A hook
returns None to observe, or an array of the same shape and dtype as the value
named in ``replaces`` to change it.
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
        Whether the stage belongs to the backward pass (not armed in no-grad mode).
    """

    name: str
    arguments: tuple[str, ...]
    replaces: int
    backward: bool = False

    @property
    def signature(self) -> str:
        """The hook's signature, as ``fn(layer, input) -> input | None``."""
        replaced = self.arguments[self.replaces]
        return f"fn(layer, {', '.join(self.arguments)}) -> {replaced} | None"


STAGES: dict[str, Stage] = {}


def register_stage(stage: Stage) -> Stage:
    """Add a stage (layers with hook points of their own, such as BatchNorm)."""
    STAGES[stage.name] = stage
    return stage


for _stage in (
    Stage("forward_pre", ("input",), 0),
    Stage("pre_activation", ("z",), 0),
    Stage("post_activation", ("a",), 0),
    Stage("forward", ("input", "output"), 1),
    Stage("backward_pre", ("grad_output",), 0, backward=True),
    Stage("pre_activation_grad", ("delta",), 0, backward=True),
    Stage("backward", ("grad_input", "grad_output"), 0, backward=True),
    Stage("gradient", ("name", "grad"), 1, backward=True),
    Stage("update", ("name", "update"), 1, backward=True),
    Stage("loss", ("value", "grad"), 1, backward=True),
):
    register_stage(_stage)


def get_stage(name: str) -> Stage:
    """Return the stage called ``name``, or raise listing the known stages."""
    if name not in STAGES:
        raise UnknownNameError(unknown_name("hook stage", name, list(STAGES)))
    return STAGES[name]
