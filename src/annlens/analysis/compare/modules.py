"""The PyTorch modules a twin is made of, one per kind of annlens layer.

This file imports torch at the top, so only :mod:`annlens.analysis.compare.twin`
imports it, after checking that torch is installed. Each module has a plain
``forward`` and a ``trace`` that also returns the intermediate tensors the
annlens hook points show (``z``, ``x_hat``), so that their gradients can be
read after ``loss.backward()``.

Activation functions map by their annlens registry name to a torch module
with the same settings (:data:`ACTIVATION_TWINS`), losses by name to the torch
function with the same definition and reduction (:data:`LOSS_TWINS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional

Traced = dict[str, Tensor]
LossTwin = Callable[[Any, Tensor, Tensor], Tensor]

ACTIVATION_TWINS: dict[str, Callable[[Any], nn.Module]] = {
    "identity": lambda f: nn.Identity(),
    "relu": lambda f: nn.ReLU(),
    "sigmoid": lambda f: nn.Sigmoid(),
    "tanh": lambda f: nn.Tanh(),
    "leaky_relu": lambda f: nn.LeakyReLU(f.alpha),
    "elu": lambda f: nn.ELU(f.alpha),
    "selu": lambda f: nn.SELU(),
    "gelu": lambda f: nn.GELU(approximate=f.approximate),
    "softplus": lambda f: nn.Softplus(f.beta, f.threshold),
    "silu": lambda f: nn.SiLU(),
    "softsign": lambda f: nn.Softsign(),
    "hard_tanh": lambda f: nn.Hardtanh(f.min_val, f.max_val),
    "softmax": lambda f: nn.Softmax(dim=1),
}


def _shaped(target: Tensor, output: Tensor) -> Tensor:
    """Targets in the output's dtype, a 1-D target as a column when needed."""
    return target.to(output.dtype).reshape(output.shape)


def _classes(loss: Any, output: Tensor, target: Tensor) -> Tensor:
    """Softmax cross-entropy for class indices or class probabilities."""
    if target.ndim == 1:
        target = target.long()
    else:
        target = target.to(output.dtype)
    return functional.cross_entropy(
        output,
        target,
        reduction=loss.reduction,
        label_smoothing=loss.label_smoothing,
    )


LOSS_TWINS: dict[str, LossTwin] = {
    "mse": lambda loss, out, y: functional.mse_loss(
        out, _shaped(y, out), reduction=loss.reduction
    ),
    "mae": lambda loss, out, y: functional.l1_loss(
        out, _shaped(y, out), reduction=loss.reduction
    ),
    "huber": lambda loss, out, y: functional.huber_loss(
        out, _shaped(y, out), reduction=loss.reduction, delta=loss.delta
    ),
    "binary_cross_entropy": lambda loss, out, y: (
        functional.binary_cross_entropy_with_logits(
            out, _shaped(y, out), reduction=loss.reduction
        )
    ),
    "softmax_cross_entropy": _classes,
    "nll": lambda loss, out, y: functional.nll_loss(
        out, y.long(), reduction=loss.reduction
    ),
}


class DenseTwin(nn.Module):
    """``Linear`` followed by the activation module: the twin of a Dense layer."""

    def __init__(self, linear: nn.Linear, activation: nn.Module) -> None:
        super().__init__()
        self.linear = linear
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.linear(x))

    def trace(self, x: Tensor) -> Traced:
        z = self.linear(x)
        return {"z": z, "output": self.activation(z)}


class ActivationTwin(nn.Module):
    """The activation module alone: the twin of an Activation layer."""

    def __init__(self, activation: nn.Module) -> None:
        super().__init__()
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(x)

    def trace(self, x: Tensor) -> Traced:
        return {"z": x, "output": self.activation(x)}


class BatchNormTwin(nn.Module):
    """A ``BatchNorm1d`` whose trace also shows the normalised input ``x_hat``.

    ``trace`` runs the same normalisation through ``functional.batch_norm``
    without the affine part, on the module's own running statistics, and then
    applies ``weight`` and ``bias`` by hand; ``forward`` is the plain module.
    """

    def __init__(self, norm: nn.BatchNorm1d) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x)

    def trace(self, x: Tensor) -> Traced:
        norm = self.norm
        x_hat = functional.batch_norm(
            x,
            norm.running_mean,
            norm.running_var,
            None,
            None,
            self.training,
            norm.momentum if norm.momentum is not None else 0.0,
            norm.eps,
        )
        output = x_hat * norm.weight + norm.bias if norm.affine else x_hat
        return {"x_hat": x_hat, "output": output}


class DropoutTwin(nn.Module):
    """Multiplies by a mask set from outside: the twin of a Dropout layer.

    annlens draws the mask; the comparison copies it into :attr:`mask` (the
    scaled mask, entries 0 or ``1 / (1 - p)``) before each forward. In
    evaluation mode, or with no mask set, the module is the identity.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.mask: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.mask is None:
            return x
        return x * self.mask

    def trace(self, x: Tensor) -> Traced:
        return {"output": self.forward(x)}


class TorchTwin(nn.Module):
    """The PyTorch twin of a Sequential: one block per annlens layer.

    Attributes
    ----------
    names : list of str
        The annlens layer names, in order.
    blocks : torch.nn.ModuleList
        One twin module per layer.
    """

    def __init__(self, names: list[str], blocks: list[nn.Module]) -> None:
        super().__init__()
        self.names = names
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def trace(self, x: Tensor) -> tuple[Tensor, list[Traced]]:
        """Run forward keeping every layer's input and intermediate tensors.

        Every traced tensor keeps its gradient after ``backward()``: ``input``
        (its gradient is the layer's grad_input), ``z`` (delta), ``x_hat``
        (grad_x_hat) and ``output`` (grad_output).
        """
        x = x.detach().requires_grad_(True)
        traced = []
        for block in self.blocks:
            values = {"input": x, **block.trace(x)}  # type: ignore[operator]
            for value in values.values():
                if value.requires_grad and not value.is_leaf:
                    value.retain_grad()
            traced.append(values)
            x = values["output"]
        return x, traced

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{name}={type(block).__name__}"
            for name, block in zip(self.names, self.blocks, strict=True)
        )
        return f"TorchTwin({inner})"


def as_tensor(array: Any, dtype: torch.dtype) -> Tensor:
    """A torch copy of a NumPy array (never sharing its memory)."""
    return torch.tensor(array, dtype=dtype)
