"""Effect sizes against closed forms and scipy's statistics they are tied to."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from optiscope.stats import cliffs_delta, cohens_d, vargha_delaney_a12

rng = np.random.default_rng(1)
X = rng.normal(0.0, 1.0, 12)
Y = rng.normal(0.8, 1.5, 15)


def test_a12_is_mann_whitney_u_over_nm():
    u = stats.mannwhitneyu(X, Y).statistic
    assert vargha_delaney_a12(X, Y).estimate == pytest.approx(u / (X.size * Y.size))


def test_a12_counts_ties_as_half_by_hand():
    # pairs: (1,1) tie, (1,2) <, (3,1) >, (3,2) >  ->  (2 + 0.5) / 4
    assert vargha_delaney_a12([1, 3], [1, 2]).estimate == pytest.approx(0.625)
    assert cliffs_delta([1, 3], [1, 2]).estimate == pytest.approx(0.25)


def test_cohens_d_matches_student_t():
    """Student's t (pooled variance) = d / sqrt(1/n + 1/m)."""
    t = stats.ttest_ind(X, Y, equal_var=True).statistic
    d = cohens_d(X, Y).estimate
    assert d == pytest.approx(t * np.sqrt(1 / X.size + 1 / Y.size))


def test_intervals_contain_the_estimate_and_are_ordered():
    for iv in (vargha_delaney_a12(X, Y), cliffs_delta(X, Y), cohens_d(X, Y)):
        assert iv.low <= iv.estimate <= iv.high
        assert iv.method in ("BCa", "percentile")


def test_complete_separation_gives_a12_one_with_a_degenerate_interval():
    iv = vargha_delaney_a12([5, 6, 7], [1, 2, 3])
    assert iv.estimate == 1.0 and iv.high == pytest.approx(1.0)


def test_infinite_values_rank_as_worst_in_a12():
    assert vargha_delaney_a12([np.inf, np.inf], [1.0, 2.0]).estimate == 1.0
