"""Optimisation versus generalisation: does a lower training loss mean a better held-out metric?

Spearman's rank correlation (scipy.stats.spearmanr) between final training loss and a held-out
metric, across seeds of one cell or across all runs of a task, with a paired BCa bootstrap
interval (scipy.stats.bootstrap, paired=True). Ranks keep diverged runs (encoded +-inf as the
worst outcome) in the sample; only NaN pairs are dropped, and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from optiscope.stats.bootstrap import Interval, _check_confidence, bootstrap_interval

NAN = float("nan")


@dataclass(frozen=True)
class CorrelationResult:
    """Spearman's rho with its p-value (H0: no monotone association) and bootstrap interval."""

    statistic: float
    pvalue: float
    interval: Interval
    n: int
    n_dropped: int
    note: str = ""

    def confidence_interval(self) -> Interval:
        return self.interval


def _rho(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Vectorised Spearman rho over the last axis: Pearson correlation of the ranks."""
    rx = stats.rankdata(x, axis=axis)
    ry = stats.rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=axis) / np.sqrt((rx**2).sum(axis=axis) * (ry**2).sum(axis=axis))


def spearman(
    x: np.ndarray | list[float],
    y: np.ndarray | list[float],
    confidence: float = 0.95,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
) -> CorrelationResult:
    """Spearman's rho of paired samples x, y with a BCa bootstrap interval over pairs."""
    _check_confidence(confidence)
    a, b = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"x and y must be paired (same length), got {a.size} and {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    dropped = int((~keep).sum())
    if a.size < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        why = "fewer than 3 pairs" if a.size < 3 else "a constant variable"
        return CorrelationResult(NAN, NAN, Interval(NAN, NAN, NAN, confidence, "BCa", why), a.size, dropped, why)
    r = stats.spearmanr(a, b)
    est = float(r.statistic)
    interval = bootstrap_interval(
        (a, b), _rho, est, confidence, n_resamples=n_resamples, seed=seed, paired=True
    )
    return CorrelationResult(est, float(r.pvalue), interval, a.size, dropped)
