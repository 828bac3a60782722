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
    """10 x 9 values without ties: the exact U distribution (scipy's "auto" would take the
    normal approximation here, as both samples have more than 8 values)."""
    r = compare(X, Y, "mannwhitney")
    ref = stats.mannwhitneyu(X, Y, alternative="two-sided", method="exact")
    assert r.statistic == pytest.approx(ref.statistic)
    assert r.pvalue == pytest.approx(ref.pvalue)
    assert r.pvalue_method == "exact" and r.alternative == "two-sided"
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
    ref = stats.mannwhitneyu(np.append(X, Y.max() + 1.0), Y, alternative="two-sided", method="exact")
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


# -- one-sided alternatives and the Mann-Whitney method ------------------------------------------
SMALL = X - 0.2  # clearly smaller than Y


@pytest.mark.parametrize("test", ["mannwhitney", "ks", "welch", "permutation"])
def test_less_means_x_tends_smaller_for_every_test(test):
    less = compare(SMALL, Y, test, alternative="less", n_resamples=2000)
    greater = compare(SMALL, Y, test, alternative="greater", n_resamples=2000)
    two = compare(SMALL, Y, test, n_resamples=2000)
    assert less.pvalue < 0.01 < 0.9 < greater.pvalue
    assert less.alternative == "less" and greater.alternative == "greater"
    # Swapping the samples swaps the direction.
    swapped = compare(Y, SMALL, test, alternative="greater", n_resamples=2000)
    assert swapped.pvalue == pytest.approx(less.pvalue)
    if test != "ks":  # KS's two-sided statistic is not a sum of its one-sided tails
        assert less.pvalue <= two.pvalue


def test_one_sided_p_values_match_scipy():
    for alt in ("less", "greater"):
        r = compare(X, Y, "mannwhitney", alternative=alt)
        assert r.pvalue == pytest.approx(stats.mannwhitneyu(X, Y, alternative=alt, method="exact").pvalue)
        r = compare(X, Y, "welch", alternative=alt)
        assert r.pvalue == pytest.approx(stats.ttest_ind(X, Y, equal_var=False, alternative=alt).pvalue)
    # ks_2samp words its alternatives by CDFs: "x tends smaller" is its "greater" (F_x > F_y).
    r = compare(X, Y, "ks", alternative="less")
    ref = stats.ks_2samp(X, Y, alternative="greater", method="exact")
    assert (r.statistic, r.pvalue, r.pvalue_method) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue), "exact")


def _exact_mw_less(a: np.ndarray, b: np.ndarray) -> float:
    """P(U_a <= u_a) under H0 by enumerating every split of the pooled sample (no ties)."""
    pooled = np.concatenate([a, b])
    n = pooled.size
    u_obs = sum((ai > bj) for ai in a for bj in b)
    count = total = 0
    for idx in itertools.combinations(range(n), a.size):
        mask = np.zeros(n, bool)
        mask[list(idx)] = True
        u = sum((ai > bj) for ai in pooled[mask] for bj in pooled[~mask])
        count += u <= u_obs
        total += 1
    return count / total


def test_mannwhitney_exact_p_value_against_enumeration():
    a, b = np.array([0.3, 1.2, 0.7, 2.2]), np.array([1.9, 3.1, 2.6, 4.0, 1.5])
    r = compare(a, b, "mannwhitney", alternative="less")
    assert r.pvalue_method == "exact"
    assert r.pvalue == pytest.approx(_exact_mw_less(a, b))
    assert compare(a, b, "mannwhitney", alternative="greater").pvalue == pytest.approx(_exact_mw_less(b, a))


def test_mannwhitney_falls_back_to_asymptotic_with_ties_or_large_samples():
    tied = np.array([1.0, 2.0, 2.0, 3.0])
    r = compare(tied, Y, "mannwhitney")
    assert r.pvalue_method == "asymptotic"
    assert r.pvalue == pytest.approx(stats.mannwhitneyu(tied, Y, method="asymptotic").pvalue)
    two_diverged = np.append(X, [np.inf, np.inf])  # equal infinities are ties
    assert compare(two_diverged, Y, "mannwhitney").pvalue_method == "asymptotic"
    rng = np.random.default_rng(0)
    big_x, big_y = rng.normal(size=101), rng.normal(size=100)  # 10 100 pairs > 10 000
    r = compare(big_x, big_y, "mannwhitney", n_bootstrap=50)
    assert r.pvalue_method == "asymptotic"
    assert r.pvalue == pytest.approx(stats.mannwhitneyu(big_x, big_y, method="asymptotic").pvalue)
    r = compare(big_x[:100], big_y, "mannwhitney", n_bootstrap=50)
    assert r.pvalue_method == "exact"


def test_pvalue_method_of_the_other_tests():
    assert compare(X, Y, "welch").pvalue_method == "t-distribution"
    assert compare(X[:4], Y[:4], "permutation").pvalue_method == "exact"  # 70 relabellings
    assert compare(X, Y, "permutation", n_resamples=500).pvalue_method == "monte-carlo"
    assert compare(np.append(X, np.inf), Y, "welch").pvalue_method == ""


def test_permutation_one_sided_against_enumeration():
    a, b = np.array([1.0, 2.5, 3.1, 4.0]), np.array([3.5, 5.0, 6.2, 7.7])
    pooled = np.concatenate([a, b])
    null = []
    for idx in itertools.combinations(range(8), 4):
        mask = np.zeros(8, bool)
        mask[list(idx)] = True
        null.append(np.median(pooled[mask]) - np.median(pooled[~mask]))
    observed = np.median(a) - np.median(b)
    brute = np.mean(np.array(null) <= observed + 1e-12)
    assert compare(a, b, "permutation", alternative="less").pvalue == pytest.approx(brute)


def test_unknown_alternative_is_rejected_with_the_allowed_values():
    with pytest.raises(ValueError, match="alternative must be one of 'two-sided', 'less', 'greater', not 'smaller'"):
        compare(X, Y, alternative="smaller")
