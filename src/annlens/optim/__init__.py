"""Optimizers, learning-rate schedules, regularisers and constraints."""

from annlens.optim.base import Optimizer
from annlens.optim.sgd import SGD

__all__ = ["SGD", "Optimizer"]
