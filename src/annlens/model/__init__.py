"""The model: Sequential, its naming, state, modes and hook API."""

from annlens.model.sequential import LossPoint, Sequential, seeded_generator

__all__ = ["LossPoint", "Sequential", "seeded_generator"]
