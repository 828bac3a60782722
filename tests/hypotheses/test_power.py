"""The power behind "inconclusive", against simulated rejection rates (fixed seeds)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from optiscope.hypotheses.power import (
    equivalence_power,
    fisher_power,
    mann_whitney_power,
    margin_as_delta,
)


def test_noether_matches_the_simulated_power_of_mann_whitney():
    """Normal samples shifted by d have Cliff's delta 2 Phi(d / sqrt 2) - 1; 4000 simulated
    one-sided tests at n = 15 per cell. Measured: 0.7945 simulated vs 0.754 predicted: Noether's
    approximation uses the null variance of U, larger than under the alternative, so it errs
    low, on the side of "inconclusive" rather than "fails"."""
    delta = 0.5
    d = np.sqrt(2) * stats.norm.ppf((1 + delta) / 2)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (4000, 15))
    y = rng.normal(d, 1, (4000, 15))
    p = stats.mannwhitneyu(x, y, alternative="less", axis=1, method="asymptotic").pvalue
    simulated = (p < 0.05).mean()
    predicted = mann_whitney_power(15, 15, delta, 0.05)
    assert simulated - 0.06 < predicted <= simulated
    # more seeds, more power; a two-sided test has less at the same level
    assert mann_whitney_power(30, 30, delta, 0.05) > mann_whitney_power(15, 15, delta, 0.05)
    assert mann_whitney_power(15, 15, delta, 0.05, two_sided=True) < mann_whitney_power(15, 15, delta, 0.05)


def test_fisher_power_is_exact_against_simulation():
    rng = np.random.default_rng(1)
    n = 10
    xa = rng.binomial(n, 0.8, 4000)
    xb = rng.binomial(n, 0.3, 4000)
    p = np.array([stats.fisher_exact([[i, n - i], [j, n - j]], alternative="greater").pvalue
                  for i, j in zip(xa, xb, strict=True)])
    predicted = fisher_power(n, n, 0.5, 0.05, "greater", baseline=0.55)  # rates 0.8 and 0.3
    assert predicted == pytest.approx((p < 0.05).mean(), abs=3 * np.sqrt(0.25 / 4000))


def test_tost_power_approximation_against_simulation():
    """Equivalence within one standard deviation, no true shift, 30 runs a cell."""
    rng = np.random.default_rng(2)
    hits = 0
    reps = 400
    for _ in range(reps):
        a, b = rng.normal(0, 1, 30), rng.normal(0, 1, 30)
        lo = stats.mannwhitneyu(a + 1.0, b, alternative="greater").pvalue
        hi = stats.mannwhitneyu(a - 1.0, b, alternative="less").pvalue
        hits += max(lo, hi) < 0.05
    delta = margin_as_delta(rng.normal(0, 1, 2000), rng.normal(0, 1, 2000), 1.0)
    assert delta == pytest.approx(2 * stats.norm.cdf(1 / np.sqrt(2)) - 1, abs=0.03)
    assert equivalence_power(30, 30, delta, 0.05) == pytest.approx(hits / reps, abs=0.08)


def test_no_spread_means_any_margin_is_detectable():
    assert margin_as_delta(np.ones(5), np.ones(5), 0.1) == 1.0
