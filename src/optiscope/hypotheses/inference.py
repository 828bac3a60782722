"""One hypothesis' test on two samples of per-run values: p-value, effect size and interval.

The p-values come from scipy.stats, through `optiscope.stats.compare` for the rank and
permutation tests (so Mann-Whitney is exact for small samples without ties and asymptotic
otherwise, exactly as elsewhere in optiscope) and from `scipy.stats.fisher_exact` for rates.

Effect measures (what `min_effect` and `margin` are in):
- less / greater / two-sided with Mann-Whitney or permutation: Cliff's delta
  = P(A > B) - P(A < B) in [-1, 1] with its BCa bootstrap interval; rank-based, so defined with
  diverged runs (+-inf). In the stated direction, "less" needs delta <= -min_effect.
- equivalent: the Hodges-Lehmann shift (median of all pairwise differences a_i - b_j), in the
  statistic's units, and `margin` in the same units. Equivalence is TOST (Schuirmann 1987): two
  one-sided tests of the shifted samples, H01: shift <= -margin (test a + margin against b,
  "greater") and H02: shift >= margin (a - margin against b, "less"); p = the larger of the
  two. Its interval is the (1 - 2 alpha) bootstrap interval, the one TOST corresponds to. It
  is significant "the other way" when the shift lies beyond a margin: the smaller p-value of
  the tests of shift < -margin and shift > margin, doubled (Bonferroni over the two sides).
- rate (Fisher): the difference of the fractions of runs reaching the target, p_a - p_b, with
  a percentile bootstrap interval; Fisher's exact test on [[reached_a, missed_a],
  [reached_b, missed_b]] ("greater": a reaches more often).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from optiscope.hypotheses.spec import Hypothesis
from optiscope.stats import Interval, compare
from optiscope.stats.bootstrap import bootstrap_interval

NAN = float("nan")
_COMPARE_TEST = {"mann-whitney": "mannwhitney", "permutation": "permutation"}
OPPOSITE = {"less": "greater", "greater": "less"}


@dataclass(frozen=True)
class TestOutcome:
    """What one test said: its statistic and p-value (and the opposite one-sided p-value, for
    "significant the other way"), how the p-value was computed, and the effect."""

    statistic: float
    pvalue: float
    pvalue_opposite: float
    pvalue_method: str
    effect: Interval
    note: str = ""


def run_test(h: Hypothesis, a: np.ndarray, b: np.ndarray) -> TestOutcome:
    """Test hypothesis `h` on per-run values `a` and `b` (diverged runs already the worst value)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if h.test_name == "fisher":
        return _fisher(h, a, b)
    if h.direction == "equivalent":
        return _tost(h, a, b)
    kw = {"seed": h.seed, "n_resamples": h.permutations}
    r = compare(a, b, _COMPARE_TEST[h.test_name], alternative=h.direction, **kw)
    opposite = NAN
    if h.direction in OPPOSITE and h.test_name == "mann-whitney":  # same U, same method
        opposite = float(stats.mannwhitneyu(a, b, alternative=OPPOSITE[h.direction], method=r.pvalue_method).pvalue)
    elif h.direction in OPPOSITE:
        opposite = compare(a, b, "permutation", alternative=OPPOSITE[h.direction], **kw).pvalue
    return TestOutcome(r.statistic, r.pvalue, opposite, r.pvalue_method, r.effects["cliffs_delta"], r.note)


def _tost(h: Hypothesis, a: np.ndarray, b: np.ndarray) -> TestOutcome:
    assert h.margin is not None
    test, kw = _COMPARE_TEST[h.test_name], {"seed": h.seed, "n_resamples": h.permutations}
    low = compare(a + h.margin, b, test, alternative="greater", **kw)
    high = compare(a - h.margin, b, test, alternative="less", **kw)
    binding = low if not (high.pvalue > low.pvalue) else high
    # The other way: the shift lies beyond a margin (below -margin, or above +margin), two
    # one-sided tests Bonferroni-combined.
    below = compare(a + h.margin, b, test, alternative="less", **kw).pvalue
    above = compare(a - h.margin, b, test, alternative="greater", **kw).pvalue
    beyond = min(1.0, 2 * min(below, above))
    note = "; ".join(dict.fromkeys(n for n in (low.note, high.note) if n))
    return TestOutcome(binding.statistic, max(low.pvalue, high.pvalue), beyond, binding.pvalue_method,
                       shift_interval(a, b, 1 - 2 * h.alpha, seed=h.seed), note)


def _hodges_lehmann(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Median of all pairwise differences x_i - y_j (vectorised; inf - inf counts as a tie, 0)."""
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    y = np.moveaxis(np.asarray(y, dtype=float), axis, -1)
    with np.errstate(invalid="ignore"):
        d = x[..., :, None] - y[..., None, :]
    d = np.where(np.isnan(d), 0.0, d)
    return np.median(d.reshape(*d.shape[:-2], -1), axis=-1)


def shift_interval(a: np.ndarray, b: np.ndarray, confidence: float, *, seed: int = 0) -> Interval:
    """The Hodges-Lehmann shift of a against b with a bootstrap interval."""
    est = float(_hodges_lehmann(a, b))
    if a.size < 2 or b.size < 2:
        return Interval(est, NAN, NAN, confidence, "BCa", "fewer than two runs in a cell: no interval")
    if not np.isfinite(est):
        return Interval(est, NAN, NAN, confidence, "BCa", "the shift is infinite (most runs diverged)")
    return bootstrap_interval((a, b), _hodges_lehmann, est, confidence, seed=seed)


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _fisher(h: Hypothesis, a: np.ndarray, b: np.ndarray) -> TestOutcome:
    """a, b: 1.0 for a run that reached the target, 0.0 otherwise."""
    table = [[int(a.sum()), int(a.size - a.sum())], [int(b.sum()), int(b.size - b.sum())]]
    r = stats.fisher_exact(table, alternative=h.direction)
    opposite = NAN
    if h.direction in OPPOSITE:
        opposite = float(stats.fisher_exact(table, alternative=OPPOSITE[h.direction]).pvalue)
    est = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        effect = Interval(est, NAN, NAN, 0.95, "percentile", "fewer than two runs in a cell: no interval")
    elif np.all(np.concatenate([a, b]) == a[0]):
        effect = Interval(est, est, est, 0.95, "degenerate", "every run has the same outcome")
    else:
        effect = bootstrap_interval((a, b), _mean_difference, est, 0.95, method="percentile", seed=h.seed)
    return TestOutcome(float(r.statistic), float(r.pvalue), opposite, "exact", effect)
