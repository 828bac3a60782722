"""The tie-corrected Mann-Whitney z against scipy's asymptotic p-value."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from optiscope.stats.rank_z import mann_whitney_z


def test_z_gives_scipys_asymptotic_p_value_with_ties_and_diverged_runs():
    rng = np.random.default_rng(0)
    a = np.round(rng.normal(0, 1, (50, 9)), 1)
    b = np.round(rng.normal(0.4, 1, (50, 12)), 1)
    a[:, :2] = np.inf  # two diverged runs a side: ties among themselves, ranked worst
    b[::3, :3] = np.inf
    for alternative in ("greater", "less", "two-sided"):
        for continuity in (True, False):
            z = mann_whitney_z(a, b, alternative, continuity=continuity)
            p = stats.mannwhitneyu(a, b, axis=-1, alternative=alternative, method="asymptotic",
                                   use_continuity=continuity).pvalue
            tails = 2 if alternative == "two-sided" else 1
            np.testing.assert_allclose(np.minimum(tails * stats.norm.sf(z), 1.0), p, rtol=1e-10, atol=1e-14)
            assert mann_whitney_z(a[3], b[3], alternative, continuity=continuity) == pytest.approx(z[3], abs=1e-12)


def test_all_ties_carry_no_information():
    assert mann_whitney_z(np.full(4, np.inf), np.full(3, np.inf)) == 0.0
    with pytest.raises(ValueError, match="'greater', 'less', 'two-sided'"):
        mann_whitney_z(np.ones(2), np.zeros(2), "bigger")


def test_nan_is_refused():
    with pytest.raises(ValueError, match="worst value"):
        mann_whitney_z(np.array([1.0, np.nan]), np.array([0.0]))
