"""Side by side with PyTorch: the same network, the same weights, the same batch.

- :func:`build_twin`: the PyTorch twin of a Sequential.
- :func:`compare_models`: per hook point, the largest difference of every
  forward and backward quantity on one batch (:class:`ParityResult`).
- :func:`compare_training`: both trained for N steps with the same optimizer
  and data order, and how far they drift (:class:`TrajectoryResult`).

torch is imported only when one of these runs; it comes with the
``annlens[torch]`` extra.
"""

from annlens.analysis.compare.parity import (
    Difference,
    ParityResult,
    compare_models,
    difference,
)
from annlens.analysis.compare.table import (
    parity_html,
    parity_table,
    trajectory_html,
    trajectory_table,
)
from annlens.analysis.compare.trajectory import (
    TrajectoryResult,
    TrajectoryStep,
    compare_training,
)
from annlens.analysis.compare.twin import Twin, build_twin, require_torch

__all__ = [
    "Difference",
    "ParityResult",
    "TrajectoryResult",
    "TrajectoryStep",
    "Twin",
    "build_twin",
    "compare_models",
    "compare_training",
    "difference",
    "parity_html",
    "parity_table",
    "require_torch",
    "trajectory_html",
    "trajectory_table",
]
