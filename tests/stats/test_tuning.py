"""Best-setting selection and sensitivity curves."""

from __future__ import annotations

import numpy as np
import pytest

from optiscope.stats import best_setting, sensitivity


def test_best_setting_uses_the_median_with_diverged_seeds_worst():
    sel = {0.1: [0.2, 0.3, np.inf, np.inf, np.inf], 0.01: [0.5, 0.6, 0.55], 1.0: [np.inf]}
    assert best_setting(sel, "min") == 0.01
    assert best_setting({"a": [0.9, 0.8], "b": [0.95, 0.7]}, "max") == "a"
    with pytest.raises(ValueError, match="'min' or 'max'"):
        best_setting(sel, "lower")


def test_sensitivity_sorts_by_x_and_reports_quantile_bands():
    c = sensitivity([1.0, 0.1], [np.array([3.0, 4.0, 5.0, np.inf]), np.array([1.0, 2.0, 3.0])])
    np.testing.assert_array_equal(c.x, [0.1, 1.0])
    np.testing.assert_allclose(c.median, [2.0, 4.0])
    np.testing.assert_allclose(c.low, [1.5, 3.5])
    np.testing.assert_array_equal(c.n_finite, [3, 3])
