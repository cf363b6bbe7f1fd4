"""Layers: the Layer contract, Dense, Activation, BatchNorm, Dropout, initialisers."""

from annlens.layers.activation import Activation
from annlens.layers.base import Layer
from annlens.layers.batchnorm import BatchNorm
from annlens.layers.dense import Dense
from annlens.layers.dropout import Dropout
from annlens.layers.init import get_initializer, initializer_names

__all__ = [
    "Activation",
    "BatchNorm",
    "Dense",
    "Dropout",
    "Layer",
    "get_initializer",
    "initializer_names",
]
