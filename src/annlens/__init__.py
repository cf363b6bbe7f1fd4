"""annlens: a NumPy neural-network framework for seeing inside a network as it learns.

Forward and backward passes are explicit code, not autodiff; hooks expose every
internal quantity of every layer; the analysis layer turns what hooks see into
statistics, diagnoses, figures and reports. See README.md and docs/.
"""

from annlens.activations import Activation as ActivationFunction
from annlens.activations import FunctionActivation, get_activation
from annlens.layers import Activation, Dense, Layer
from annlens.model import Sequential

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "ActivationFunction",
    "Dense",
    "FunctionActivation",
    "Layer",
    "Sequential",
    "__version__",
    "get_activation",
]
