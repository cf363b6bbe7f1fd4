"""Activation functions: value, first and second derivative, looked up by name."""

from annlens.activations.base import Activation, FunctionActivation
from annlens.activations.library import Identity, ReLU, Sigmoid, Tanh
from annlens.activations.registry import (
    activation_names,
    get_activation,
    register_activation,
)

__all__ = [
    "Activation",
    "FunctionActivation",
    "Identity",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "activation_names",
    "get_activation",
    "register_activation",
]
