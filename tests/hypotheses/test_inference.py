"""Each hypothesis test against scipy.stats called directly on the same arrays (to 1e-12)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from optiscope.hypotheses.inference import run_test, shift_interval
from optiscope.hypotheses.spec import Hypothesis

RNG = np.random.default_rng(7)
A = RNG.normal(0.0, 1.0, 12)
B = RNG.normal(0.8, 1.0, 10)


def hyp(**kw) -> Hypothesis:
    return Hypothesis.model_validate({"name": "h", "metric": "m", "a": "x", "b": "y"} | kw)


@pytest.mark.parametrize("direction", ["less", "greater", "two-sided"])
def test_mann_whitney_exact_equals_scipy(direction):
    out = run_test(hyp(direction=direction), A, B)
    ref = stats.mannwhitneyu(A, B, alternative=direction, method="exact")
    assert out.pvalue_method == "exact"
    assert out.pvalue == pytest.approx(ref.pvalue, rel=1e-12, abs=1e-12)
    assert out.statistic == ref.statistic
    if direction != "two-sided":
        other = {"less": "greater", "greater": "less"}[direction]
        ref_other = stats.mannwhitneyu(A, B, alternative=other, method="exact").pvalue
        assert out.pvalue_opposite == pytest.approx(ref_other, rel=1e-12, abs=1e-12)


def test_mann_whitney_with_diverged_runs_is_asymptotic_and_ranks_them_worst():
    a = np.concatenate([A, [np.inf, np.inf]])  # two diverged runs: a tie, so asymptotic
    out = run_test(hyp(direction="less"), a, B)
    ref = stats.mannwhitneyu(a, B, alternative="less", method="asymptotic")
    assert out.pvalue_method == "asymptotic"
    assert out.pvalue == pytest.approx(ref.pvalue, rel=1e-12, abs=1e-12)
    # Cliff's delta = P(a > b) - P(a < b), counted by hand
    gt = (a[:, None] > B[None, :]).mean()
    lt = (a[:, None] < B[None, :]).mean()
    assert out.effect.estimate == pytest.approx(gt - lt, abs=1e-12)


def test_permutation_equals_scipy_with_the_same_statistic_and_seed():
    out = run_test(hyp(direction="less", test="permutation", permutations=999, seed=3), A, B)

    def median_difference(x, y, axis=-1):
        return np.median(x, axis=axis) - np.median(y, axis=axis)

    ref = stats.permutation_test((A, B), median_difference, permutation_type="independent", vectorized=True,
                                 n_resamples=999, alternative="less", rng=np.random.default_rng(3))
    assert out.pvalue == pytest.approx(ref.pvalue, rel=1e-12, abs=1e-12)
    assert out.statistic == pytest.approx(ref.statistic, abs=1e-12)


@pytest.mark.parametrize("direction", ["less", "greater", "two-sided"])
def test_fisher_equals_scipy_on_the_two_by_two_table(direction):
    a = np.array([1.0] * 9 + [0.0] * 3)
    b = np.array([1.0] * 3 + [0.0] * 7)
    out = run_test(hyp(statistic="rate", target=0.1, direction=direction), a, b)
    ref = stats.fisher_exact([[9, 3], [3, 7]], alternative=direction)
    assert out.pvalue == pytest.approx(ref.pvalue, rel=1e-12, abs=1e-12)
    assert out.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert out.effect.estimate == pytest.approx(9 / 12 - 3 / 10, abs=1e-12)


def test_equivalence_is_two_one_sided_mann_whitney_tests_on_shifted_samples():
    a = RNG.normal(0.0, 1.0, 15)
    b = RNG.normal(0.05, 1.0, 15)
    margin = 1.0
    out = run_test(hyp(direction="equivalent", margin=margin), a, b)
    lower = stats.mannwhitneyu(a + margin, b, alternative="greater", method="exact").pvalue
    upper = stats.mannwhitneyu(a - margin, b, alternative="less", method="exact").pvalue
    assert out.pvalue == pytest.approx(max(lower, upper), rel=1e-12, abs=1e-12)
    below = stats.mannwhitneyu(a + margin, b, alternative="less", method="exact").pvalue
    above = stats.mannwhitneyu(a - margin, b, alternative="greater", method="exact").pvalue
    assert out.pvalue_opposite == pytest.approx(min(1.0, 2 * min(below, above)), rel=1e-12)
    # the Hodges-Lehmann shift: median of every pairwise difference
    assert out.effect.estimate == pytest.approx(np.median(np.subtract.outer(a, b)), abs=1e-12)
    assert out.effect.confidence == pytest.approx(0.9)  # 1 - 2 alpha: the interval TOST matches


def test_the_shift_treats_two_diverged_runs_as_a_tie():
    a = np.array([0.0, 1.0, np.inf])
    b = np.array([0.5, np.inf])
    # differences: -0.5, -inf, 0.5, -inf, inf, 0 (inf - inf counts as a tie); sorted
    # -inf, -inf, -0.5, 0, 0.5, inf: median (-0.5 + 0) / 2
    assert shift_interval(a, b, 0.95).estimate == -0.25
