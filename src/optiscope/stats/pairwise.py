"""Pairwise comparison of cells with Holm correction across the family shown.

Every unordered pair of groups is compared once with `compare`; the p-values of the whole table
are one family and are Holm-adjusted together (`optiscope.stats.holm`), so a star in the
report's significance matrix keeps the family-wise error rate at alpha. With a one-sided
`alternative`, each pair is tested in the order listed: ("a", "b") with "less" asks whether a's
values tend to be smaller than b's.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from optiscope.stats.multiple import holm
from optiscope.stats.twosample import Alternative, ComparisonResult, Test, compare


@dataclass(frozen=True)
class PairwiseTable:
    """All pairwise comparisons of `labels`; `results[(a, b)]` compares a (x) with b (y)."""

    labels: list[str]
    test: str
    goal: str
    results: dict[tuple[str, str], ComparisonResult]
    alternative: str = "two-sided"

    def get(self, a: str, b: str) -> tuple[ComparisonResult, bool]:
        """The comparison of a with b, and whether it is stored the other way round."""
        if (a, b) in self.results:
            return self.results[(a, b)], False
        return self.results[(b, a)], True

    def p_better(self, a: str, b: str) -> float:
        """P(a's outcome is better than b's) + ties/2: A12 oriented by the metric's goal."""
        r, swapped = self.get(a, b)
        a12 = r.effects["a12"].estimate
        p_a_greater = 1 - a12 if swapped else a12
        return p_a_greater if self.goal == "max" else 1 - p_a_greater

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(P(row better than column), adjusted p-value), both (L, L) with NaN diagonals.

        A one-sided p-value belongs to the direction tested only: the cell of the reverse
        direction is NaN.
        """
        n = len(self.labels)
        eff, padj = np.full((n, n), np.nan), np.full((n, n), np.nan)
        for i, j in itertools.permutations(range(n), 2):
            r, swapped = self.get(self.labels[i], self.labels[j])
            eff[i, j] = self.p_better(self.labels[i], self.labels[j])
            if self.alternative == "two-sided" or not swapped:
                padj[i, j] = r.pvalue_adjusted
        return eff, padj

    def rows(self) -> list[dict[str, object]]:
        """One flat dict per pair (for tables and CSV/Parquet export)."""
        out = []
        for (a, b), r in self.results.items():
            out.append(
                {
                    "a": a, "b": b, "test": r.test, "alternative": r.alternative,
                    "pvalue_method": r.pvalue_method, "statistic": r.statistic, "pvalue": r.pvalue,
                    "pvalue_holm": r.pvalue_adjusted, "a12": r.effects["a12"].estimate,
                    "a12_low": r.effects["a12"].low, "a12_high": r.effects["a12"].high,
                    "p_a_better": self.p_better(a, b),
                    "cliffs_delta": r.effects["cliffs_delta"].estimate,
                    "cohens_d": r.effects["cohens_d"].estimate,
                    "cohens_d_low": r.effects["cohens_d"].low,
                    "cohens_d_high": r.effects["cohens_d"].high,
                    "n_a": r.n_x, "n_b": r.n_y, "diverged_a": r.n_x_infinite,
                    "diverged_b": r.n_y_infinite, "note": r.note,
                }
            )
        return out


def pairwise(
    groups: Mapping[str, np.ndarray],
    test: Test = "mannwhitney",
    *,
    goal: Literal["min", "max"] = "min",
    alternative: Alternative = "two-sided",
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> PairwiseTable:
    """Compare every pair of `groups` (label -> outcomes, diverged = worst) with `test`.

    p-values are Holm-adjusted across all pairs of the table; pairs whose test is undefined
    (NaN p-value, see the result's note) are left out of the family. `alternative` is passed to
    `compare` for each pair (a, b) in the order of `groups`.
    """
    if goal not in ("min", "max"):
        raise ValueError(f"goal must be 'min' or 'max', not {goal!r}")
    labels = list(groups)
    raw = {
        (a, b): compare(groups[a], groups[b], test, alternative=alternative,
                        confidence=confidence, n_bootstrap=n_bootstrap, seed=seed)
        for a, b in itertools.combinations(labels, 2)
    }
    adjusted = holm(np.array([r.pvalue for r in raw.values()])) if raw else np.array([])
    results = {k: r.with_adjusted(p) for (k, r), p in zip(raw.items(), adjusted, strict=True)}
    return PairwiseTable(labels, test, goal, results, alternative)
