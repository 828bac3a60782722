"""The `[probes]` section of an experiment: which probes, how often, at what cost.

Probes come in cost tiers, as Cockpit's economy/business/full (Schneider et al. 2021); each
probe declares its tier in `optiscope.probes.catalog` and the tiers' lists are derived there
(`optiscope.probes.registry.TIERS`):

- ``cheap``: weights only and one gradient: per-tensor sparsity, Hoyer, norms, ranks, distance
  from init; gradient norm; update-to-weight ratio; margin and dead units (one forward pass);
  cross-class cosine of class-mean activations and their effective rank (one more).
- ``geometry``: cheap, plus the Hessian trace (Hutchinson), R_med and the top Hessian
  eigenvalue(s) by Lanczos. The trace and Lanczos take about 12 Hessian-vector products per
  member; R_med is dearer, because a cheap R_med is a wrong one (issue 18): each tensor gets
  its exact diagonal where that costs at most `r_med_budget` training steps (512 by default:
  every tensor of up to 512 entries), a larger one that many products: exact diagonal entries
  at a random sample (for the median) and at the largest entries of a Hutchinson screen of its
  Hessian block (for the max). `benchmarks/r_med_cost.py` prints what that costs against a
  training step; `r_med_roles` limits it to some tensors, `exact_diagonal_max` restores the
  former whole-model rule (exact up to that many parameters, else `samples` Hutchinson probes).
- ``full``: geometry, plus the gradient noise scale (per-example gradients), the spectral
  density (SLQ), CKA between members and the loss barrier between neighbouring members.

The default estimator sizes keep each tier inside its budget at the default cadence
(`benchmarks/probe_cost.py`: cheap under 10% of training time; geometry under 50% without
R_med's exact diagonals, which `benchmarks/r_med_cost.py` measures on their own); raise
`samples` and `lanczos_steps` for tighter estimates.

Example::

    [probes]
    tier = "geometry"      # cheap | geometry | full
    cadence = "log"        # log: `points` log-spaced steps; every: each `every` steps
    points = 12
    samples = 4            # Hutchinson probes of the trace
    r_med_budget = 512     # training steps per tensor: exact diagonal within it, else sampled
    r_med_roles = ["hidden"]  # R_med of the hidden matrices only (default: every tensor)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field

from optiscope.errors import OptiscopeError
from optiscope.core.roles import ROLES
from optiscope.probes.estimators import DIAGONAL_BUDGET_STEPS, HVP_COST_IN_STEPS
from optiscope.probes.quantity import Tier
from optiscope.probes.registry import PROBE_GROUPS, TIERS

__all__ = [
    "PROBE_GROUPS", "TIERS", "ProbeConfig", "parse_probe_config", "probe_runner_from_config",
    "validate_probe_config",
]


class ProbeConfig(BaseModel):
    """`[probes]`: a tier (or an explicit list of probe groups), a cadence and estimator sizes."""

    model_config = ConfigDict(extra="forbid")

    tier: Tier = "cheap"
    probes: list[str] | None = Field(None, description="probe groups; overrides the tier's list")
    cadence: Literal["log", "every"] = "log"
    every: int = Field(100, ge=1, description="steps between probes with cadence = 'every'")
    points: int = Field(12, ge=2, description="about this many log-spaced probe steps")
    samples: int = Field(4, ge=1, description="Hutchinson probes of the trace (and of R_med under `exact_diagonal_max`)")
    lanczos_steps: int = Field(8, ge=2, description="Lanczos steps for the top eigenvalues")
    top_k: int = Field(1, ge=1, description="how many top Hessian eigenvalues")
    slq_vectors: int = Field(2, ge=1, description="start vectors of stochastic Lanczos quadrature")
    slq_steps: int = Field(24, ge=2, description="Lanczos steps per SLQ vector")
    r_med_budget: float = Field(
        DIAGONAL_BUDGET_STEPS, gt=0,
        description="training steps one tensor's R_med may cost at one probe step (a Hessian-vector "
        f"product counted as {HVP_COST_IN_STEPS:g} steps): the exact diagonal where it fits; a larger "
        "tensor as many products: exact entries at a random sample (median) and at the largest "
        "entries of a Hutchinson screen of its block (max)",
    )
    r_med_roles: list[str] | None = Field(
        None,
        description="roles of the tensors R_med is computed for (e.g. ['hidden']: hidden matrices "
        "only); None: every tensor",
    )
    exact_diagonal_max: int | None = Field(
        None, ge=0,
        description="the former whole-model rule, for reproducing older numbers: exact diagonal "
        "when a member has at most this many parameters, else Hutchinson with `samples` probes "
        "(whose noise inflates the max and so biases R_med upward); overrides `r_med_budget`",
    )
    sparsity_thresholds: list[float] = Field(default_factory=lambda: [1e-3, 1e-2])
    barrier_points: int = Field(11, ge=2, description="points on the line for the loss barrier")

    def groups(self) -> tuple[str, ...]:
        return tuple(self.probes) if self.probes is not None else TIERS[self.tier]

    def steps(self, total_steps: int) -> list[int]:
        """The steps probed in a run of `total_steps`: always 0 and the last step."""
        if self.cadence == "every":
            s = set(range(0, total_steps + 1, self.every))
        else:
            s = set(np.unique(np.round(np.geomspace(1, max(total_steps, 1), self.points - 1))).astype(int).tolist())
        return sorted(s | {0, total_steps})


def parse_probe_config(raw: dict[str, Any]) -> ProbeConfig:
    """Validate a `[probes]` table; errors name the field and the allowed values."""
    unknown = set(raw) - set(ProbeConfig.model_fields)
    if unknown:
        raise OptiscopeError(
            f"[probes]: unknown field(s) {sorted(unknown)}; allowed: {', '.join(ProbeConfig.model_fields)}"
        )
    try:
        cfg = ProbeConfig.model_validate(raw)
    except pydantic.ValidationError as exc:
        parts = []
        for e in exc.errors():
            field = ".".join(str(x) for x in e["loc"])
            parts.append(f"probes.{field}: {e['msg']} (got {e.get('input')!r})")
        raise OptiscopeError("; ".join(parts)) from None
    if cfg.probes is not None:
        bad = [p for p in cfg.probes if p not in PROBE_GROUPS]
        if bad or not cfg.probes:
            raise OptiscopeError(
                f"probes.probes: unknown probe group(s) {bad or '(empty list)'}; allowed: {', '.join(PROBE_GROUPS)}"
            )
    if cfg.r_med_roles is not None:
        bad = [r for r in cfg.r_med_roles if r not in ROLES]
        if bad or not cfg.r_med_roles:
            raise OptiscopeError(
                f"probes.r_med_roles: unknown role(s) {bad or '(empty list)'}; allowed: {', '.join(ROLES)}"
            )
    if any(t < 0 for t in cfg.sparsity_thresholds):
        raise OptiscopeError(f"probes.sparsity_thresholds must be >= 0, got {cfg.sparsity_thresholds}")
    return cfg


def validate_probe_config(raw: dict[str, Any]) -> None:
    """Called by `optiscope.config` for a config with a `[probes]` table."""
    parse_probe_config(raw)


def probe_runner_from_config(cfg: Any) -> Any:
    """The engine's probe runner for an `ExperimentConfig`, or None without `[probes]`."""
    raw = getattr(cfg, "probes", None)
    if not raw:
        return None
    from optiscope.probes.trajectory import TrajectoryProbes

    return TrajectoryProbes(parse_probe_config(raw))
