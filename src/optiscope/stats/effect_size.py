"""Effect sizes for two samples of outcomes, with bootstrap intervals.

scipy.stats has no effect sizes, so these are written here from their definitions:

- Vargha-Delaney A12 = P(X > Y) + 0.5 P(X = Y) (Vargha & Delaney 2000, J. Educ. Behav. Stat.
  25(2)); equals U_x / (n m) for the Mann-Whitney U of `x`. Rank-based, so it is defined with
  infinite values (diverged seeds encoded as the worst outcome).
- Cliff's delta = P(X > Y) - P(X < Y) = 2 A12 - 1 (Cliff 1993, Psychol. Bull. 114(3)).
- Cohen's d = (mean x - mean y) / pooled standard deviation (Cohen 1988); undefined (NaN) when
  either sample holds a non-finite value.
"""

from __future__ import annotations

import numpy as np

from optiscope.stats.bootstrap import Interval, _check_confidence, bootstrap_interval
from optiscope.stats.outcomes import outcome_sample

NAN = float("nan")


def _a12(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Vectorised A12 over the last axis (used by the bootstrap)."""
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    y = np.moveaxis(np.asarray(y, dtype=float), axis, -1)
    gt = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
    eq = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return gt + 0.5 * eq


def _cohens_d(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    y = np.moveaxis(np.asarray(y, dtype=float), axis, -1)
    n, m = x.shape[-1], y.shape[-1]
    pooled = ((n - 1) * x.var(axis=-1, ddof=1) + (m - 1) * y.var(axis=-1, ddof=1)) / (n + m - 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x.mean(axis=-1) - y.mean(axis=-1)) / np.sqrt(pooled)


def _samples(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Both samples flattened and checked (any shape: an effect size pools all the values)."""
    a = outcome_sample(x, "x", "an effect size", flatten=True)
    return a, outcome_sample(y, "y", "an effect size", flatten=True)


def vargha_delaney_a12(
    x: np.ndarray | list[float],
    y: np.ndarray | list[float],
    confidence: float = 0.95,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """A12 = P(X > Y) + 0.5 P(X = Y), with a BCa bootstrap interval (0.5: no effect)."""
    _check_confidence(confidence)
    a, b = _samples(x, y)
    est = float(_a12(a, b))
    if a.size < 2 or b.size < 2:
        return Interval(est, NAN, NAN, confidence, "BCa", "fewer than two values in a sample: no interval")
    return bootstrap_interval((a, b), _a12, est, confidence, n_resamples=n_resamples, seed=seed)


def cliffs_delta(
    x: np.ndarray | list[float],
    y: np.ndarray | list[float],
    confidence: float = 0.95,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Cliff's delta = P(X > Y) - P(X < Y) = 2 A12 - 1, interval mapped from A12's (0: no effect)."""
    a12 = vargha_delaney_a12(x, y, confidence, n_resamples=n_resamples, seed=seed)
    return Interval(2 * a12.estimate - 1, 2 * a12.low - 1, 2 * a12.high - 1, confidence, a12.method, a12.note)


def cohens_d(
    x: np.ndarray | list[float],
    y: np.ndarray | list[float],
    confidence: float = 0.95,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Cohen's d with the pooled (n-1 weighted) standard deviation and a BCa bootstrap interval.

    Defined only when both samples are finite and have at least two values; otherwise NaN with a
    note saying why (a mean over diverged seeds does not exist).
    """
    _check_confidence(confidence)
    a, b = _samples(x, y)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        k = int((~np.isfinite(a)).sum() + (~np.isfinite(b)).sum())
        return Interval(NAN, NAN, NAN, confidence, "BCa", f"{k} infinite (diverged) values: means undefined")
    if a.size < 2 or b.size < 2:
        return Interval(NAN, NAN, NAN, confidence, "BCa", "fewer than two values in a sample")
    est = float(_cohens_d(a, b))
    if not np.isfinite(est):
        return Interval(est, NAN, NAN, confidence, "BCa", "zero variance in both samples")
    return bootstrap_interval((a, b), _cohens_d, est, confidence, n_resamples=n_resamples, seed=seed)
