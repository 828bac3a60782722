"""Holm's adjustment against a hand-worked example."""

from __future__ import annotations

import numpy as np
import pytest

from optiscope.stats import holm


def test_holm_matches_hand_worked_example_in_input_order():
    # m = 4. Sorted: 0.005 (x4), 0.01 (x3), 0.03 (x2), 0.04 (x1)
    #   -> 0.020, 0.030, 0.060, 0.040 -> running max 0.020, 0.030, 0.060, 0.060.
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_keeps_nan_out_of_the_family():
    # Family of 3 (NaN excluded): 0.2*3 = 0.6, 0.5*2 = 1.0, 0.9*1 -> max(1.0, 0.9) = 1.0
    out = holm([0.5, np.nan, 0.2, 0.9])
    np.testing.assert_allclose(out, [1.0, np.nan, 0.6, 1.0])


def test_holm_is_never_below_raw_and_never_above_bonferroni():
    p = np.random.default_rng(0).uniform(size=20) ** 3
    adj = holm(p)
    assert (adj >= p).all() and (adj <= np.minimum(1, 20 * p) + 1e-15).all()


def test_holm_rejects_values_outside_unit_interval():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.5, 1.5])
