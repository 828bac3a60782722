"""Two-sample comparisons of outcome distributions: scipy.stats tests plus effect sizes.

`compare(x, y, test)` runs one of four tests from scipy.stats and attaches the effect sizes of
`optiscope.stats.effect_size`, so that a p-value never travels without a magnitude. Diverged
seeds are passed as the worst outcome (+inf for a metric to minimise, -inf for one to
maximise): rank-based tests (Mann-Whitney, Kolmogorov-Smirnov) and A12 then count them as the
worst rank, as COCO and AlgoPerf count a miss, while mean-based quantities (Welch's t, Cohen's
d) and the difference of medians when a median is infinite are reported as undefined with a
note, never computed on a silently shrunk sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from scipy import stats

from optiscope.stats.bootstrap import Interval
from optiscope.stats.effect_size import cliffs_delta, cohens_d, vargha_delaney_a12

Test = Literal["mannwhitney", "ks", "welch", "permutation"]

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
    statistic, pvalue : the test's statistic and two-sided p-value (NaN if undefined; see note).
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
    extra: dict[str, float] = field(default_factory=dict)

    def confidence_interval(self) -> Interval:
        """The interval of the headline effect size."""
        return self.effect_size_ci

    def with_adjusted(self, p: float) -> ComparisonResult:
        return replace(self, pvalue_adjusted=float(p))


def _as_sample(v: np.ndarray | list[float], name: str) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty: a comparison needs at least one value per sample")
    if np.isnan(a).any():
        raise ValueError(
            f"{name} contains NaN: encode a diverged seed as the worst outcome (+inf for a metric "
            "to minimise, -inf for one to maximise), never as missing"
        )
    return a


def _median_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(x, axis=axis) - np.median(y, axis=axis)


def compare(
    x: np.ndarray | list[float],
    y: np.ndarray | list[float],
    test: Test = "mannwhitney",
    *,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> ComparisonResult:
    """Compare two samples of outcomes with `test`; two-sided.

    Parameters
    ----------
    x, y : outcomes of two cells (one value per seed). Infinite values stand for diverged
        seeds (the worst outcome); NaN is an error.
    test : "mannwhitney" (H0: same distribution; scipy.stats.mannwhitneyu, exact for small
        samples without ties), "ks" (H0: same continuous distribution; scipy.stats.ks_2samp),
        "welch" (H0: equal means; scipy.stats.ttest_ind with equal_var=False), or
        "permutation" (H0: labels exchangeable; statistic median(x) - median(y);
        scipy.stats.permutation_test with `n_resamples`, exact when there are fewer
        distinct relabellings).
    confidence : level of the effect-size intervals (BCa bootstrap, `n_bootstrap` resamples).
    seed : seeds the permutation and bootstrap resampling (results are reproducible).
    """
    if test not in NULL_HYPOTHESES:
        raise ValueError(f"test must be one of {', '.join(TESTS)}, not {test!r}")
    a, b = _as_sample(x, "x"), _as_sample(y, "y")
    inf_a, inf_b = int(np.isinf(a).sum()), int(np.isinf(b).sum())
    kw = {"n_resamples": n_bootstrap, "seed": seed}
    effects = {
        "a12": vargha_delaney_a12(a, b, confidence, **kw),
        "cliffs_delta": cliffs_delta(a, b, confidence, **kw),
        "cohens_d": cohens_d(a, b, confidence, **kw),
    }
    statistic, pvalue, note = NAN, NAN, ""
    extra: dict[str, float] = {}
    if test == "mannwhitney":
        r = stats.mannwhitneyu(a, b, alternative="two-sided", method="auto")
        statistic, pvalue = float(r.statistic), float(r.pvalue)
    elif test == "ks":
        r = stats.ks_2samp(a, b, alternative="two-sided")
        statistic, pvalue = float(r.statistic), float(r.pvalue)
    elif test == "welch":
        if inf_a or inf_b:
            note = f"{inf_a + inf_b} diverged (infinite) values: means undefined, use a rank test"
        elif a.size < 2 or b.size < 2:
            note = "Welch's t needs at least two values per sample"
        else:
            r = stats.ttest_ind(a, b, equal_var=False)
            statistic, pvalue = float(r.statistic), float(r.pvalue)
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
                n_resamples=n_resamples, alternative="two-sided", rng=np.random.default_rng(seed),
            )
            statistic, pvalue = float(r.statistic), float(r.pvalue)
    name = "cohens_d" if test == "welch" else "a12"
    return ComparisonResult(
        test=test, statistic=statistic, pvalue=pvalue,
        effect_size=effects[name].estimate, effect_size_name=name, effect_size_ci=effects[name],
        effects=effects, n_x=a.size, n_y=b.size, n_x_infinite=inf_a, n_y_infinite=inf_b,
        null_hypothesis=NULL_HYPOTHESES[test], note=note, extra=extra,
    )
