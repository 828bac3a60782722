"""Pairwise tables: every pair once, Holm across the whole family, goal-oriented effects."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from optiscope.stats import holm, pairwise

rng = np.random.default_rng(7)
GROUPS = {"a": rng.normal(0, 1, 10), "b": rng.normal(1, 1, 10), "c": rng.normal(3, 1, 10)}


def test_every_pair_is_compared_and_holm_adjusted_as_one_family():
    t = pairwise(GROUPS, "mannwhitney", goal="min")
    assert list(t.results) == [("a", "b"), ("a", "c"), ("b", "c")]
    raw = [stats.mannwhitneyu(GROUPS[x], GROUPS[y], method="exact").pvalue for x, y in t.results]
    np.testing.assert_allclose([r.pvalue for r in t.results.values()], raw)
    np.testing.assert_allclose([r.pvalue_adjusted for r in t.results.values()], holm(raw))


def test_matrix_orients_effects_by_goal():
    t = pairwise(GROUPS, goal="min")
    eff, padj = t.matrix()
    # a has the lowest values: with goal min it beats c almost surely.
    assert eff[0, 2] > 0.9 and eff[2, 0] < 0.1
    assert eff[0, 2] + eff[2, 0] == pytest.approx(1.0)
    assert padj[0, 2] == padj[2, 0] and np.isnan(eff[1, 1])
    assert pairwise(GROUPS, goal="max").matrix()[0][0, 2] < 0.1
    assert len(t.rows()) == 3 and "pvalue_holm" in t.rows()[0]


def test_one_sided_pairs_are_tested_in_the_listed_order():
    t = pairwise(GROUPS, "mannwhitney", goal="min", alternative="less")
    raw = [stats.mannwhitneyu(GROUPS[x], GROUPS[y], alternative="less", method="exact").pvalue
           for x, y in t.results]
    np.testing.assert_allclose([r.pvalue for r in t.results.values()], raw)
    np.testing.assert_allclose([r.pvalue_adjusted for r in t.results.values()], holm(raw))
    rows = t.rows()
    assert {(r["alternative"], r["pvalue_method"]) for r in rows} == {("less", "exact")}
    _, padj = t.matrix()
    assert padj[0, 2] < 0.05 and np.isnan(padj[2, 0])  # the reverse direction was not tested
    with pytest.raises(ValueError, match="alternative must be one of"):
        pairwise(GROUPS, alternative="lower")
