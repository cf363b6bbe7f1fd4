"""Shared pieces of the hook tests: a small model and an independent NumPy pass.

:func:`reference_pass` recomputes, from the model's weights alone, every value
a hook point carries in one forward, loss and backward pass, with its own
activation formulas, so that the tests compare annlens against code that
shares nothing with it but the weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from annlens import Activation, Dense, Sequential

# name -> (f, f') written out here, independently of annlens.activations
FUNCTIONS = {
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(float)),
    "sigmoid": (
        lambda z: 1 / (1 + np.exp(-z)),
        lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2,
    ),
    "identity": (lambda z: z, np.ones_like),
}

FORWARD_STAGES = ("forward_pre", "pre_activation", "post_activation", "forward")
BACKWARD_STAGES = ("backward_pre", "pre_activation_grad", "backward")


def make_model(seed: int = 0) -> Sequential:
    """Dense(tanh), Dense(relu), a standalone sigmoid, Dense(identity); float64."""
    return Sequential(
        [
            Dense(3, 5, "tanh"),
            Dense(5, 4, "relu"),
            Activation("sigmoid"),
            Dense(4, 2),
        ],
        seed=seed,
        dtype="float64",
    )


def make_batch(seed: int = 1, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, 3) and regression targets (n, 2)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)), rng.normal(size=(n, 2))


def reference_pass(
    model: Sequential, x: np.ndarray, y: np.ndarray | None = None
) -> dict[str, Any]:
    """Every hook point's value for one pass, keyed like ``model.capture``.

    The loss is the mean squared error over every element, as ``MSE()``.
    """
    values: dict[str, Any] = {}
    kept = []
    for layer in model.layers:
        name = layer.name
        values[f"{name}.forward_pre"] = x
        if isinstance(layer, Dense):
            z = x @ layer.params["W"] + layer.params["b"]
            kind = layer.activation.name
        else:
            z, kind = x, layer.activation.name
        a = FUNCTIONS[kind][0](z)
        values[f"{name}.pre_activation"] = z
        values[f"{name}.post_activation"] = a
        values[f"{name}.forward"] = a
        kept.append((layer, x, z, kind))
        x = a
    values["output"] = x
    if y is None:
        return values

    grad = 2 * (x - y) / x.size
    values["loss.loss"] = {"value": float(np.mean((x - y) ** 2)), "grad": grad}
    for layer, x_in, z, kind in reversed(kept):
        name = layer.name
        values[f"{name}.backward_pre"] = grad
        delta = grad * FUNCTIONS[kind][1](z)
        values[f"{name}.pre_activation_grad"] = delta
        if isinstance(layer, Dense):
            values[f"{name}.gradient"] = {"W": x_in.T @ delta, "b": delta.sum(axis=0)}
            grad = delta @ layer.params["W"].T
        else:
            grad = delta
        values[f"{name}.backward"] = grad
    return values


def assert_same(
    actual: Any, expected: Any, where: str = "", tol: float = 1e-12
) -> None:
    """Compare arrays, floats, or dicts of them, with a message naming ``where``."""
    if isinstance(expected, dict):
        assert set(actual) == set(expected), f"{where}: keys {set(actual)}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}[{key}]", tol)
        return
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, err_msg=where)
