"""Probes: local geometry along trajectories and properties of the solutions (issue 6).

Functional, in the style of `torch.func`: a loss is a function of a params dict, and every probe
takes ``ensemble_dims`` (0: one member; 1: axis 0 of every tensor indexes members and the probe
is vmapped over them, with the loss taking each member's batch: ``loss_fn(params, batch)``).

- curvature (hessian_operator, estimators, lanczos): `hvp`, `hessian_diagonal`, `r_med`,
  `hessian_trace`, `top_hessian_eigenvalues`, `hessian_spectral_density` (each reports the
  Hessian-vector products it spent);
- solution: per-tensor sparsity, Hoyer, effective and stable rank, norms, distance from init;
- network: dead units, margin, linear CKA between members, loss barrier (mode connectivity);
- dynamics: gradient norm, update-to-weight ratio, gradient noise scale;
- quantity / catalog / registry: each probe run along trajectories, with its tier, cost and the
  metrics (goal, unit, description) it writes; tiers and metric lists derived from them;
- schedule / trajectory: the `[probes]` config section and the engine's probe runner.
"""

from optiscope.probes.curvature import (
    Eigenvalues,
    HessianDiagonal,
    HessianOperator,
    RMed,
    SpectralDensity,
    TraceEstimate,
    hessian_diagonal,
    hessian_spectral_density,
    hessian_trace,
    hvp,
    r_med,
    r_med_from_diagonal,
    top_hessian_eigenvalues,
)
from optiscope.probes.dynamics import (
    NoiseScale,
    gradient_noise_scale,
    gradient_norm,
    gradients,
    update_to_weight_ratio,
)
from optiscope.probes.network import (
    classification_margin,
    dead_unit_fraction,
    linear_cka,
    linear_cka_matrix,
    loss_along_line,
    loss_barrier,
)
from optiscope.probes.registry import PROBE_GROUPS, TIERS, metric_info, probe_metric_info
from optiscope.probes.solution import (
    effective_rank,
    frobenius_norm,
    hoyer_sparsity,
    relative_distance,
    rms_rms_norm,
    sparsity,
    spectral_norm,
    stable_rank,
    tensor_properties,
)

__all__ = [
    "Eigenvalues",
    "HessianDiagonal",
    "HessianOperator",
    "NoiseScale",
    "PROBE_GROUPS",
    "RMed",
    "TIERS",
    "SpectralDensity",
    "TraceEstimate",
    "classification_margin",
    "dead_unit_fraction",
    "effective_rank",
    "frobenius_norm",
    "gradient_noise_scale",
    "gradient_norm",
    "gradients",
    "hessian_diagonal",
    "hessian_spectral_density",
    "hessian_trace",
    "hoyer_sparsity",
    "hvp",
    "linear_cka",
    "linear_cka_matrix",
    "loss_along_line",
    "loss_barrier",
    "metric_info",
    "probe_metric_info",
    "r_med",
    "r_med_from_diagonal",
    "relative_distance",
    "rms_rms_norm",
    "sparsity",
    "spectral_norm",
    "stable_rank",
    "tensor_properties",
    "top_hessian_eigenvalues",
    "update_to_weight_ratio",
]
