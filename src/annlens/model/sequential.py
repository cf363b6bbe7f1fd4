"""Sequential: a stack of layers run in order.

The model names its layers (``dense_0``, ``dense_1``, ``batchnorm_0``), draws
every weight from one seeded generator in one dtype, checks inputs once at its
edge, runs forward and backward, fires the ``gradient`` stage once the
gradients are final, and lets hooks be registered anywhere by hook point
(those methods live in :mod:`annlens.model.hook_api`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from annlens.errors import (
    ConfigError,
    ShapeError,
    StateError,
    UnknownNameError,
    check_count,
    did_you_mean,
)
from annlens.hooks import HookTable, RunState
from annlens.hooks.table import HookOwner
from annlens.layers.base import Array, Layer
from annlens.losses import get_loss
from annlens.model.hook_api import HookAPI
from annlens.model.inputs import prepare_input
from annlens.model.summary import summary_table


def seeded_generator(seed: int, stream: int) -> np.random.Generator:
    """Generator number ``stream`` of ``seed``: 0 weights, 1 noise, 2 data order."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


class LossPoint(HookOwner):
    """The owner of the model's ``loss`` hook point.

    A hook at ``loss`` is called as ``fn(point, value, grad)``; ``point.loss``
    is the loss object in use, ``value`` the loss and ``grad`` dL/d output.
    """

    stages = ("loss",)

    def __init__(self, state: RunState) -> None:
        self.name = "loss"
        self.index: int | None = None
        self.state = state
        self.loss: Any = None
        self.hooked = False
        self.hook_table = HookTable(self)

    def __repr__(self) -> str:
        return f"LossPoint(loss={self.loss!r})"


class Sequential(HookAPI):
    """Layers applied one after another.

    Parameters
    ----------
    layers : sequence of Layer
        The layers, input side first. Building the model draws their weights,
        so a layer belongs to one model: several models of one architecture
        each need their own layers (a function that returns the list).
    seed : int
        Fixes the weights and the noise (dropout masks); the trainer derives
        the data order from it too.
    dtype : "float32" or "float64"
        The dtype of every parameter and activation; inputs are converted once.
    in_features : int, optional
        The input width, needed only when the first layer does not fix it.

    Examples
    --------
    >>> from annlens.layers import Dense
    >>> model = Sequential([Dense(4, 8, "relu"), Dense(8, 3)], seed=0)
    >>> [name for name in model.parameters()]
    ['dense_0.W', 'dense_0.b', 'dense_1.W', 'dense_1.b']
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        seed: int = 0,
        dtype: Any = "float32",
        in_features: int | None = None,
    ) -> None:
        self.layers = list(layers)
        if not self.layers:
            raise ConfigError("Sequential needs at least one layer")
        for position, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ConfigError(
                    f"Sequential layer {position} must be a Layer, got {layer!r}"
                )
        _check_fresh(self.layers)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ConfigError(f"model dtype must be float32 or float64, got {dtype!r}")
        self.seed = check_count("model seed", seed, low=0)
        self.state = RunState(rng=seeded_generator(self.seed, 1))
        self.loss_point = LossPoint(self.state)
        self.output_shape: tuple[int, ...] = ()
        self.out_features = 0

        self._name_layers()
        self.in_features = self._chain(in_features)
        rng = seeded_generator(self.seed, 0)
        for layer in self.layers:
            layer.state = self.state
            layer.initialize(rng, self.dtype)
            layer.in_model = True

    def _name_layers(self) -> None:
        counts: dict[str, int] = {}
        for index, layer in enumerate(self.layers):
            layer.index = index
            if not layer.named:
                layer.name = f"{layer.kind}_{counts.get(layer.kind, 0)}"
            counts[layer.kind] = counts.get(layer.kind, 0) + 1
        names = [layer.name for layer in self.layers]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConfigError(f"layer names must be unique; repeated: {repeated}")

    def _chain(self, in_features: int | None) -> int:
        """Check that each layer's input width is what the one before gives."""
        width, source = in_features, "the model input"
        for layer in self.layers:
            expected = layer.in_features
            if expected is not None and width is not None and expected != width:
                raise ConfigError(
                    f"layer {layer.name!r} expects {expected} input features, "
                    f"but {source} gives {width}"
                )
            width = expected if width is None else width
            if width is None:
                raise ConfigError(
                    f"the input width of layer {layer.name!r} is unknown; "
                    "help: pass in_features= to Sequential"
                )
            layer.build(width)
            width, source = layer.out_features(width), f"layer {layer.name!r}"
        assert width is not None, "every layer gives an output width"
        self.out_features = width
        first = in_features if in_features is not None else self.layers[0].in_features
        assert first is not None, "the chain check fixes the input width"
        return first

    # -- running ----------------------------------------------------------------

    def forward(self, x: Any) -> Array:
        """Run every layer on the batch ``x`` of shape (batch, in_features).

        When a layer or a hook raises (a :class:`~annlens.hooks.StopForward`
        included), every layer drops what it kept, so that a later backward is
        refused instead of mixing this pass with an earlier one.
        """
        output = prepare_input(x, self.dtype, self.in_features, self.layers[0].name)
        try:
            for layer in self.layers:
                output = layer.forward(output)
        except BaseException:
            for layer in self.layers:
                layer.cache = None
            raise
        self.output_shape = output.shape
        return output

    __call__ = forward

    def backward(self, grad_output: Array, fire_gradient_hooks: bool = True) -> Array:
        """Back-propagate dL/d output through every layer; return dL/d input.

        Parameter gradients are left in each layer's ``grads``. The ``gradient``
        stage fires at the end, unless the caller adds more contributions first
        (the trainer adds regularisation) and calls :meth:`finish_gradients`.
        """
        grad = self._backward_to_first_layer(grad_output)
        grad = self.layers[0].backward(grad)
        if fire_gradient_hooks:
            self.finish_gradients()
        return grad

    def backward_parameters(
        self, grad_output: Array, fire_gradient_hooks: bool = True
    ) -> None:
        """:meth:`backward` for a caller that does not read dL/d input.

        The same parameter gradients and hooks, but the first layer may skip
        computing dL/d input (a Dense layer skips the product ``delta Wᵀ``)
        when no hook on it could see it, as PyTorch does for an input that
        needs no gradient. A training loop loses nothing by calling this.
        """
        grad = self._backward_to_first_layer(grad_output)
        self.layers[0].backward_parameters(grad)
        if fire_gradient_hooks:
            self.finish_gradients()

    def _backward_to_first_layer(self, grad_output: Array) -> Array:
        """Check the caches, then back-propagate through all but the first layer."""
        missing = [layer.name for layer in self.layers if layer.cache is None]
        if missing:
            raise StateError(
                f"backward needs what forward keeps, but layers {missing} kept "
                "nothing: the last forward ran under no_grad() or predict(), was "
                "stopped early, or never ran; help: call model.forward(x) first, "
                "outside model.no_grad()"
            )
        grad = np.asarray(grad_output, dtype=self.dtype)
        if grad.shape != self.output_shape:
            raise ShapeError(
                f"backward takes dL/d output of the shape forward returned, "
                f"{self.output_shape}, at layer {self.layers[-1].name!r}; "
                f"got {grad.shape}"
            )
        for layer in reversed(self.layers[1:]):
            grad = layer.backward(grad)
        return grad

    def finish_gradients(self) -> None:
        """Fire the ``gradient`` stage for each final gradient, last layer first."""
        for layer in reversed(self.layers):
            if layer.hooked:
                for name in layer.params:
                    layer.grads[name] = layer.hook_table.fire(
                        "gradient", name, layer.grads[name]
                    )

    def loss(self, loss: Any, output: Array, target: Any) -> tuple[float, Array]:
        """Return the loss value and dL/d output, firing the ``loss`` stage.

        ``loss`` is a Loss or a registered name (``"mse"``).
        """
        if isinstance(loss, str):
            loss = get_loss(loss)
        if isinstance(loss, type):
            raise ConfigError(
                f"model.loss takes a loss object, got the class {loss.__name__}; "
                f"help: pass {loss.__name__}()"
            )
        value, grad = loss.value_and_grad(output, target)
        if self.loss_point.hooked:
            self.loss_point.loss = loss
            grad = self.loss_point.hook_table.fire("loss", value, grad)
        return value, grad

    def predict(self, x: Any, batch_size: int | None = None) -> Array:
        """The output in evaluation mode with nothing kept for backward."""
        with self.evaluating(), self.no_grad():
            if batch_size is None:
                return self.forward(x)
            check_count(
                "predict batch_size", batch_size, hint="; or None, for one batch"
            )
            x = np.asarray(x)
            parts = [
                self.forward(x[start : start + batch_size])
                for start in range(0, len(x), batch_size)
            ]
            return np.concatenate(parts)

    # -- modes --------------------------------------------------------------------

    def train(self, mode: bool = True) -> Sequential:
        """Training mode: batch statistics, dropout on."""
        self.state.training = mode
        return self

    def eval(self) -> Sequential:
        """Evaluation mode: running statistics, dropout off."""
        return self.train(False)

    @property
    def training(self) -> bool:
        return self.state.training

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[Sequential]:
        """Evaluation mode inside the block, the previous mode after it."""
        previous = self.state.training
        self.state.training = False
        try:
            yield self
        finally:
            self.state.training = previous

    @contextlib.contextmanager
    def no_grad(self) -> Iterator[Sequential]:
        """Inference inside the block: nothing is kept, so backward is refused."""
        previous = self.state.grad_enabled
        self.state.grad_enabled = False
        try:
            yield self
        finally:
            self.state.grad_enabled = previous

    # -- parameters and state --------------------------------------------------------

    def parameters(self) -> dict[str, Array]:
        """The live parameters by qualified name, ``dense_0.W``."""
        return {
            f"{layer.name}.{key}": value
            for layer in self.layers
            for key, value in layer.params.items()
        }

    def gradients(self) -> dict[str, Array]:
        """The current gradients by qualified name, ``dense_0.W``."""
        return {
            f"{layer.name}.{key}": value
            for layer in self.layers
            for key, value in layer.grads.items()
        }

    def zero_grad(self) -> None:
        """Set every parameter gradient to zero."""
        for layer in self.layers:
            layer.zero_grad()

    def parameter_count(self) -> int:
        """The number of trainable scalars."""
        return sum(layer.parameter_count() for layer in self.layers)

    def layer(self, name: str) -> Layer:
        """The layer called ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        names = [layer.name for layer in self.layers]
        raise UnknownNameError(
            f"no layer named {name!r}{did_you_mean(str(name), names)}; "
            f"layers: {', '.join(names)}"
        )

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __getitem__(self, key: int | str) -> Layer:
        """The layer at position ``key``, or the layer named ``key``."""
        if isinstance(key, str):
            return self.layer(key)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if -len(self.layers) <= key < len(self.layers):
                return self.layers[key]
            raise ConfigError(
                f"layer index {key} is out of range for a model of "
                f"{len(self.layers)} layers"
            )
        raise ConfigError(
            f"a model is indexed by layer position or name, got {key!r}; help: a "
            "layer belongs to one model, so to use part of one build new layers "
            "and copy the weights with load_state_dict"
        )

    def state_dict(self) -> dict[str, Array]:
        """Copies of every parameter and buffer by qualified name."""
        state = {}
        for layer in self.layers:
            for key, value in {**layer.params, **layer.buffers}.items():
                state[f"{layer.name}.{key}"] = value.copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load parameters and buffers; check everything before changing anything."""
        expected = {
            f"{layer.name}.{key}": (layer, store, key)
            for layer in self.layers
            for store in (layer.params, layer.buffers)
            for key in store
        }
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ConfigError(
                f"state does not fit this model: missing {missing}, "
                f"unexpected {unexpected}"
            )
        arrays = {}
        for name, (_, store, key) in expected.items():
            value = np.asarray(state[name])
            if value.dtype.kind not in "fiub":
                raise ConfigError(
                    f"state entry {name!r} must hold real numbers, got dtype "
                    f"{value.dtype}; nothing was changed"
                )
            if value.shape != store[key].shape:
                raise ShapeError(
                    f"state entry {name!r} has shape {value.shape}; "
                    f"the model expects {store[key].shape}"
                )
            arrays[name] = np.array(value, dtype=self.dtype)
        for name, (_, store, key) in expected.items():
            store[key] = arrays[name]

    # -- display --------------------------------------------------------------------

    def summary(self) -> str:
        """A table of layers, output shapes, parameter counts, activations, inits."""
        return summary_table(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{inner}], seed={self.seed}, dtype={self.dtype.name!r})"


def _check_fresh(layers: Sequence[Layer]) -> None:
    """Refuse a layer listed twice, or one that another model already built.

    Building a model draws every layer's weights afresh and gives it the
    model's run state, so taking in a layer of another model would overwrite
    that model's (perhaps trained) weights and tie the two together.
    """
    first: dict[int, int] = {}
    for position, layer in enumerate(layers):
        if id(layer) in first:
            raise ConfigError(
                f"the same {type(layer).__name__} object is Sequential layer "
                f"{first[id(layer)]} and layer {position}; each position needs a "
                "layer of its own, since a layer keeps its own weights and what "
                f"its backward needs; help: build a second {type(layer).__name__}"
            )
        first[id(layer)] = position
        if getattr(layer, "in_model", False):
            raise ConfigError(
                f"Sequential layer {position} ({layer.name!r}) already belongs to a "
                "model; building this one would draw its weights afresh, "
                "overwriting that model's, and tie the two models' state "
                "together; help: build new layers for each model (a function "
                "that returns the list), and copy weights over with "
                "new_model.load_state_dict(...)"
            )
