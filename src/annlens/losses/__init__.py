"""Losses with their gradients with respect to the model output."""

from annlens.losses.base import Loss
from annlens.losses.classification import (
    BinaryCrossEntropy,
    NLLLoss,
    SoftmaxCrossEntropy,
)
from annlens.losses.registry import (
    get_loss,
    loss_class,
    loss_names,
    register_loss,
)
from annlens.losses.regression import MAE, MSE, Huber

__all__ = [
    "MAE",
    "MSE",
    "BinaryCrossEntropy",
    "Huber",
    "Loss",
    "NLLLoss",
    "SoftmaxCrossEntropy",
    "get_loss",
    "loss_class",
    "loss_names",
    "register_loss",
]
