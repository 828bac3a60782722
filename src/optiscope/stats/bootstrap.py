"""Bootstrap confidence intervals, via `scipy.stats.bootstrap`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

STATISTICS: dict[str, Callable[..., np.ndarray]] = {
    "median": np.median,
    "mean": np.mean,
}


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval; `low`/`high` are NaN when undefined."""

    estimate: float
    low: float
    high: float
    confidence: float
    method: str
    note: str = ""


def bootstrap_ci(
    x: np.ndarray | list[float],
    statistic: str | Callable[..., np.ndarray] = "median",
    confidence: float = 0.95,
    *,
    method: Literal["BCa", "percentile", "basic"] = "BCa",
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Bootstrap CI of `statistic` over the finite values of `x` (scipy.stats.bootstrap).

    BCa is used by default; when it is undefined (a degenerate sample, all values equal) the
    percentile interval is returned instead and `method` says so. Fewer than two values give
    NaN bounds with a note saying why.
    """
    fn = STATISTICS[statistic] if isinstance(statistic, str) else statistic
    a = np.asarray(x, dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), confidence, method, "no values")
    est = float(fn(a))
    if a.size < 2:
        return Interval(est, float("nan"), float("nan"), confidence, method, "one value: no interval")
    if np.all(a == a[0]):
        return Interval(est, est, est, confidence, "degenerate", "all values equal")
    rng = np.random.default_rng(seed)
    for m in (method, "percentile"):
        try:
            res = stats.bootstrap(
                (a,), lambda s, axis: fn(s, axis=axis), confidence_level=confidence,
                n_resamples=n_resamples, method=m, random_state=rng, vectorized=True,
            )
        except Exception:  # BCa undefined for some samples
            continue
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            return Interval(est, low, high, confidence, m)
    return Interval(est, float("nan"), float("nan"), confidence, method, "bootstrap failed")
