"""Performance profiles (Dolan & More 2002, Math. Program. 91) scored as AlgoPerf scores them.

For solver s and problem p with time-to-target t[s, p] (+inf: never reached), the performance
ratio is r[s, p] = t[s, p] / min_s t[s, p]; rho_s(tau) is the fraction of problems with
r[s, p] <= tau. AlgoPerf (Dahl et al. 2023, arXiv 2306.07179) summarises a profile by its
normalised integral (1 / (tau_max - 1)) * integral_1^tau_max rho_s(tau) d tau with tau_max = 4;
since rho_s is a step function the integral is exact: mean_p max(0, tau_max - r[s, p]) /
(tau_max - 1). Nothing in scipy computes these; they are a few lines of numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TAU_MAX = 4.0


@dataclass(frozen=True)
class PerformanceProfile:
    """Ratios, rho(tau) on a grid and the AlgoPerf score of each solver."""

    solvers: list[str]
    problems: list[str]
    ratios: np.ndarray  # (S, P), inf where solver s never reached problem p's target
    taus: np.ndarray
    rho: np.ndarray  # (S, len(taus))
    scores: np.ndarray  # (S,) normalised integral of rho over [1, tau_max]
    tau_max: float

    def rho_at(self, tau: float) -> np.ndarray:
        """rho_s(tau) for every solver, exactly (not read off the grid)."""
        return (self.ratios <= tau).mean(axis=1)


def performance_profile(
    times: np.ndarray | Sequence[Sequence[float]],
    solvers: Sequence[str] | None = None,
    problems: Sequence[str] | None = None,
    *,
    tau_max: float = TAU_MAX,
    taus: np.ndarray | None = None,
) -> PerformanceProfile:
    """Profile of `times[s, p]` (solvers x problems; positive, +inf = failed).

    A problem no solver reaches has ratio +inf for all of them (it counts against everyone).
    """
    t = np.asarray(times, dtype=float)
    if t.ndim != 2 or 0 in t.shape:
        raise ValueError(f"times must be a non-empty (solvers, problems) array, got shape {t.shape}")
    if np.isnan(t).any() or (t <= 0).any():
        raise ValueError("times must be positive, with +inf for a target never reached (no NaN)")
    if tau_max <= 1:
        raise ValueError(f"tau_max must be > 1, got {tau_max}")
    solvers = list(solvers) if solvers is not None else [f"solver {i}" for i in range(t.shape[0])]
    problems = list(problems) if problems is not None else [f"problem {j}" for j in range(t.shape[1])]
    if len(solvers) != t.shape[0] or len(problems) != t.shape[1]:
        raise ValueError("solvers and problems must match the shape of times")
    best = t.min(axis=0)
    with np.errstate(invalid="ignore"):
        ratios = np.where(np.isfinite(best)[None, :], t / best[None, :], np.inf)
    if taus is None:
        taus = np.linspace(1.0, tau_max, 301)
    taus = np.asarray(taus, dtype=float)
    rho = (ratios[:, :, None] <= taus[None, None, :]).mean(axis=1)
    scores = np.clip(tau_max - ratios, 0.0, None).mean(axis=1) / (tau_max - 1)
    return PerformanceProfile(solvers, problems, ratios, taus, rho, scores, tau_max)
