"""compare(): statistics and p-values equal scipy.stats on fixed samples; diverged seeds = worst."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from optiscope.stats import TESTS, compare

X = np.array([0.31, 0.42, 0.29, 0.55, 0.38, 0.47, 0.33, 0.50, 0.36, 0.41])
Y = np.array([0.52, 0.61, 0.44, 0.58, 0.49, 0.66, 0.57, 0.53, 0.60])


def test_mannwhitney_matches_scipy():
    r = compare(X, Y, "mannwhitney")
    ref = stats.mannwhitneyu(X, Y, alternative="two-sided")
    assert r.statistic == pytest.approx(ref.statistic)
    assert r.pvalue == pytest.approx(ref.pvalue)
    assert "same distribution" in r.null_hypothesis


def test_ks_matches_scipy():
    r = compare(X, Y, "ks")
    ref = stats.ks_2samp(X, Y)
    assert (r.statistic, r.pvalue) == pytest.approx((ref.statistic, ref.pvalue))


def test_welch_matches_scipy_and_reports_cohens_d():
    r = compare(X, Y, "welch")
    ref = stats.ttest_ind(X, Y, equal_var=False)
    assert (r.statistic, r.pvalue) == pytest.approx((ref.statistic, ref.pvalue))
    assert r.extra["df"] == pytest.approx(ref.df)
    assert r.effect_size_name == "cohens_d"
    assert r.effect_size_ci.low < r.effect_size < r.effect_size_ci.high


def test_permutation_matches_scipy_with_the_same_seed():
    r = compare(X, Y, "permutation", n_resamples=2000, seed=3)
    ref = stats.permutation_test(
        (X, Y), lambda a, b, axis: np.median(a, axis=axis) - np.median(b, axis=axis),
        vectorized=True, n_resamples=2000, rng=np.random.default_rng(3),
    )
    assert (r.statistic, r.pvalue) == pytest.approx((ref.statistic, ref.pvalue))


def test_permutation_is_exact_on_small_samples_against_enumeration():
    a, b = np.array([1.0, 2.5, 3.1, 4.0]), np.array([3.5, 5.0, 6.2, 7.7])
    pooled = np.concatenate([a, b])
    observed = np.median(a) - np.median(b)
    null = []
    for idx in itertools.combinations(range(8), 4):
        mask = np.zeros(8, bool)
        mask[list(idx)] = True
        null.append(np.median(pooled[mask]) - np.median(pooled[~mask]))
    null = np.array(null)
    brute = np.mean(np.abs(null) >= abs(observed) - 1e-12)
    assert compare(a, b, "permutation").pvalue == pytest.approx(brute)


def test_identical_samples_are_not_significant_and_a12_is_half():
    r = compare(X, X, "mannwhitney")
    assert r.pvalue == pytest.approx(1.0)
    assert r.effect_size == pytest.approx(0.5)


def test_a_diverged_seed_ranks_worst_in_rank_tests():
    """+inf (worst of a minimised metric) ranks above every finite value, as scipy ranks it."""
    x = np.append(X, np.inf)
    r = compare(x, Y, "mannwhitney")
    ref = stats.mannwhitneyu(np.append(X, Y.max() + 1.0), Y, alternative="two-sided")
    assert (r.statistic, r.pvalue) == pytest.approx((ref.statistic, ref.pvalue))
    assert r.n_x == 11 and r.n_x_infinite == 1


def test_mean_based_tests_say_why_they_are_undefined_with_diverged_seeds():
    r = compare(np.append(X, np.inf), Y, "welch")
    assert np.isnan(r.pvalue) and "diverged" in r.note
    assert np.isnan(r.effects["cohens_d"].estimate)
    assert np.isfinite(r.effects["a12"].estimate)


def test_nan_and_unknown_test_are_rejected_with_the_allowed_values():
    with pytest.raises(ValueError, match="NaN"):
        compare([1.0, np.nan], [2.0, 3.0])
    with pytest.raises(ValueError, match="mannwhitney, ks, welch, permutation"):
        compare(X, Y, "ttest")
    assert set(TESTS) == {"mannwhitney", "ks", "welch", "permutation"}


def test_one_seed_per_cell_does_not_crash():
    r = compare([1.0], [2.0], "welch")
    assert np.isnan(r.pvalue) and r.note
    assert np.isfinite(compare([1.0], [2.0], "mannwhitney").pvalue)
