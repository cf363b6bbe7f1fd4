"""The PyTorch twin of a Sequential: same architecture, same weights, same dtype.

:func:`build_twin` maps each annlens layer to a torch module (Dense to
``Linear`` and the activation's module, an Activation layer to the module,
BatchNorm to ``BatchNorm1d`` with its running statistics, Dropout to a module
that multiplies by the mask annlens drew) and copies every parameter and
buffer. Anything without a twin raises NotImplementedError naming it.

annlens stores a Dense weight as ``W`` of shape (in, out), so that
``z = x W + b``; ``torch.nn.Linear`` stores ``weight`` of shape (out, in) and
computes ``x weightᵀ + bias``. The twin's weight is therefore ``Wᵀ``, and its
gradient is compared with ``grads["W"]`` after transposing back.

:meth:`Twin.widened` copies a float32 twin into float64 with exactly the same
weights: the values float32 results of both frameworks are measured against.

torch is imported only when a twin is built; without it, :func:`require_torch`
raises an ImportError naming the ``annlens[torch]`` extra.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from annlens.activations import get_activation
from annlens.errors import AnnlensError
from annlens.layers import Activation, Dense
from annlens.layers.base import Array, Layer
from annlens.layers.batchnorm import BatchNorm
from annlens.layers.dropout import Dropout
from annlens.losses import get_loss


def require_torch() -> ModuleType:
    """Import and return torch, or raise an ImportError saying how to install it."""
    try:
        return importlib.import_module("torch")
    except ImportError as error:
        raise ImportError(
            "annlens.compare runs the same network in PyTorch, but torch is not "
            "installed; help: pip install 'annlens[torch]'"
        ) from error


def torch_dtype(dtype: np.dtype) -> Any:
    """The torch dtype of a NumPy float dtype (float32 or float64)."""
    torch = require_torch()
    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[
        np.dtype(dtype)
    ]


@dataclass(frozen=True)
class Pair:
    """One annlens array and the torch tensor that mirrors it.

    Attributes
    ----------
    name : str
        The qualified annlens name, ``dense_0.W`` or ``batchnorm_0.running_var``.
    layer : Layer
        The annlens layer that owns it.
    key : str
        Its key in ``layer.params`` or ``layer.buffers``.
    tensor : torch.Tensor
        The twin's parameter or buffer.
    transpose : bool
        True when the torch tensor holds the transpose (a Linear weight).
    buffer : bool
        True for a buffer (running statistics), False for a parameter.
    """

    name: str
    layer: Layer
    key: str
    tensor: Any
    transpose: bool
    buffer: bool

    def annlens_value(self) -> Array:
        """The annlens array, as it is now."""
        store = self.layer.buffers if self.buffer else self.layer.params
        return store[self.key]

    def torch_value(self) -> Array:
        """The torch tensor as a NumPy copy, in annlens's orientation."""
        value = self.tensor.detach().cpu().numpy().copy()
        return value.T if self.transpose else value

    def torch_grad(self) -> Array | None:
        """The torch gradient in annlens's orientation, None before backward."""
        grad = self.tensor.grad
        if grad is None:
            return None
        value = grad.detach().cpu().numpy().copy()
        return value.T if self.transpose else value


class Twin:
    """A Sequential and its PyTorch twin, with the pairing between them.

    Parameters
    ----------
    model : Sequential
        The annlens model; the twin copies its weights when built.

    Attributes
    ----------
    model : Sequential
        The annlens model.
    module : TorchTwin
        The torch module, one block per annlens layer.
    pairs : list of Pair
        Every parameter and buffer with its torch counterpart.
    dtype : torch.dtype
        The torch dtype matching ``model.dtype``.
    """

    def __init__(self, model: Any) -> None:
        require_torch()
        from annlens.analysis.compare import modules

        self.model = model
        self.dtype = torch_dtype(model.dtype)
        blocks = [_block(layer, modules) for layer in model.layers]
        self.module = modules.TorchTwin([layer.name for layer in model.layers], blocks)
        self.module.to(self.dtype)
        self.pairs = [
            pair
            for layer, block in zip(model.layers, blocks, strict=True)
            for pair in _pairs(layer, block)
        ]
        self.load_from_model()
        self.module.train(model.training)

    def load_from_model(self) -> None:
        """Copy every annlens parameter and buffer into the twin."""
        torch = require_torch()
        with torch.no_grad():
            for pair in self.pairs:
                value = pair.annlens_value()
                value = value.T if pair.transpose else value
                pair.tensor.copy_(torch.tensor(np.ascontiguousarray(value)))

    def set_masks(self, masks: dict[str, Array]) -> None:
        """Give each Dropout twin the mask its annlens layer used, by layer name."""
        from annlens.analysis.compare.modules import as_tensor

        for name, block in zip(self.module.names, self.module.blocks, strict=True):
            if name in masks:
                block.mask = as_tensor(masks[name], self.dtype)

    @contextlib.contextmanager
    def default_dtype(self) -> Iterator[None]:
        """torch's default dtype set to the twin's inside the block.

        torch.optim keeps scalar state (step counts, NAdam's running product
        of momentum factors) in the default dtype, float32 unless changed; in a
        float64 comparison that state must be float64 too.
        """
        torch = require_torch()
        previous = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)
        try:
            yield
        finally:
            torch.set_default_dtype(previous)

    def widened(self) -> Twin:
        """A float64 copy of this twin, holding exactly the same weights.

        Every float32 value is a float64 value too, so the copy computes what
        the twin computes, with float64 rounding: the values float32 results
        are measured against. Take it before the twin runs in training mode,
        whose forward pass moves the BatchNorm running statistics.
        """
        torch = require_torch()
        module = copy.deepcopy(self.module).to(torch.float64)
        named = itertools.chain(
            self.module.named_parameters(), self.module.named_buffers()
        )
        names = {id(tensor): name for name, tensor in named}
        tensors = dict(
            itertools.chain(module.named_parameters(), module.named_buffers())
        )
        wide = copy.copy(self)
        wide.module = module
        wide.dtype = torch.float64
        wide.pairs = [
            dataclasses.replace(pair, tensor=tensors[names[id(pair.tensor)]])
            for pair in self.pairs
        ]
        return wide

    def parameters(self) -> list[Any]:
        """The twin's trainable tensors, in the order of :attr:`pairs`."""
        return [pair.tensor for pair in self.pairs if not pair.buffer]

    def tensor(self, array: Array) -> Any:
        """A torch copy of ``array`` in the twin's dtype."""
        from annlens.analysis.compare.modules import as_tensor

        return as_tensor(array, self.dtype)

    def __repr__(self) -> str:
        return f"Twin({self.module!r}, dtype={self.dtype})"


def build_twin(model: Any) -> Twin:
    """Build the PyTorch twin of ``model``, with its weights copied.

    Parameters
    ----------
    model : Sequential
        Made of Dense, Activation, BatchNorm and Dropout layers.

    Returns
    -------
    Twin
        ``twin.module`` is the torch module, ``twin.pairs`` the pairing of
        parameters and buffers.

    Raises
    ------
    ImportError
        When torch is not installed.
    NotImplementedError
        For a layer or an activation that has no PyTorch twin.
    """
    return Twin(model)


def activation_twin(function: Any, layer: Layer) -> Any:
    """The torch module computing the same function as an annlens activation."""
    from annlens.analysis.compare.modules import ACTIVATION_TWINS

    name = getattr(function, "name", None)
    make = ACTIVATION_TWINS.get(name) if isinstance(name, str) else None
    if make is None or not _is_registered(function):
        raise NotImplementedError(
            f"activation {name!r} of layer {layer.name!r} has no PyTorch twin; "
            f"twins exist for the built-in activations "
            f"{', '.join(sorted(ACTIVATION_TWINS))}"
        )
    return make(function)


def loss_twin(loss: Any) -> Any:
    """A function ``(output, target) -> loss`` computing ``loss`` in torch.

    ``output`` is a torch tensor, ``target`` the annlens target (a NumPy array
    of class indices or of values), converted here.
    """
    torch = require_torch()
    from annlens.analysis.compare.modules import LOSS_TWINS

    name = getattr(loss, "name", None)
    twin = LOSS_TWINS.get(name) if isinstance(name, str) else None
    registered = False
    if twin is not None:
        try:
            registered = type(get_loss(name)) is type(loss)  # type: ignore[arg-type]
        except AnnlensError:
            registered = False
    if twin is None or not registered:
        raise NotImplementedError(
            f"loss {name!r} ({type(loss).__name__}) has no PyTorch twin; twins "
            f"exist for the built-in losses {', '.join(sorted(LOSS_TWINS))}"
        )

    def compute(output: Any, target: Any) -> Any:
        return twin(loss, output, torch.as_tensor(np.asarray(target)))

    return compute


def _is_registered(function: Any) -> bool:
    """Whether ``function`` is the built-in activation its name says it is."""
    try:
        return type(get_activation(function.name)) is type(function)
    except AnnlensError:
        return False


def _block(layer: Layer, modules: ModuleType) -> Any:
    """The twin module of one annlens layer."""
    nn = require_torch().nn
    if isinstance(layer, Dense):
        linear = nn.Linear(layer.n_in, layer.n_out, bias=layer.bias)
        return modules.DenseTwin(linear, activation_twin(layer.activation, layer))
    if isinstance(layer, Activation):
        return modules.ActivationTwin(activation_twin(layer.activation, layer))
    if isinstance(layer, BatchNorm):
        norm = nn.BatchNorm1d(
            layer.num_features,
            eps=layer.eps,
            momentum=layer.momentum,
            affine=layer.affine,
        )
        return modules.BatchNormTwin(norm)
    if isinstance(layer, Dropout):
        return modules.DropoutTwin(layer.p)
    raise NotImplementedError(
        f"layer {layer.name!r} of type {type(layer).__name__} has no PyTorch twin; "
        "twins exist for Dense, Activation, BatchNorm and Dropout"
    )


def _pairs(layer: Layer, block: Any) -> list[Pair]:
    """The parameters and buffers of one layer with their torch tensors."""
    if isinstance(layer, Dense):
        tensors = {"W": (block.linear.weight, True), "b": (block.linear.bias, False)}
        buffers: dict[str, Any] = {}
    elif isinstance(layer, BatchNorm):
        norm = block.norm
        tensors = {"gamma": (norm.weight, False), "beta": (norm.bias, False)}
        buffers = {"running_mean": norm.running_mean, "running_var": norm.running_var}
    else:
        tensors, buffers = {}, {}

    pairs = [
        Pair(f"{layer.name}.{key}", layer, key, *tensors[key], buffer=False)
        for key in layer.params
    ]
    pairs += [
        Pair(f"{layer.name}.{key}", layer, key, buffers[key], False, buffer=True)
        for key in layer.buffers
    ]
    return pairs
