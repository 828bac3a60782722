"""Spearman with CI against scipy.stats.spearmanr."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from optiscope.stats import spearman


def test_spearman_matches_scipy_and_its_interval_contains_it():
    rng = np.random.default_rng(4)
    x = rng.normal(size=30)
    y = x + rng.normal(scale=0.8, size=30)
    r = spearman(x, y)
    ref = stats.spearmanr(x, y)
    assert (r.statistic, r.pvalue) == pytest.approx((ref.statistic, ref.pvalue))
    assert r.interval.low < r.statistic < r.interval.high
    assert r.interval.low > 0  # a clear positive association


def test_infinite_values_keep_their_rank_and_nan_pairs_are_dropped():
    x = np.array([1.0, 2.0, 3.0, np.inf, np.nan])
    y = np.array([0.9, 0.8, 0.7, -np.inf, 0.1])
    r = spearman(x, y)
    assert r.statistic == pytest.approx(-1.0) and r.n == 4 and r.n_dropped == 1


def test_too_few_pairs_say_why():
    assert "fewer than 3" in spearman([1.0, 2.0], [2.0, 1.0]).note
