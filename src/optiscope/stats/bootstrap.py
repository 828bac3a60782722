"""Bootstrap confidence intervals, via `scipy.stats.bootstrap`.

BCa (bias-corrected and accelerated; Efron 1987) is the default because outcome distributions
over seeds are often skewed; it falls back to the percentile interval where BCa is undefined
(a degenerate bootstrap distribution), and the returned `Interval.method` says which was used.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

STATISTICS: dict[str, Callable[..., np.ndarray]] = {
    "median": np.median,
    "mean": np.mean,
}

Method = Literal["BCa", "percentile", "basic"]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval; `low`/`high` are NaN when undefined."""

    estimate: float
    low: float
    high: float
    confidence: float
    method: str
    note: str = ""

    @property
    def defined(self) -> bool:
        return bool(np.isfinite(self.low) and np.isfinite(self.high))


def bootstrap_ci(
    x: np.ndarray | list[float],
    statistic: str | Callable[..., np.ndarray] = "median",
    confidence: float = 0.95,
    *,
    method: Method = "BCa",
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Bootstrap CI of `statistic` over the finite values of `x` (scipy.stats.bootstrap).

    `statistic` is "median", "mean" or a callable `f(sample, axis)`. BCa is used by default;
    when it is undefined (a degenerate sample, all values equal) the percentile interval is
    returned instead and `method` says so. Fewer than two values give NaN bounds with a note
    saying why.
    """
    if isinstance(statistic, str):
        if statistic not in STATISTICS:
            raise ValueError(
                f"statistic must be one of {', '.join(STATISTICS)} or a callable, not {statistic!r}"
            )
        fn = STATISTICS[statistic]
    else:
        fn = statistic
    _check_confidence(confidence)
    a = np.asarray(x, dtype=float).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), confidence, method, "no values")
    est = float(fn(a))
    if a.size < 2:
        return Interval(est, float("nan"), float("nan"), confidence, method, "one value: no interval")
    if np.all(a == a[0]):
        return Interval(est, est, est, confidence, "degenerate", "all values equal")
    return bootstrap_interval(
        (a,), lambda s, axis: fn(s, axis=axis), est, confidence,
        method=method, n_resamples=n_resamples, seed=seed,
    )


def bootstrap_interval(
    samples: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    estimate: float,
    confidence: float = 0.95,
    *,
    method: Method = "BCa",
    n_resamples: int = 2000,
    seed: int = 0,
    paired: bool = False,
) -> Interval:
    """Bootstrap interval of a (possibly multi-sample) vectorised `statistic(*samples, axis)`.

    Shared by the one-sample CI above, effect sizes (two independent samples) and correlations
    (paired samples). Tries `method`, then percentile.
    """
    for m in dict.fromkeys((method, "percentile")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # DegenerateDataWarning: handled by the fallback
                res = stats.bootstrap(
                    tuple(samples), statistic, confidence_level=confidence,
                    n_resamples=n_resamples, method=m, rng=np.random.default_rng(seed),
                    vectorized=True, paired=paired,
                )
        except Exception:  # BCa undefined for some samples
            continue
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            return Interval(float(estimate), low, high, confidence, m)
    return Interval(float(estimate), float("nan"), float("nan"), confidence, method,
                    "bootstrap interval undefined: too few distinct values in the sample")


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
