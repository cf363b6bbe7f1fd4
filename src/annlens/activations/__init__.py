"""Activation functions: value, first and second derivative, looked up by name."""

from annlens.activations.base import Activation, FunctionActivation
from annlens.activations.check import ActivationCheck, DerivativeCheck, check_activation
from annlens.activations.library import (
    ELU,
    GELU,
    SELU,
    HardTanh,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softplus,
    Softsign,
    Tanh,
)
from annlens.activations.registry import (
    activation_names,
    get_activation,
    register_activation,
)
from annlens.activations.softmax import Softmax, log_softmax, softmax

__all__ = [
    "ELU",
    "GELU",
    "SELU",
    "Activation",
    "ActivationCheck",
    "DerivativeCheck",
    "FunctionActivation",
    "HardTanh",
    "Identity",
    "LeakyReLU",
    "ReLU",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Softsign",
    "Tanh",
    "activation_names",
    "check_activation",
    "get_activation",
    "log_softmax",
    "register_activation",
    "softmax",
]
