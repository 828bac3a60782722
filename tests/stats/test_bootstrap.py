"""bootstrap_ci: agrees with scipy.stats.bootstrap, handles tiny samples, covers the truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from optiscope.stats import bootstrap_ci


def test_bca_median_interval_equals_scipy():
    x = np.random.default_rng(2).lognormal(size=25)
    iv = bootstrap_ci(x, "median", 0.9, n_resamples=999, seed=5)
    ref = stats.bootstrap((x,), np.median, confidence_level=0.9, n_resamples=999,
                          method="BCa", rng=np.random.default_rng(5))
    assert iv.method == "BCa"
    assert (iv.low, iv.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert iv.estimate == pytest.approx(np.median(x))


def test_one_value_all_equal_and_unknown_statistic():
    assert "one value" in bootstrap_ci([3.0]).note
    iv = bootstrap_ci([2.0, 2.0, 2.0])
    assert (iv.low, iv.high) == (2.0, 2.0) and iv.method == "degenerate"
    assert bootstrap_ci([np.inf, np.nan]).note == "no values"
    with pytest.raises(ValueError, match="median, mean"):
        bootstrap_ci([1.0, 2.0], "mode")


@pytest.mark.slow
def test_median_interval_covers_the_true_median_in_at_least_90_percent_of_200_draws():
    # Exponential(1): true median ln 2. n = 40 seeds per draw.
    rng = np.random.default_rng(123)
    hits = 0
    for i in range(200):
        iv = bootstrap_ci(rng.exponential(size=40), "median", 0.95, n_resamples=1000, seed=i)
        hits += iv.low <= np.log(2) <= iv.high
    assert hits / 200 >= 0.90
