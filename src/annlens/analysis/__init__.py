"""Analysis: checks, collectors, diagnostics and second-order tools on top of hooks."""

from annlens.analysis.gradcheck import GradcheckReport, TensorCheck, gradcheck

__all__ = ["GradcheckReport", "TensorCheck", "gradcheck"]
