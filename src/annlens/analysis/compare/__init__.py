"""Side by side with PyTorch: the same network, the same weights, the same batch.

- :func:`build_twin`: the PyTorch twin of a Sequential.
- :func:`compare_models`: per hook point, the largest difference of every
  forward and backward quantity on one batch (:class:`ParityResult`).
- :func:`compare_training`: both trained for N steps with the same optimizer,
  penalties, clipping, constraints, schedule and data order, and how far they
  drift (:class:`TrajectoryResult`).
- :func:`verdict`: one pass or fail over the :class:`Comparison` of every
  variant, with the worst difference and where it is (:class:`Verdict`).

torch is imported only when a twin is built; it comes with the
``annlens[torch]`` extra. Results, tables and verdicts need no torch.
"""

from annlens.analysis.compare.lockstep import compare_training
from annlens.analysis.compare.measure import (
    default_atol,
    default_tolerance,
    difference,
)
from annlens.analysis.compare.one_batch import compare_models
from annlens.analysis.compare.parity import Difference, ParityResult
from annlens.analysis.compare.table import (
    parity_html,
    parity_table,
    trajectory_html,
    trajectory_table,
)
from annlens.analysis.compare.trajectory import TrajectoryResult, TrajectoryStep
from annlens.analysis.compare.twin import Twin, build_twin, require_torch
from annlens.analysis.compare.verdict import Comparison, Verdict, verdict

__all__ = [
    "Comparison",
    "Difference",
    "ParityResult",
    "TrajectoryResult",
    "TrajectoryStep",
    "Twin",
    "Verdict",
    "build_twin",
    "compare_models",
    "compare_training",
    "default_atol",
    "default_tolerance",
    "difference",
    "parity_html",
    "parity_table",
    "require_torch",
    "trajectory_html",
    "trajectory_table",
    "verdict",
]
