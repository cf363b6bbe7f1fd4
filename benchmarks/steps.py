"""The timed work: one training step or one inference pass, in annlens and PyTorch.

Each ``*_step`` function builds what it needs once and returns a callable that
runs one step. Both frameworks start from the same weights and see the same
batch in the same dtype. The annlens step is what a training loop does:
forward, loss and its gradient, backward, optimizer step. The PyTorch step is
its idiomatic twin: ``zero_grad``, forward, ``cross_entropy``, ``backward``,
``step``.

Variants of the annlens step:

- ``none``: no hook registered (the hot path with its ``if self.hooked`` checks).
- ``stat``: one statistics hook per layer (mean and standard deviation of each
  layer's output at the ``forward`` stage, kept in a dictionary).
- ``collectors``: the default collector set of :mod:`annlens.analysis.collectors`,
  writing rows at every step, or (``sampled``) at every tenth step.
- ``no_dispatch``: Dense layers whose forward and backward skip every
  ``if self.hooked`` check, the baseline for the cost of the hook machinery.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
from cases import Case
from numpy.typing import NDArray

from annlens import Dense, Sequential
from annlens.layers.base import Array
from annlens.losses import SoftmaxCrossEntropy
from annlens.optim import SGD

Step = Callable[[], None]
Labels = NDArray[np.int64]
LEARNING_RATE = 1e-3


class NoDispatchDense(Dense):
    """Dense with the hook dispatch removed: the same maths, no ``hooked`` checks.

    Used only to measure what the checks cost when no hook is registered.
    """

    def forward(self, x: Array) -> Array:
        self.check_input(x)
        return self.compute(x)

    def backward(self, grad_output: Array) -> Array:
        return self.compute_backward(grad_output)

    def compute(self, x: Array) -> Array:
        z = x @ self.params["W"]
        if self.bias:
            z += self.params["b"]
        a = self.activation.forward(z)
        self.keep(x, z, a)
        return a

    def compute_backward(self, grad_output: Array) -> Array:
        return self.parameter_gradients(grad_output) @ self.params["W"].T

    def parameter_gradients(self, grad_output: Array) -> Array:
        x, z, a = self.cache  # type: ignore[misc]
        delta = self.activation.backward(z, a, grad_output)
        self.grads = {"W": x.T @ delta}
        if self.bias:
            self.grads["b"] = delta.sum(axis=0)
        return delta

    def backward_parameters(self, grad_output: Array) -> None:
        self.parameter_gradients(grad_output)


def batch(case: Case, dtype: str, seed: int = 0) -> tuple[Array, Labels]:
    """Inputs of shape (batch, sizes[0]) in ``dtype`` and class indices."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((case.batch, case.sizes[0])).astype(dtype)
    y = rng.integers(0, case.classes, case.batch)
    return x, y


def annlens_model(case: Case, dtype: str, dense: type[Dense] = Dense) -> Sequential:
    """ReLU between Dense layers, no activation on the last."""
    last = len(case.layers) - 1
    layers = [
        dense(n_in, n_out, "relu" if i < last else None)
        for i, (n_in, n_out) in enumerate(case.layers)
    ]
    return Sequential(layers, seed=0, dtype=dtype)


def annlens_training_step(
    model: Sequential, x: Array, y: Labels, input_grad: bool = False
) -> Step:
    """Forward, softmax cross-entropy, backward and an SGD update.

    Backward is ``backward_parameters``: like PyTorch for an input that needs
    no gradient, the first layer does not compute dL/d input. With
    ``input_grad`` it is ``backward``, which does.
    """
    loss = SoftmaxCrossEntropy()
    optimizer = SGD(model, lr=LEARNING_RATE)
    backward = model.backward if input_grad else model.backward_parameters

    def step() -> None:
        output = model.forward(x)
        _, grad = loss.value_and_grad(output, y)
        backward(grad)
        optimizer.step()

    return step


def annlens_phases(model: Sequential, x: Array, y: Labels) -> dict[str, Step]:
    """The four parts of the annlens step, each timed alone.

    Backward reuses what the last forward kept, so it can run again and again
    by itself. The optimizer steps a copy of the model with fixed gradients, so
    that its drift never reaches the weights the other parts use.
    """
    loss = SoftmaxCrossEntropy()
    output = model.forward(x)
    _, grad = loss.value_and_grad(output, y)
    model.backward_parameters(grad)
    optimizer = SGD(copy.deepcopy(model), lr=LEARNING_RATE)

    def forward() -> None:
        model.forward(x)

    def loss_and_gradient() -> None:
        loss.value_and_grad(output, y)

    def backward() -> None:
        model.backward_parameters(grad)

    return {
        "phase_forward": forward,
        "phase_loss": loss_and_gradient,
        "phase_backward": backward,
        "phase_optimizer": optimizer.step,
    }


def stat_hooks(model: Sequential) -> dict[str, tuple[float, float]]:
    """Register one statistics hook per layer; returns where it writes."""
    seen: dict[str, tuple[float, float]] = {}

    def output_statistics(layer: Any, input: Array, output: Array) -> None:
        seen[layer.name] = (float(output.mean()), float(output.std()))

    model.register_hook("forward", output_statistics)
    return seen


def default_collectors(model: Sequential, every: int = 1) -> Any:
    """Attach the default collector set, writing rows every ``every`` steps."""
    from annlens.analysis.collectors import Recorder

    return Recorder(model, every=every, stats="default").attach()


def annlens_inference(model: Sequential, x: Array) -> Step:
    """The forward pass in evaluation mode with nothing kept for backward."""

    def step() -> None:
        model.predict(x)

    return step


def torch_model(model: Sequential) -> Any:
    """``nn.Sequential`` of Linear and ReLU with the annlens model's weights."""
    import torch
    from torch import nn

    modules: list[nn.Module] = []
    dtype = getattr(torch, model.dtype.name)
    for index, layer in enumerate(model.layers):
        linear = nn.Linear(layer.n_in, layer.n_out).to(dtype)  # type: ignore[attr-defined]
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(layer.params["W"].T.copy()))
            linear.bias.copy_(torch.from_numpy(layer.params["b"].copy()))
        modules.append(linear)
        if index < len(model.layers) - 1:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


def torch_training_step(module: Any, x: Array, y: Labels) -> Step:
    """zero_grad, forward, cross-entropy, backward and an SGD update."""
    import torch
    from torch.nn import functional

    optimizer = torch.optim.SGD(module.parameters(), lr=LEARNING_RATE)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)

    def step() -> None:
        optimizer.zero_grad()
        functional.cross_entropy(module(inputs), targets).backward()
        optimizer.step()

    return step


def torch_inference(module: Any, x: Array) -> Step:
    """The forward pass under ``torch.inference_mode()``."""
    import torch

    inputs = torch.from_numpy(x)
    module.eval()

    def step() -> None:
        with torch.inference_mode():
            module(inputs)

    return step


def matmul_reference(case: Case, dtype: str) -> tuple[Step, int]:
    """A plain NumPy product of the case's widest shape, and its flop count."""
    n_in, n_out = max(case.layers, key=lambda layer: layer[0] * layer[1])
    rng = np.random.default_rng(1)
    a = rng.standard_normal((case.batch, n_in)).astype(dtype)
    b = rng.standard_normal((n_in, n_out)).astype(dtype)

    def step() -> None:
        np.matmul(a, b)

    return step, 2 * case.batch * n_in * n_out


def training_matmuls(case: Case, dtype: str) -> Step:
    """The matrix products of one annlens training step alone, nothing else.

    Forward ``x W`` per layer; backward ``xᵀ delta`` per layer and ``delta Wᵀ``
    for every layer but the first. The time they take is the floor any NumPy
    engine on this BLAS sits on.
    """
    rng = np.random.default_rng(2)
    weights = [
        (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
        for n_in, n_out in case.layers
    ]
    x = rng.standard_normal((case.batch, case.sizes[0])).astype(dtype)

    def step() -> None:
        inputs = [x]
        for w in weights:
            inputs.append(inputs[-1] @ w)
        delta = inputs[-1]
        for w, layer_input in zip(
            reversed(weights), reversed(inputs[:-1]), strict=True
        ):
            layer_input.T @ delta
            if layer_input is not x:
                delta = delta @ w.T

    return step
