"""Performance profiles and the AlgoPerf score against hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest

from optiscope.stats import performance_profile

# Two solvers, three problems.  A: 10, 40, inf; B: 20, 20, 30.
# Ratios A: 1, 2, inf;  B: 2, 1, 1.
TIMES = np.array([[10.0, 40.0, np.inf], [20.0, 20.0, 30.0]])


def test_ratios_and_rho_by_hand():
    p = performance_profile(TIMES, ["A", "B"], ["p1", "p2", "p3"])
    np.testing.assert_array_equal(p.ratios, [[1, 2, np.inf], [2, 1, 1]])
    np.testing.assert_allclose(p.rho_at(1.0), [1 / 3, 2 / 3])
    np.testing.assert_allclose(p.rho_at(2.0), [2 / 3, 1.0])
    i = np.searchsorted(p.taus, 1.5)
    np.testing.assert_allclose(p.rho[:, i], [1 / 3, 2 / 3])


def test_algoperf_score_is_normalised_integral_to_tau_4():
    # A: integral_1^4 rho = [(4-1) + (4-2) + 0] / 3 = 5/3, normalised by 3 -> 5/9
    # B: [(4-2) + 3 + 3] / 3 = 8/3 -> 8/9
    p = performance_profile(TIMES, ["A", "B"])
    np.testing.assert_allclose(p.scores, [5 / 9, 8 / 9])
    # The grid integral agrees with the exact one.
    np.testing.assert_allclose(np.trapezoid(p.rho, p.taus, axis=1) / 3, p.scores, atol=0.01)


def test_problem_no_one_solves_counts_against_everyone():
    p = performance_profile([[1.0, np.inf], [2.0, np.inf]])
    assert np.isinf(p.ratios[:, 1]).all()
    np.testing.assert_allclose(p.scores, [0.5 * 1.0, 0.5 * (2 / 3)])


def test_bad_times_are_rejected():
    with pytest.raises(ValueError, match="positive"):
        performance_profile([[0.0, 1.0]])
    with pytest.raises(ValueError, match="shape"):
        performance_profile([1.0, 2.0])
