"""Per-cell summaries and Wilson intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from optiscope.stats import success_rate, summarize


def test_wilson_interval_matches_the_closed_form():
    k, n, z = 7, 20, stats.norm.ppf(0.975)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    r = success_rate(k, n)
    assert (r.low, r.high) == pytest.approx((centre - half, centre + half))


def test_wilson_stays_inside_unit_interval_at_the_edges():
    r = success_rate(8, 8)
    assert r.high == pytest.approx(1.0) and 0.6 < r.low < 1.0
    with pytest.raises(ValueError, match="0 <= k <= n"):
        success_rate(3, 2)


def test_summary_describes_finished_seeds_and_counts_diverged_ones():
    s = summarize([1.0, 2.0, 3.0, 4.0, np.inf])
    assert s.n == 5 and s.n_finite == 4
    assert s.median == 2.5 and s.mean == 2.5 and s.q25 == pytest.approx(np.quantile([1, 2, 3, 4], 0.25))
    assert s.success.estimate == 0.8
    assert "diverged" in s.note
    assert s.median_ci.low <= 2.5 <= s.median_ci.high


def test_all_diverged_and_single_seed_cells_say_why():
    s = summarize([np.inf, np.inf])
    assert np.isnan(s.median) and "no seed finished" in s.note and s.success.estimate == 0
    one = summarize([0.5])
    assert one.median == 0.5 and np.isnan(one.median_ci.low) and "one seed" in one.note
    assert set(one.row()) >= {"median", "median_ci_low", "success_rate"}
