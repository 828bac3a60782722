"""Two-sample comparisons of outcome distributions: scipy.stats tests plus effect sizes.

`compare(x, y, test, alternative=...)` runs one of four tests from scipy.stats and attaches the
effect sizes of `optiscope.stats.effect_size`, so that a p-value never travels without a
magnitude. One-sided alternatives always read "x against y": "less" means x's values tend to be
smaller than y's, "greater" that they tend to be larger, whatever convention the underlying scipy
function uses (`ks_2samp` phrases its alternatives by CDFs, the opposite way round). Diverged
seeds are passed as the worst outcome (+inf for a metric to minimise, -inf for one to
maximise): rank-based tests (Mann-Whitney, Kolmogorov-Smirnov) and A12 then count them as the
worst rank, as COCO and AlgoPerf count a miss, while mean-based quantities (Welch's t, Cohen's
d) and the difference of medians when a median is infinite are reported as undefined with a
note, never computed on a silently shrunk sample.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from scipy import stats

from optiscope.stats.bootstrap import Interval
from optiscope.stats.effect_size import cliffs_delta, cohens_d, vargha_delaney_a12
from optiscope.stats.outcomes import outcome_sample

Test = Literal["mannwhitney", "ks", "welch", "permutation"]
Alternative = Literal["two-sided", "less", "greater"]

#: Alternative hypotheses `compare` accepts, stated for a comparison of x against y.
ALTERNATIVES: dict[str, str] = {
    "two-sided": "x and y differ",
    "less": "x's values tend to be smaller than y's",
    "greater": "x's values tend to be larger than y's",
}
#: Mann-Whitney uses scipy's exact null distribution when the pooled sample has no ties and
#: n_x * n_y is at most this (100 seeds a side); beyond it scipy's exact recursion gets slow
#: (measured: 0.07 s at 128 x 128, 21 s at 150 x 150, on first use of each shape).
MW_EXACT_MAX_PAIRS = 10_000

#: Null hypothesis of each test, as the result objects state it.
NULL_HYPOTHESES: dict[str, str] = {
    "mannwhitney": "the two samples come from the same distribution (P(X > Y) = P(Y > X)); "
    "Mann-Whitney U, scipy.stats.mannwhitneyu",
    "ks": "the two samples come from the same continuous distribution; two-sample "
    "Kolmogorov-Smirnov, scipy.stats.ks_2samp",
    "welch": "the two populations have equal means (variances not assumed equal); Welch's t, "
    "scipy.stats.ttest_ind(equal_var=False)",
    "permutation": "the group labels are exchangeable, tested with the difference of medians; "
    "scipy.stats.permutation_test",
}
TESTS: tuple[str, ...] = tuple(NULL_HYPOTHESES)
NAN = float("nan")


@dataclass(frozen=True)
class ComparisonResult:
    """Result of `compare`, in the style of scipy.stats results.

    Attributes
    ----------
    test, null_hypothesis : which test ran and what it assumes under H0.
    alternative : "two-sided", "less" (x tends smaller than y) or "greater" (x tends larger).
    statistic, pvalue : the test's statistic and p-value for `alternative` (NaN if undefined;
        see note).
    pvalue_method : how the p-value was computed: "exact" (exact null distribution: the
        Mann-Whitney U distribution, the exact two-sample KS distribution, or every distinct
        relabelling of the permutation test), "asymptotic" (normal approximation with tie and
        continuity correction, or the KS limit), "t-distribution" (Welch) or "monte-carlo"
        (random relabellings); "" when no test ran.
    pvalue_adjusted : the p-value after multiple-comparison correction across a family
        (set by `optiscope.stats.pairwise`; NaN for a lone comparison).
    effect_size, effect_size_name : the headline effect size (A12 for the rank and permutation
        tests, Cohen's d for Welch) and `effect_size_ci` its bootstrap interval.
    effects : every effect size computed ("a12", "cliffs_delta", "cohens_d").
    n_x, n_y, n_x_infinite, n_y_infinite : sample sizes and how many values were infinite.
    """

    test: str
    statistic: float
    pvalue: float
    effect_size: float
    effect_size_name: str
    effect_size_ci: Interval
    effects: dict[str, Interval]
    n_x: int
    n_y: int
    n_x_infinite: int
    n_y_infinite: int
    null_hypothesis: str
    note: str = ""
    pvalue_adjusted: float = NAN
    alternative: str = "two-sided"
    pvalue_method: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    def confidence_interval(self) -> Interval:
        """The interval of the headline effect size."""
        return self.effect_size_ci

    def with_adjusted(self, p: float) -> ComparisonResult:
        return replace(self, pvalue_adjusted=float(p))


def _median_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(x, axis=axis) - np.median(y, axis=axis)


def compare(
    x: np.ndarray | list[float],
    y: np.ndarray | list[float],
    test: Test = "mannwhitney",
    *,
    alternative: Alternative = "two-sided",
    confidence: float = 0.95,
    n_resamples: int = 9999,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> ComparisonResult:
    """Compare two samples of outcomes with `test` against `alternative`.

    Parameters
    ----------
    x, y : outcomes of two cells (one value per seed). Infinite values stand for diverged
        seeds (the worst outcome); NaN is an error.
    test : "mannwhitney" (H0: same distribution; scipy.stats.mannwhitneyu), "ks" (H0: same
        continuous distribution; scipy.stats.ks_2samp, exact for samples up to 10 000),
        "welch" (H0: equal means; scipy.stats.ttest_ind with equal_var=False), or
        "permutation" (H0: labels exchangeable; statistic median(x) - median(y);
        scipy.stats.permutation_test with `n_resamples`, exact when there are fewer
        distinct relabellings).
    alternative : "two-sided", "less" (H1: x's values tend to be smaller than y's) or
        "greater" (H1: x's values tend to be larger).
    confidence : level of the effect-size intervals (BCa bootstrap, `n_bootstrap` resamples).
    seed : seeds the permutation and bootstrap resampling (results are reproducible).

    Mann-Whitney's p-value uses the exact distribution of U (scipy's method="exact") when the
    pooled sample has no ties and n_x * n_y <= MW_EXACT_MAX_PAIRS; otherwise the normal
    approximation with tie and continuity correction (method="asymptotic"). Two or more
    diverged seeds are ties (equal infinities). The result's `pvalue_method` says which ran.
    """
    if test not in NULL_HYPOTHESES:
        raise ValueError(f"test must be one of {', '.join(TESTS)}, not {test!r}")
    if alternative not in ALTERNATIVES:
        raise ValueError(
            f"alternative must be one of {', '.join(map(repr, ALTERNATIVES))}, not {alternative!r}"
        )
    a, b = outcome_sample(x, "x", "a comparison"), outcome_sample(y, "y", "a comparison")
    inf_a, inf_b = int(np.isinf(a).sum()), int(np.isinf(b).sum())
    kw = {"n_resamples": n_bootstrap, "seed": seed}
    effects = {
        "a12": vargha_delaney_a12(a, b, confidence, **kw),
        "cliffs_delta": cliffs_delta(a, b, confidence, **kw),
        "cohens_d": cohens_d(a, b, confidence, **kw),
    }
    statistic, pvalue, note, method = NAN, NAN, "", ""
    extra: dict[str, float] = {}
    if test == "mannwhitney":
        method = _mannwhitney_method(a, b)
        r = stats.mannwhitneyu(a, b, alternative=alternative, method=method)
        statistic, pvalue = float(r.statistic), float(r.pvalue)
    elif test == "ks":
        statistic, pvalue, method = _ks(a, b, alternative)
    elif test == "welch":
        if inf_a or inf_b:
            note = f"{inf_a + inf_b} diverged (infinite) values: means undefined, use a rank test"
        elif a.size < 2 or b.size < 2:
            note = "Welch's t needs at least two values per sample"
        else:
            r = stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
            statistic, pvalue, method = float(r.statistic), float(r.pvalue), "t-distribution"
            extra["df"] = float(r.df)
    else:  # permutation
        med = _median_difference(a, b)
        if not np.isfinite(med):
            note = "a median is infinite (half the seeds or more diverged): difference undefined"
        elif inf_a or inf_b:
            note = "diverged seeds make some resampled medians infinite; use a rank test"
        else:
            r = stats.permutation_test(
                (a, b), _median_difference, permutation_type="independent", vectorized=True,
                n_resamples=n_resamples, alternative=alternative, rng=np.random.default_rng(seed),
            )
            statistic, pvalue = float(r.statistic), float(r.pvalue)
            exact = math.comb(a.size + b.size, a.size) <= n_resamples
            method = "exact" if exact else "monte-carlo"
    name = "cohens_d" if test == "welch" else "a12"
    return ComparisonResult(
        test=test, statistic=statistic, pvalue=pvalue,
        effect_size=effects[name].estimate, effect_size_name=name, effect_size_ci=effects[name],
        effects=effects, n_x=a.size, n_y=b.size, n_x_infinite=inf_a, n_y_infinite=inf_b,
        null_hypothesis=NULL_HYPOTHESES[test], note=note, extra=extra,
        alternative=alternative, pvalue_method=method,
    )


def _mannwhitney_method(x: np.ndarray, y: np.ndarray) -> Literal["exact", "asymptotic"]:
    """scipy's method for Mann-Whitney: "exact" without ties for small samples (see `compare`)."""
    pooled = np.concatenate([x, y])
    ties = np.unique(pooled).size < pooled.size
    return "exact" if not ties and x.size * y.size <= MW_EXACT_MAX_PAIRS else "asymptotic"


#: ks_2samp states its one-sided alternatives for the CDFs (F_x < F_y is "less"), which means x's
#: values tend to be larger: swap so that "less" keeps meaning "x tends smaller" here too.
_KS_ALTERNATIVE = {"two-sided": "two-sided", "less": "greater", "greater": "less"}


def _ks(x: np.ndarray, y: np.ndarray, alternative: str) -> tuple[float, float, str]:
    """Two-sample KS with scipy's exact distribution where it can compute it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        r = stats.ks_2samp(x, y, alternative=_KS_ALTERNATIVE[alternative], method="auto")
    switched = max(x.size, y.size) > 10_000 or any("Switching" in str(w.message) for w in caught)
    return float(r.statistic), float(r.pvalue), "asymptotic" if switched else "exact"
