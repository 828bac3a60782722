"""Power of a hypothesis' test at its smallest effect that matters, for the seeds it has.

A hypothesis that does not hold is called *fails* only when its test had the power asked
(default 0.8) to detect `min_effect`; otherwise *inconclusive*: not enough seeds to tell. Power
is computed at level alpha / m for a family of m hypotheses (Bonferroni, the strictest step of
Holm's procedure), so that "fails" is never claimed on power Holm's correction would not give.

- Mann-Whitney (and the permutation test, approximated by it): Noether's (1987, JASA 82(398))
  normal approximation. With p = P(A > B) + P(A = B)/2 = (1 + delta)/2 for Cliff's delta,
  power = Phi(|p - 1/2| sqrt(12 n m / (n + m + 1)) - z_{1-level}) (level halved two-sided).
  It uses U's null variance, larger than under the alternative, so it errs low (measured: 0.754
  against a simulated 0.795 at n = 15 a side, delta = 0.5): towards "inconclusive", not "fails".
- Equivalence (TOST of a location shift): the margin is turned into a Cliff's delta under a
  normal location model, delta = 2 Phi(margin / (sigma sqrt 2)) - 1, with sigma the pooled
  within-cell spread (scaled MAD); at a true shift of 0 each one-sided test has the power above,
  and TOST's is 2 power_one_sided - 1 (Chow, Shao & Wang 2008, sec. 3.2, normal approximation).
- Fisher's exact test: exact, by summing the binomial probabilities of every 2x2 outcome that
  Fisher's test rejects, for rates p_a, p_b that differ by `min_effect` around the pooled
  observed rate; the normal approximation with Cohen's h is used above MAX_FISHER_TABLES tables.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

#: Above this many 2x2 outcomes, Fisher's power uses the arcsine normal approximation.
MAX_FISHER_TABLES = 10_000


def _level(alpha: float, two_sided: bool) -> float:
    return float(stats.norm.ppf(1 - (alpha / 2 if two_sided else alpha)))


def mann_whitney_power(n_a: int, n_b: int, delta: float, alpha: float, two_sided: bool = False) -> float:
    """Noether's approximate power of Mann-Whitney to detect Cliff's delta `delta`."""
    if n_a < 1 or n_b < 1:
        return 0.0
    shift = abs(delta) / 2 * np.sqrt(12 * n_a * n_b / (n_a + n_b + 1))
    return float(stats.norm.cdf(shift - _level(alpha, two_sided)))


def margin_as_delta(a: np.ndarray, b: np.ndarray, margin: float) -> float:
    """Cliff's delta of a shift by `margin` under a normal model with the samples' spread."""
    parts = [x[np.isfinite(x)] - np.median(x[np.isfinite(x)]) for x in (a, b) if np.isfinite(x).any()]
    pooled = np.concatenate(parts) if parts else np.array([])
    sigma = float(stats.median_abs_deviation(pooled, scale="normal")) if pooled.size else float("nan")
    if not np.isfinite(sigma):
        return 0.0
    if sigma == 0:
        return 1.0
    return float(2 * stats.norm.cdf(margin / (sigma * np.sqrt(2))) - 1)


def equivalence_power(n_a: int, n_b: int, delta_margin: float, alpha: float) -> float:
    """Approximate TOST power at no true difference, for a margin of Cliff's delta `delta_margin`."""
    one = mann_whitney_power(n_a, n_b, delta_margin, alpha)
    return max(0.0, 2 * one - 1)


def fisher_power(n_a: int, n_b: int, difference: float, alpha: float, alternative: str, baseline: float) -> float:
    """Power of Fisher's exact test for rates differing by `difference` around `baseline`.

    For "less" the alternative is p_a = p_b - difference, for "greater" and "two-sided"
    p_a = p_b + difference; the two rates are centred on `baseline` and kept in [0, 1].
    """
    if n_a < 1 or n_b < 1:
        return 0.0
    d = min(abs(difference), 1.0)
    lo = float(np.clip(baseline - d / 2, 0.0, 1.0 - d))
    hi = lo + d
    p_a, p_b = (lo, hi) if alternative == "less" else (hi, lo)
    if (n_a + 1) * (n_b + 1) > MAX_FISHER_TABLES:
        h = abs(2 * np.arcsin(np.sqrt(p_a)) - 2 * np.arcsin(np.sqrt(p_b)))
        z = h * np.sqrt(n_a * n_b / (n_a + n_b))
        return float(stats.norm.cdf(z - _level(alpha, alternative == "two-sided")))
    xa, xb = np.arange(n_a + 1), np.arange(n_b + 1)
    prob = np.outer(stats.binom.pmf(xa, n_a, p_a), stats.binom.pmf(xb, n_b, p_b))
    power = 0.0
    for i in xa:
        for j in xb:
            if prob[i, j] < 1e-15:
                continue
            p = stats.fisher_exact([[i, n_a - i], [j, n_b - j]], alternative=alternative).pvalue
            if p < alpha:
                power += prob[i, j]
    return float(power)
