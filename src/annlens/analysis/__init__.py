"""Analysis: checks, collectors, diagnostics and second-order tools on top of hooks.

The diagnostics need pandas (the ``run`` extra), so their names are imported
on first use; everything else here needs NumPy alone.
"""

from typing import Any

from annlens.analysis.collectors import Recorder
from annlens.analysis.gradcheck import GradcheckReport, TensorCheck, gradcheck
from annlens.analysis.second_order import (
    HessianEigen,
    HessianOperator,
    TraceEstimate,
    hessian,
    hessian_eigenvalues,
    hessian_trace,
    hessian_vector_product,
)

_DIAGNOSTICS = ("DiagnosticSettings", "Finding", "diagnose", "findings_frame")

__all__ = [
    "DiagnosticSettings",
    "Finding",
    "GradcheckReport",
    "HessianEigen",
    "HessianOperator",
    "Recorder",
    "TensorCheck",
    "TraceEstimate",
    "diagnose",
    "findings_frame",
    "gradcheck",
    "hessian",
    "hessian_eigenvalues",
    "hessian_trace",
    "hessian_vector_product",
]


def __getattr__(name: str) -> Any:
    if name in _DIAGNOSTICS:
        from annlens.analysis import diagnostics

        return getattr(diagnostics, name)
    raise AttributeError(f"module 'annlens.analysis' has no attribute {name!r}")
