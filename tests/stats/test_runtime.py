"""Runtime to target and its ECDF against hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from optiscope.stats import coco_targets, ecdf_values, log_targets, runtime_ecdf, runtimes_to_targets


def test_coco_targets_are_51_log_spaced_from_1e2_to_1e_minus_8():
    t = coco_targets()
    assert t.size == 51 and t[0] == pytest.approx(100) and t[-1] == pytest.approx(1e-8)
    np.testing.assert_allclose(np.diff(np.log10(t)), -0.2)
    with pytest.raises(ValueError, match="positive"):
        log_targets(1.0, 0.0)


def test_first_hitting_budget_by_hand():
    budget = np.array([0, 10, 20, 30])
    values = np.array([
        [5.0, 1.0, 0.1, 0.01],      # reaches 1 at 10, 0.1 at 20, 0.001 never
        [5.0, 3.0, np.nan, np.nan],  # diverged after 10: never reaches 1
    ])
    r = runtimes_to_targets(budget, values, [1.0, 0.1, 0.001])
    np.testing.assert_array_equal(r, [[10, 20, np.inf], [np.inf, np.inf, np.inf]])


def test_goal_max_reaches_upwards():
    r = runtimes_to_targets([1, 2, 3], [[0.2, 0.6, 0.9]], [0.5, 0.95], goal="max")
    np.testing.assert_array_equal(r, [[2, np.inf]])


def test_ecdf_is_fraction_of_run_target_pairs_solved():
    runtimes = np.array([[10, 20, np.inf], [np.inf, np.inf, np.inf]])
    e = runtime_ecdf(runtimes, budgets=[5, 10, 15, 20, 100])
    np.testing.assert_allclose(e.proportion, [0, 1 / 6, 1 / 6, 2 / 6, 2 / 6])
    assert e.n_runs == 2 and e.n_targets == 3
    assert (e.low <= e.proportion + 1e-12).all() and (e.high >= e.proportion - 1e-12).all()


def test_ecdf_matches_scipy_on_finite_runtimes():
    r = np.random.default_rng(0).integers(1, 100, size=(6, 4)).astype(float)
    b = np.linspace(0, 110, 23)
    np.testing.assert_allclose(ecdf_values(r, b), stats.ecdf(r.ravel()).cdf.evaluate(b))


def test_band_is_degenerate_when_every_run_is_identical():
    e = runtime_ecdf(np.array([[1.0, 3.0]] * 5), budgets=[2.0])
    assert e.low[0] == e.high[0] == e.proportion[0] == 0.5
