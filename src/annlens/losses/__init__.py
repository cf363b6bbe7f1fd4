"""Losses with their gradients with respect to the model output."""

from annlens.losses.base import Loss

__all__ = ["Loss"]
