"""Group-sequential boundaries against published constants, closed forms and simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from optiscope.stats.group_sequential import (
    conditional_power,
    efficacy_bounds,
    exit_probabilities,
    futility_bound,
    spent,
)

#: Pocock (1977) and O'Brien & Fleming (1979) constants for K equally spaced looks at two-sided
#: 0.05 (one-sided 0.025), as tabled by Jennison & Turnbull (2000) Tables 2.1 and 2.3:
#: Pocock's boundary is C_P at every look, O'Brien-Fleming's C_B sqrt(K / k).
POCOCK = {2: 2.178, 3: 2.289, 4: 2.361, 5: 2.413}
OBRIEN_FLEMING = {2: 1.977, 3: 2.004, 4: 2.024, 5: 2.040}


@pytest.mark.parametrize("looks", [2, 3, 4, 5])
def test_the_recursion_reproduces_pocock_and_obrien_fleming_constants(looks):
    t = np.arange(1, looks + 1) / looks
    shape = np.sqrt(looks / np.arange(1, looks + 1))
    pocock = optimize.brentq(lambda c: exit_probabilities(t, np.full(looks, c)).power - 0.025, 1.5, 4)
    obf = optimize.brentq(lambda c: exit_probabilities(t, c * shape).power - 0.025, 1.5, 4)
    assert pocock == pytest.approx(POCOCK[looks], abs=6e-4)
    assert obf == pytest.approx(OBRIEN_FLEMING[looks], abs=6e-4)


def test_gsdesign_checks_of_repeated_testing_and_obrien_fleming_bounds():
    """gsDesign's inst/unitTests/runit.output.R: repeated two-sided tests at +-1.96 cross the
    upper bound with probability 0.042, 0.063, 0.097 for 2, 4, 10 looks; the O'Brien-Fleming
    bounds for 4 looks are 4.05, 2.86, 2.34, 2.02."""
    for looks, expected in [(2, 0.042), (4, 0.063), (10, 0.097)]:
        t = np.arange(1, looks + 1) / looks
        upper = exit_probabilities(t, np.full(looks, 1.96), two_sided=True).power / 2
        assert round(upper, 3) == expected
    t = np.arange(1, 5) / 4
    c = optimize.brentq(lambda c: exit_probabilities(t, c * np.sqrt(4 / np.arange(1, 5)), two_sided=True).power
                        - 0.05, 1.5, 4)
    assert np.round(c * np.sqrt(4 / np.arange(1, 5)), 2).tolist() == [4.05, 2.86, 2.34, 2.02]


def test_lan_demets_obrien_fleming_bounds_match_published_tables():
    """Lan-DeMets O'Brien-Fleming-type spending, one-sided. At alpha 0.05 and fractions
    0.25..1: SeqBounds.jl's README (3.74955, 2.53993, 2.01604, 1.72014, a grid of step 0.05 h,
    so agreement to about 1e-4). At 0.025 with 3 and 5 equally spaced looks: gsDesign's
    gsDesign(k, test.type = 1, sfu = sfLDOF) bounds (3.7103, 2.5114, 1.9930 and 4.8769,
    3.3569, 2.6803, 2.2898, 2.0310)."""
    np.testing.assert_allclose(efficacy_bounds([0.25, 0.5, 0.75, 1.0], 0.05),
                               [3.74955, 2.53993, 2.01604, 1.72014], atol=2e-4)
    np.testing.assert_allclose(efficacy_bounds(np.arange(1, 4) / 3, 0.025), [3.7103, 2.5114, 1.9930], atol=2e-4)
    np.testing.assert_allclose(efficacy_bounds(np.arange(1, 6) / 5, 0.025),
                               [4.8769, 3.3569, 2.6803, 2.2898, 2.0310], atol=2e-4)


@pytest.mark.parametrize("spending", ["obrien-fleming", "pocock"])
@pytest.mark.parametrize("two_sided", [False, True])
def test_each_look_spends_what_the_spending_function_says(spending, two_sided):
    t = np.array([0.2, 0.45, 0.5, 0.8, 1.0])  # unequal spacing
    c = efficacy_bounds(t, 0.05, spending, two_sided=two_sided)
    crossed = np.cumsum(exit_probabilities(t, c, two_sided=two_sided).efficacy)
    np.testing.assert_allclose(crossed, spent(t, 0.05, spending), atol=2e-7)
    assert crossed[-1] == pytest.approx(0.05, abs=2e-7)


def test_boundaries_against_a_simulated_brownian_motion():
    """200 000 Brownian paths observed at the looks, independent of the recursion: the share
    crossing first at each look equals the alpha spent there within 4 standard errors."""
    rng = np.random.default_rng(0)
    t = np.array([0.3, 0.55, 0.8, 1.0])
    c = efficacy_bounds(t, 0.05, "pocock")
    steps = rng.normal(size=(200_000, t.size)) * np.sqrt(np.diff(np.concatenate([[0], t])))
    z = np.cumsum(steps, axis=1) / np.sqrt(t)
    crossed = z >= c
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    observed = np.array([(first == k).mean() for k in range(t.size)])
    expected = np.diff(np.concatenate([[0], spent(t, 0.05, "pocock")]))
    assert np.all(np.abs(observed - expected) < 4 * np.sqrt(expected / 200_000))


def test_one_look_is_the_fixed_n_test_and_power_is_the_normal_closed_form():
    assert efficacy_bounds([1.0], 0.05)[0] == pytest.approx(stats.norm.ppf(0.95), abs=1e-7)
    assert efficacy_bounds([1.0], 0.05, two_sided=True)[0] == pytest.approx(stats.norm.ppf(0.975), abs=1e-7)
    p = exit_probabilities([1.0], [1.645], drift=2.5).power
    assert p == pytest.approx(stats.norm.cdf(2.5 - 1.645), abs=1e-7)


def test_adding_a_look_keeps_the_earlier_boundaries():
    a = efficacy_bounds([0.25, 0.5], 0.05)
    b = efficacy_bounds([0.25, 0.5, 0.8, 1.0], 0.05)
    np.testing.assert_allclose(a, b[:2], atol=1e-9)


def test_conditional_power_with_one_look_left_is_the_b_value_formula():
    """Lan, Simon & Halperin (1982): with B = z sqrt(t), CP = 1 - Phi((c - B - theta (1 - t)) / sqrt(1 - t))."""
    z, t, c, theta = 1.1, 0.5, 1.9, 2.2
    cp = conditional_power(z, t, [1.0], [c], theta)
    assert cp == pytest.approx(1 - stats.norm.cdf((c - z * np.sqrt(t) - theta * (1 - t)) / np.sqrt(1 - t)), abs=1e-7)
    f = futility_bound(t, [1.0], [c], theta, 0.1)
    assert conditional_power(f, t, [1.0], [c], theta) == pytest.approx(0.1, abs=1e-5)


def test_bad_input_is_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match="increase strictly"):
        efficacy_bounds([0.5, 0.4], 0.05)
    with pytest.raises(ValueError, match="obrien-fleming, pocock"):
        efficacy_bounds([1.0], 0.05, "haybittle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        efficacy_bounds([1.0], 1.5)
