"""Second-order analysis: exact Hessian-vector products and the Hessian's spectrum.

- :class:`HessianOperator`, :func:`hessian_vector_product`: ``H v`` by
  Pearlmutter's R-operator through the explicit forward and backward passes
  (``rop.py``, ``rop_batchnorm.py``, ``loss_rop.py``).
- :func:`hessian_eigenvalues` (Lanczos or power iteration), :func:`hessian_trace`
  (Hutchinson) and, for tiny models, the dense :func:`hessian`.

References
----------
Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian.
Neural Computation 6(1), 147-160.
"""

from annlens.analysis.second_order.dense import hessian
from annlens.analysis.second_order.hvp import HessianOperator, hessian_vector_product
from annlens.analysis.second_order.spectrum import (
    HessianEigen,
    hessian_eigenvalues,
    lanczos,
    power_iteration,
)
from annlens.analysis.second_order.trace import (
    TraceEstimate,
    hessian_trace,
    hutchinson_trace,
)

__all__ = [
    "HessianEigen",
    "HessianOperator",
    "TraceEstimate",
    "hessian",
    "hessian_eigenvalues",
    "hessian_trace",
    "hessian_vector_product",
    "hutchinson_trace",
    "lanczos",
    "power_iteration",
]
