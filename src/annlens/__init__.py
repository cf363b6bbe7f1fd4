"""annlens: a NumPy neural-network framework for seeing inside a network as it learns.

Forward and backward passes are explicit code, not autodiff; hooks expose every
internal quantity of every layer; the analysis layer turns what hooks see into
statistics, diagnoses, figures and reports. See README.md and docs/.

The engine (layers, model, hooks, losses, optimizers, training) needs NumPy
alone. The experiment runner and the names that need its extras
(``run_experiment``, ``load_config``, ``load_dataset``) are imported on first use,
as are the PyTorch comparison tools (``compare_models``, ``compare_training``,
``build_twin``, ...), which import torch only when a twin is built.
"""

from typing import Any

from annlens.activations import Activation as ActivationFunction
from annlens.activations import (
    FunctionActivation,
    activation_names,
    check_activation,
    get_activation,
)
from annlens.analysis import (
    HessianOperator,
    Recorder,
    gradcheck,
    hessian,
    hessian_eigenvalues,
    hessian_trace,
    hessian_vector_product,
)
from annlens.hooks import HookContext, HookHandle, StopForward
from annlens.layers import Activation, BatchNorm, Dense, Dropout, Layer
from annlens.losses import (
    MAE,
    MSE,
    BinaryCrossEntropy,
    Huber,
    NLLLoss,
    SoftmaxCrossEntropy,
    get_loss,
    loss_names,
)
from annlens.model import Sequential
from annlens.optim import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    L1Penalty,
    L2Penalty,
    MaxNorm,
    NAdam,
    NonNegative,
    RMSProp,
    get_optimizer,
    get_schedule,
)
from annlens.training import Callback, EarlyStopping, Trainer

__version__ = "0.1.0"

_LAZY = {
    "run_experiment": "annlens.experiment",
    "resume_experiment": "annlens.experiment",
    "load_config": "annlens.experiment",
    "load_dataset": "annlens.data",
    "dataset_names": "annlens.data",
    "save_checkpoint": "annlens.io",
    "load_checkpoint": "annlens.io",
    "diagnose": "annlens.analysis.diagnostics",
    "Run": "annlens.experiment",
    "build_twin": "annlens.analysis.compare",
    "compare_models": "annlens.analysis.compare",
    "compare_training": "annlens.analysis.compare",
    "verdict": "annlens.analysis.compare",
    "Comparison": "annlens.analysis.compare",
    "Difference": "annlens.analysis.compare",
    "ParityResult": "annlens.analysis.compare",
    "TrajectoryResult": "annlens.analysis.compare",
    "TrajectoryStep": "annlens.analysis.compare",
    "Verdict": "annlens.analysis.compare",
}

__all__ = [
    "MAE",
    "MSE",
    "SGD",
    "Activation",
    "ActivationFunction",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "BatchNorm",
    "BinaryCrossEntropy",
    "Callback",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "FunctionActivation",
    "HookContext",
    "HessianOperator",
    "HookHandle",
    "Huber",
    "L1Penalty",
    "L2Penalty",
    "Layer",
    "MaxNorm",
    "NAdam",
    "NLLLoss",
    "NonNegative",
    "RMSProp",
    "Recorder",
    "Sequential",
    "SoftmaxCrossEntropy",
    "StopForward",
    "Trainer",
    "__version__",
    "activation_names",
    "check_activation",
    "get_activation",
    "get_loss",
    "get_optimizer",
    "get_schedule",
    "gradcheck",
    "hessian",
    "hessian_eigenvalues",
    "hessian_trace",
    "hessian_vector_product",
    "loss_names",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    """Import the names that need optional extras only when first asked for."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'annlens' has no attribute {name!r}")
