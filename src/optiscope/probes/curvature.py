"""Curvature of the loss from Hessian-vector products only (PyHessian, Yao et al. 2020).

One import location for the curvature probes, which live in three modules:

- `optiscope.probes.hessian_operator`: `hvp` and the `HessianOperator` every estimate is built on;
- `optiscope.probes.estimators`: the Hessian's diagonal (exact or Hutchinson), R_med, the trace;
- `optiscope.probes.lanczos`: top eigenvalues and the spectral density (stochastic Lanczos
  quadrature).
"""

from optiscope.probes.estimators import (
    DiagonalMethod,
    HessianDiagonal,
    RMed,
    TraceEstimate,
    exact_diagonal,
    hessian_diagonal,
    hessian_trace,
    hutchinson_products,
    quadratic_forms,
    r_med,
    r_med_from_diagonal,
    trace_from_quadratic_forms,
)
from optiscope.probes.hessian_operator import HessianOperator, hvp, rademacher
from optiscope.probes.lanczos import (
    Eigenvalues,
    SpectralDensity,
    hessian_spectral_density,
    lanczos_tridiagonal,
    spectral_density,
    top_eigenvalues,
    top_hessian_eigenvalues,
    tridiagonal_eigh,
)

__all__ = [
    "DiagonalMethod",
    "Eigenvalues",
    "HessianDiagonal",
    "HessianOperator",
    "RMed",
    "SpectralDensity",
    "TraceEstimate",
    "exact_diagonal",
    "hessian_diagonal",
    "hessian_spectral_density",
    "hessian_trace",
    "hutchinson_products",
    "hvp",
    "lanczos_tridiagonal",
    "quadratic_forms",
    "r_med",
    "r_med_from_diagonal",
    "rademacher",
    "spectral_density",
    "top_eigenvalues",
    "top_hessian_eigenvalues",
    "trace_from_quadratic_forms",
    "tridiagonal_eigh",
]
