"""Runtime to target and its empirical distribution, as COCO reports it.

For each run and each of a set of targets, the runtime is the first budget (step, gradient
evaluations or seconds) at which the run's metric reaches the target; a run that never reaches
it, or diverged first, has runtime +inf (Hansen et al., "COCO: performance assessment",
arXiv 1605.03560). The ECDF of these runtimes, aggregated over runs (seeds, instances) and
targets, is the fraction of (run, target) pairs solved within a budget; bootstrap bands resample
runs. scipy.stats.ecdf does not accept the infinite runtimes that encode misses, and the bands
resample whole runs (each with all its targets), so both are written here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

#: COCO's default: 51 targets f_gap = 10^2 ... 10^-8, five per decade.
N_TARGETS = 51


def coco_targets(n: int = N_TARGETS, high: float = 1e2, low: float = 1e-8) -> np.ndarray:
    """Log-spaced targets from `high` down to `low` (COCO's 10^2 .. 10^-8 by default)."""
    return log_targets(high, low, n)


def log_targets(start: float, end: float, n: int = N_TARGETS) -> np.ndarray:
    """`n` targets log-spaced from `start` (easy) to `end` (hard); both must be positive."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not (start > 0 and end > 0 and np.isfinite(start) and np.isfinite(end)):
        raise ValueError(f"log-spaced targets need positive finite bounds, got {start!r}, {end!r}")
    return np.geomspace(start, end, n)


def runtimes_to_targets(
    budget: np.ndarray,
    values: np.ndarray,
    targets: np.ndarray,
    goal: Literal["min", "max"] = "min",
) -> np.ndarray:
    """First budget at which each run reaches each target.

    budget: (T,) non-decreasing budgets of the evaluations, shared by the runs, or (R, T).
    values: (R, T) metric values (NaN: not evaluated, or diverged: never counts as reached).
    Returns (R, K) runtimes, +inf where a target is never reached.
    """
    v = np.atleast_2d(np.asarray(values, dtype=float))
    b = np.broadcast_to(np.asarray(budget, dtype=float), v.shape)
    t = np.asarray(targets, dtype=float).ravel()
    if goal not in ("min", "max"):
        raise ValueError(f"goal must be 'min' or 'max', not {goal!r}")
    with np.errstate(invalid="ignore"):
        reached = v[:, :, None] <= t[None, None, :] if goal == "min" else v[:, :, None] >= t[None, None, :]
    reached &= ~np.isnan(v)[:, :, None]
    first = reached.argmax(axis=1)  # (R, K): index of the first True (0 if none)
    out = np.take_along_axis(b, first, axis=1) if b.shape[1] else np.zeros_like(first, dtype=float)
    return np.where(reached.any(axis=1), out, np.inf)


@dataclass(frozen=True)
class RuntimeECDF:
    """Fraction of (run, target) pairs solved within each budget, with a bootstrap band."""

    budgets: np.ndarray
    proportion: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n_runs: int
    n_targets: int
    confidence: float


def ecdf_values(runtimes: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """Fraction of all entries of `runtimes` (inf: never) that are <= each budget."""
    r = np.sort(np.asarray(runtimes, dtype=float).ravel())
    if r.size == 0:
        return np.full(np.shape(budgets), np.nan)
    return np.searchsorted(r, np.asarray(budgets, dtype=float), side="right") / r.size


def runtime_ecdf(
    runtimes: np.ndarray,
    budgets: np.ndarray | None = None,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> RuntimeECDF:
    """ECDF of runtimes (R runs x K targets) aggregated over runs and targets.

    `budgets` defaults to every distinct finite runtime (where the step function jumps). The
    band is the percentile bootstrap over runs: resample R runs with replacement, recompute.
    """
    r = np.atleast_2d(np.asarray(runtimes, dtype=float))
    if np.isnan(r).any():
        raise ValueError("runtimes contain NaN: a target never reached has runtime +inf")
    if budgets is None:
        fin = r[np.isfinite(r)]
        budgets = np.unique(fin) if fin.size else np.array([0.0])
    budgets = np.asarray(budgets, dtype=float)
    prop = ecdf_values(r, budgets)
    n_runs = r.shape[0]
    if n_runs < 2:
        nan = np.full(budgets.shape, np.nan)
        return RuntimeECDF(budgets, prop, nan, nan, n_runs, r.shape[1], confidence)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_runs, size=(n_resamples, n_runs))
    # Per run, how many of its targets are solved within each budget; then sum resampled runs.
    solved = (r[:, :, None] <= budgets[None, None, :]).sum(axis=1)  # (R, B)
    boot = solved[idx].sum(axis=1) / (n_runs * r.shape[1])  # (n_resamples, B)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha], axis=0)
    return RuntimeECDF(budgets, prop, low, high, n_runs, r.shape[1], confidence)
