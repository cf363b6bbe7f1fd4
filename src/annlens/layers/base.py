"""The Layer contract every layer follows.

Glossary, used in every file of annlens and never mixed:

- ``x``: a layer's input, shape (batch, in_features).
- ``z``: the pre-activation, the affine part ``z = x W + b``.
- ``a``: the post-activation ``a = f(z)``.
- ``grad_output``: dL/d output, the gradient arriving at a layer's output.
- ``grad_input``: dL/d input, the gradient a layer sends to its input.
- ``delta``: dL/dz, the gradient at the pre-activation.
- ``grads["W"]``: dL/dW, the gradient of a parameter, stored under its name.

A layer's :meth:`Layer.forward` is a template: check the input, fire
``forward_pre``, compute (:meth:`Layer.compute`, which keeps what backward
needs), fire ``forward``, return. :meth:`Layer.backward` takes the cache,
fires ``backward_pre``, computes parameter gradients and ``grad_input``
(:meth:`Layer.compute_backward`), fires ``backward``, returns. With no hook
registered, each firing costs one attribute check (``self.hooked``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from annlens.errors import ConfigError, InputError, ShapeError, StateError
from annlens.hooks.context import RunState
from annlens.hooks.table import HookOwner, HookTable

Array = NDArray[np.floating]


#: Names a layer cannot take, and what already uses them.
RESERVED_NAMES = {
    "loss": "the model's loss hook point is called 'loss'",
    "model": "statistics tables use layer 'model' for whole-model rows",
}


class Layer(HookOwner):
    """Base class: a named layer with parameters, gradients, a cache and hook points.

    Attributes
    ----------
    name : str
        Stable name, given or set by the model (``dense_0``, ``batchnorm_1``).
    index : int or None
        Position in the model; None for a standalone layer.
    params : dict of str to ndarray
        The trainable parameters by name (``W``, ``b``).
    grads : dict of str to ndarray
        dL/d parameter, same keys and shapes, set by backward.
    buffers : dict of str to ndarray
        Non-trainable state saved in checkpoints (BatchNorm's running statistics).
    state : RunState
        Mode, step and noise generator, shared with the model.
    hook_table : HookTable
        The hooks registered at this layer's hook points.
    in_model : bool
        Whether a model has built this layer; a layer belongs to one model.
    """

    kind: ClassVar[str] = "layer"
    stages: ClassVar[tuple[str, ...]] = (
        "forward_pre",
        "forward",
        "backward_pre",
        "backward",
        "gradient",
        "update",
    )

    def __init__(self, name: str | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigError(
                f"{type(self).__name__} name must be a non-empty string or None, "
                f"got {name!r}"
            )
        if name in RESERVED_NAMES:
            raise ConfigError(
                f"{type(self).__name__} name {name!r} is taken: "
                f"{RESERVED_NAMES[name]}; help: choose another name"
            )
        self.name = name or self.kind
        self.named = name is not None
        self.index: int | None = None
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.buffers: dict[str, Array] = {}
        self.state = RunState()
        self.dtype: np.dtype = np.dtype(np.float64)
        self.hooked = False
        self.hook_table = HookTable(self)
        self.cache: tuple[Any, ...] | None = None
        self.in_model = False

    # -- shape and initialisation -------------------------------------------

    @property
    def in_features(self) -> int | None:
        """The input width this layer expects (None when it takes any)."""
        return None

    def out_features(self, in_features: int) -> int:
        """The output width for an input of ``in_features``."""
        return in_features

    def build(self, in_features: int) -> None:
        """Learn the input width from the model; layers that infer it override this."""

    def initialize(self, rng: np.random.Generator, dtype: np.dtype) -> None:
        """Draw fresh parameters from ``rng`` in ``dtype``; no parameters by default."""
        self.dtype = np.dtype(dtype)

    # -- forward and backward ------------------------------------------------

    def forward(self, x: Array) -> Array:
        """Compute the output for input ``x`` of shape (batch, in_features)."""
        if type(x) is not np.ndarray or x.dtype != self.dtype:
            x = self.as_array(x, "input")
        self.check_input(x)
        if self.hooked:
            x = self.hook_table.fire("forward_pre", x)

        output = self.compute(x)

        if self.hooked:
            output = self.hook_table.fire("forward", x, output)
        return output

    def backward(self, grad_output: Array) -> Array:
        """Take dL/d output, set ``grads`` and return dL/d input."""
        if self.cache is None:
            raise StateError(
                f"backward called on layer {self.name!r} with nothing kept from "
                "forward; help: call forward first, outside model.no_grad()"
            )
        if type(grad_output) is not np.ndarray or grad_output.dtype != self.dtype:
            grad_output = self.as_array(grad_output, "grad_output")
        if self.hooked:
            grad_output = self.hook_table.fire("backward_pre", grad_output)

        grad_input = self.compute_backward(grad_output)

        if self.hooked:
            grad_input = self.hook_table.fire("backward", grad_input, grad_output)
        return grad_input

    def backward_parameters(self, grad_output: Array) -> None:
        """Set ``grads`` from dL/d output when nothing will read dL/d input.

        The model calls this for its first layer from
        ``model.backward_parameters``, whose caller reads no input gradient
        (PyTorch likewise skips the gradient of an input that needs none). Here
        it is the full :meth:`backward`; layers whose input gradient costs work
        of its own (Dense: a matrix product) skip it when no hook could see it.
        """
        self.backward(grad_output)

    def compute(self, x: Array) -> Array:
        """The layer's own forward maths; keeps ``self.cache`` when gradients are on."""
        raise NotImplementedError(f"{type(self).__name__} does not define compute")

    def compute_backward(self, grad_output: Array) -> Array:
        """The layer's own backward maths, from ``self.cache``."""
        raise NotImplementedError(
            f"{type(self).__name__} does not define compute_backward"
        )

    def keep(self, *values: Any) -> None:
        """Keep ``values`` for backward, only when gradients are on."""
        self.cache = values if self.state.grad_enabled else None

    # -- checks ---------------------------------------------------------------

    def as_array(self, value: Any, what: str) -> Array:
        """``value`` as an ndarray of the layer's dtype, for a layer called directly.

        A model hands its layers arrays of its dtype already; this is the slow
        path for a layer's own ``forward`` or ``backward`` called with a list,
        or with an array of another dtype.
        """
        array = np.asarray(value)
        if array.dtype.kind not in "fiub":
            raise InputError(
                f"layer {self.name!r} takes a numeric {what}, got dtype {array.dtype}"
            )
        return array.astype(self.dtype, copy=False)

    def refuse_activation_result(self, value: Any, z: Array, what: str) -> None:
        """Raise: the activation returned ``value`` where ``z``'s twin belongs.

        Called only when ``value`` is not an ndarray of ``z``'s shape and dtype,
        so the check on the hot path is one comparison per attribute.
        """
        function = getattr(getattr(self, "activation", None), "name", "?")
        where = f"activation {function!r} of layer {self.name!r} returned, for {what},"
        if not isinstance(value, np.ndarray):
            raise ConfigError(
                f"{where} a {type(value).__name__}; expected an ndarray of shape "
                f"{z.shape} and dtype {z.dtype}"
            )
        if value.shape != z.shape:
            raise ShapeError(
                f"{where} shape {value.shape}; expected {z.shape}, the shape of z: "
                "an elementwise activation keeps the shape"
            )
        raise ConfigError(
            f"{where} {type(value).__name__} of dtype {value.dtype}; expected a "
            f"plain ndarray of dtype {z.dtype}; help: return "
            f"numpy.asarray(result, dtype=z.dtype)"
        )

    def check_input(self, x: Array) -> None:
        """Refuse an input that is not 2-D or not ``in_features`` wide."""
        expected = self.in_features
        if x.ndim != 2 or (expected is not None and x.shape[1] != expected):
            width = expected if expected is not None else "in_features"
            raise ShapeError(
                f"layer {self.name!r} expects input of shape (batch, {width}), "
                f"got {x.shape}"
            )

    # -- bookkeeping ------------------------------------------------------------

    def zero_grad(self) -> None:
        """Set every parameter gradient to zero."""
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}

    def parameter_count(self) -> int:
        """The number of trainable scalars."""
        return sum(value.size for value in self.params.values())

    def describe(self) -> dict[str, str]:
        """Columns for the model summary: activation and initialiser."""
        return {"activation": "", "init": ""}

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer (for checkpoints)."""
        return {"name": self.name}

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({arguments})"
