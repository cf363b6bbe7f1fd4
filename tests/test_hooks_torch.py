"""Every hook stage reports what PyTorch's hooks report for the same weights.

The annlens model Dense(tanh), Dense(relu), Activation(sigmoid), Dense is the
PyTorch model Sequential(Linear, Tanh, Linear, ReLU, Sigmoid, Linear). Module
forward hooks, full backward hooks and tensor hooks on each module give the
reference for the stage that sits at the same place; float64, 1e-10.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from annlens import Sequential
from annlens.losses import MSE
from annlens.optim import SGD
from hooks_support import BACKWARD_STAGES, FORWARD_STAGES, make_batch, make_model

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

TOL = 1e-10

# annlens layer -> (module index of its affine part or None, index of its
# nonlinearity or None), in torch.nn.Sequential(Linear, Tanh, Linear, ReLU,
# Sigmoid, Linear)
PLACES = {
    "dense_0": (0, 1),
    "dense_1": (2, 3),
    "activation_0": (None, 4),
    "dense_2": (5, None),
}


def torch_twin(model: Sequential) -> Any:
    """The PyTorch network with the annlens model's weights."""
    nn = torch.nn
    dense = [layer for layer in model.layers if layer.params]
    linears = [nn.Linear(d.params["W"].shape[0], d.params["W"].shape[1]) for d in dense]
    net = nn.Sequential(
        linears[0], nn.Tanh(), linears[1], nn.ReLU(), nn.Sigmoid(), linears[2]
    ).double()
    with torch.no_grad():
        for linear, layer in zip(linears, dense, strict=True):
            linear.weight.copy_(torch.from_numpy(layer.params["W"].T.copy()))
            linear.bias.copy_(torch.from_numpy(layer.params["b"].copy()))
    return net


def torch_pass(net: Any, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Run PyTorch with hooks on every module; return what each one reported."""
    seen: dict[str, Any] = {"backward_order": []}

    def forward_hook(index: int) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            seen[f"{index}.input"] = args[0].detach().numpy().copy()
            seen[f"{index}.output"] = output.detach().numpy().copy()
            output.register_hook(
                lambda g: seen.__setitem__(f"{index}.tensor_grad", g.numpy().copy())
            )

        return hook

    def backward_hook(index: int) -> Any:
        def hook(module: Any, grad_input: Any, grad_output: Any) -> None:
            seen["backward_order"].append(index)
            seen[f"{index}.grad_input"] = grad_input[0].numpy().copy()
            seen[f"{index}.grad_output"] = grad_output[0].numpy().copy()

        return hook

    handles = []
    for index, module in enumerate(net):
        handles.append(module.register_forward_hook(forward_hook(index)))
        handles.append(module.register_full_backward_hook(backward_hook(index)))
    inputs = torch.from_numpy(x).requires_grad_(True)
    output = net(inputs)
    output.register_hook(lambda g: seen.__setitem__("loss.grad", g.numpy().copy()))
    loss = torch.nn.functional.mse_loss(output, torch.from_numpy(y))
    loss.backward()
    seen["loss.value"] = loss.item()
    for handle in handles:
        handle.remove()
    return seen


def expected_from_torch(seen: dict[str, Any], net: Any) -> dict[str, Any]:
    """The annlens hook points, filled from what PyTorch reported."""
    expected: dict[str, Any] = {}
    for name, (affine, nonlinear) in PLACES.items():
        first = affine if affine is not None else nonlinear
        last = nonlinear if nonlinear is not None else affine
        expected[f"{name}.forward_pre"] = seen[f"{first}.input"]
        expected[f"{name}.pre_activation"] = (
            seen[f"{affine}.output"] if affine is not None else seen[f"{last}.input"]
        )
        expected[f"{name}.post_activation"] = seen[f"{last}.output"]
        expected[f"{name}.forward"] = seen[f"{last}.output"]
        expected[f"{name}.backward_pre"] = seen[f"{last}.grad_output"]
        # delta: the tensor hook on the Linear output, or what the activation
        # module sends back
        expected[f"{name}.pre_activation_grad"] = (
            seen[f"{affine}.tensor_grad"]
            if affine is not None
            else seen[f"{nonlinear}.grad_input"]
        )
        expected[f"{name}.backward"] = seen[f"{first}.grad_input"]
        if affine is not None:
            linear = net[affine]
            expected[f"{name}.gradient"] = {
                "W": linear.weight.grad.numpy().T,
                "b": linear.bias.grad.numpy(),
            }
    expected["loss.loss"] = {"value": seen["loss.value"], "grad": seen["loss.grad"]}
    return expected


def close(actual: Any, expected: Any, where: str) -> None:
    if isinstance(expected, dict):
        for key in expected:
            close(actual[key], expected[key], f"{where}[{key}]")
        return
    np.testing.assert_allclose(actual, expected, rtol=TOL, atol=TOL, err_msg=where)


@pytest.fixture
def both() -> tuple[Any, Any, dict[str, Any], np.ndarray, np.ndarray]:
    model = make_model(seed=4)
    net = torch_twin(model)
    x, y = make_batch(seed=9, n=7)
    seen = torch_pass(net, x, y)
    cache = model.capture(x, y, loss=MSE())
    return model, cache, expected_from_torch(seen, net), x, seen


def test_forward_stages_equal_pytorch_module_forward_hooks(both: Any) -> None:
    model, cache, expected, _, _ = both

    for name in PLACES:
        for stage in FORWARD_STAGES:
            point = f"{name}.{stage}"
            close(cache[point], expected[point], point)


def test_backward_stages_equal_pytorch_full_backward_and_tensor_hooks(
    both: Any,
) -> None:
    model, cache, expected, _, _ = both

    for name in PLACES:
        for stage in BACKWARD_STAGES:
            point = f"{name}.{stage}"
            close(cache[point], expected[point], point)


def test_delta_equals_what_the_activation_module_sends_back_to_its_linear(
    both: Any,
) -> None:
    _, cache, _, _, seen = both

    close(cache["dense_0.pre_activation_grad"], seen["1.grad_input"], "tanh")
    close(cache["dense_1.pre_activation_grad"], seen["3.grad_input"], "relu")
    close(cache["dense_0.pre_activation_grad"], seen["0.grad_output"], "linear")


def test_gradient_stage_equals_pytorch_parameter_grads(both: Any) -> None:
    _, cache, expected, _, _ = both

    for name in ("dense_0", "dense_1", "dense_2"):
        close(cache[f"{name}.gradient"], expected[f"{name}.gradient"], name)


def test_loss_stage_equals_pytorch_mse_and_its_output_gradient(both: Any) -> None:
    _, cache, expected, _, _ = both

    close(cache["loss.loss"], expected["loss.loss"], "loss")


def test_backward_hooks_fire_in_the_same_reverse_order_as_pytorch(both: Any) -> None:
    model, _, _, x, seen = both
    order = []
    model.register_hook("backward", lambda layer, gi, go: order.append(layer.name))
    model.capture(x, np.zeros((len(x), 2)), loss=MSE())

    torch_layers = []
    for index in seen["backward_order"]:
        name = next(n for n, place in PLACES.items() if index in place)
        if name not in torch_layers:
            torch_layers.append(name)
    assert order == torch_layers == ["dense_2", "activation_0", "dense_1", "dense_0"]


def test_update_stage_equals_the_change_pytorch_sgd_makes(both: Any) -> None:
    model, _, _, x, _ = both
    net = torch_twin(model)
    y = np.random.default_rng(3).normal(size=(len(x), 2))
    updates: dict[str, list[np.ndarray]] = {}
    model.register_hook(
        "update",
        lambda layer, name, u: updates.setdefault(f"{layer.name}.{name}", []).append(
            u.copy()
        ),
    )
    optimizer = SGD(model, lr=0.05, momentum=0.9)
    reference = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    linears = {"dense_0": net[0], "dense_1": net[2], "dense_2": net[5]}

    for step in range(2):
        output = model.forward(x)
        model.backward(model.loss(MSE(), output, y)[1])
        optimizer.step()

        before = {
            n: (m.weight.detach().clone(), m.bias.detach().clone())
            for n, m in linears.items()
        }
        reference.zero_grad()
        torch.nn.functional.mse_loss(
            net(torch.from_numpy(x)), torch.from_numpy(y)
        ).backward()
        reference.step()
        for name, module in linears.items():
            w_change = (module.weight.detach() - before[name][0]).numpy().T
            b_change = (module.bias.detach() - before[name][1]).numpy()
            close(updates[f"{name}.W"][step], w_change, f"{name}.W step {step}")
            close(updates[f"{name}.b"][step], b_change, f"{name}.b step {step}")
