"""Per-cell summaries of an outcome over seeds, and success rates with Wilson intervals.

A cell's seeds split into those that finished (finite outcome) and those that diverged. Location
and spread (median, mean, quantiles, BCa intervals) describe the finished seeds; the success
rate with its Wilson interval (scipy.stats.binomtest) says how many those are. Both are always
shown together, so a diverged seed is never silently dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from optiscope.stats.bootstrap import Interval, _check_confidence, bootstrap_ci

NAN = float("nan")


@dataclass(frozen=True)
class Proportion:
    """k successes out of n with a confidence interval for the rate."""

    k: int
    n: int
    estimate: float
    low: float
    high: float
    confidence: float
    method: str = "wilson"


def success_rate(k: int, n: int, confidence: float = 0.95) -> Proportion:
    """Rate k/n with the Wilson score interval (scipy.stats.binomtest(...).proportion_ci).

    Wilson rather than the normal (Wald) interval because it stays inside [0, 1] and keeps its
    coverage at k = 0 or k = n, which is common here (no seed diverged).
    """
    _check_confidence(confidence)
    if not (isinstance(k, int | np.integer) and isinstance(n, int | np.integer)) or n < 0 or not 0 <= k <= n:
        raise ValueError(f"need integers 0 <= k <= n, got k={k!r}, n={n!r}")
    if n == 0:
        return Proportion(0, 0, NAN, NAN, NAN, confidence)
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return Proportion(int(k), int(n), k / n, float(ci.low), float(ci.high), confidence)


@dataclass(frozen=True)
class CellSummary:
    """Distribution of one cell's outcome over seeds (finished seeds; see `success`)."""

    n: int
    n_finite: int
    median: float
    mean: float
    std: float
    q25: float
    q75: float
    minimum: float
    maximum: float
    median_ci: Interval
    mean_ci: Interval
    success: Proportion
    note: str = ""

    def row(self) -> dict[str, float | int | str]:
        """A flat dict for tables and CSV/Parquet export."""
        out: dict[str, float | int | str] = {
            k: v for k, v in asdict(self).items() if k not in ("median_ci", "mean_ci", "success")
        }
        out.update(
            median_ci_low=self.median_ci.low, median_ci_high=self.median_ci.high,
            median_ci_method=self.median_ci.method,
            mean_ci_low=self.mean_ci.low, mean_ci_high=self.mean_ci.high,
            success_rate=self.success.estimate, success_low=self.success.low,
            success_high=self.success.high,
        )
        return out


def summarize(
    values: np.ndarray | list[float], confidence: float = 0.95, *, n_resamples: int = 2000, seed: int = 0
) -> CellSummary:
    """Summary of one cell: non-finite values are diverged seeds (counted, not described)."""
    a = np.asarray(values, dtype=float).ravel()
    fin = a[np.isfinite(a)]
    success = success_rate(int(fin.size), int(a.size), confidence)
    kw = {"n_resamples": n_resamples, "seed": seed}
    med_ci = bootstrap_ci(fin, "median", confidence, **kw)
    mean_ci = bootstrap_ci(fin, "mean", confidence, **kw)
    if fin.size == 0:
        note = "no seed finished (all diverged or failed): no statistic" if a.size else "no seeds"
        return CellSummary(a.size, 0, NAN, NAN, NAN, NAN, NAN, NAN, NAN, med_ci, mean_ci, success, note)
    note = "one seed: no interval or spread" if fin.size == 1 else ""
    if fin.size < a.size:
        note = (note + "; " if note else "") + f"{a.size - fin.size} seed(s) diverged: described over {fin.size}"
    q25, q75 = np.quantile(fin, [0.25, 0.75])
    return CellSummary(
        n=a.size, n_finite=fin.size, median=float(np.median(fin)), mean=float(fin.mean()),
        std=float(fin.std(ddof=1)) if fin.size > 1 else NAN, q25=float(q25), q75=float(q75),
        minimum=float(fin.min()), maximum=float(fin.max()), median_ci=med_ci, mean_ci=mean_ci,
        success=success, note=note,
    )
