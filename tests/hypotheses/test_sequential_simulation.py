"""What the sequential design promises, measured on simulated experiments.

Each check runs N_SIM = 4000 sequential verifications (looks at 8, 16, ..., 48 seeds a side).
A false-positive rate is accepted up to alpha + 3 sqrt(alpha (1 - alpha) / N_SIM) (0.0603 at
alpha = 0.05): three Monte Carlo standard errors above alpha. Null data have ties (values
rounded to one decimal) and 10% diverged runs as the worst value (+inf), which tie among
themselves.
"""

from __future__ import annotations

import numpy as np
import pytest

from optiscope.hypotheses.power import mann_whitney_power
from optiscope.hypotheses.sequential import Claim, SequentialPlan, planned_design
from optiscope.hypotheses.sequential_simulation import cliffs_delta_shift, simulate

N_SIM = 4000
PLAN = SequentialPlan(max_seeds=48, batch=8, alpha=0.05)


def mc_bound(p: float, n: int = N_SIM) -> float:
    return p + 3 * np.sqrt(p * (1 - p) / n)


def null_cell(rng: np.random.Generator, n_sim: int, n: int, diverged: float = 0.1) -> np.ndarray:
    x = np.round(rng.normal(0, 1, (n_sim, n)), 1)
    x[rng.random((n_sim, n)) < diverged] = np.inf
    return x


@pytest.mark.parametrize(("direction", "spending"), [("less", "obrien-fleming"), ("greater", "obrien-fleming"),
                                                     ("two-sided", "pocock")])
def test_false_positive_rate_under_the_null_with_ties_and_diverged_runs(direction, spending):
    plan = SequentialPlan(max_seeds=48, batch=8, alpha=0.05, spending=spending)
    sim = simulate([Claim("h", direction)], plan,
                   lambda rng, k, n: [(null_cell(rng, k, n), null_cell(rng, k, n))], N_SIM, seed=11)
    fpr = sim.rate("holds")
    assert fpr <= mc_bound(0.05)
    assert fpr >= 0.05 / 2  # the design does reject: the test can fail both ways


def test_holm_keeps_the_family_wise_error_over_hypotheses_and_looks():
    """Three hypotheses on three cells of one null experiment (A-B, A-C, B-C: correlated, as
    hypotheses sharing cells are), and a partial null where a fourth cell differs by Cliff's
    delta 0.8 from A: its rejection recycles alpha to the null ones, whose family-wise error
    must still stay below alpha."""
    claims = [Claim("ab", "less"), Claim("ac", "two-sided"), Claim("bc", "greater")]

    def global_null(rng, k, n):
        a, b, c = (null_cell(rng, k, n) for _ in range(3))
        return [(a, b), (a, c), (b, c)]

    sim = simulate(claims, PLAN, global_null, N_SIM, seed=12)
    assert sim.any_holds([0, 1, 2]) <= mc_bound(0.05)

    shift = cliffs_delta_shift(0.8)

    def partial_null(rng, k, n):
        a, b, c = (null_cell(rng, k, n, diverged=0.0) for _ in range(3))
        d = rng.normal(shift, 1, (k, n))
        return [(a, d), (a, b), (b, c)]

    sim = simulate([Claim("ad", "less"), Claim("ab", "two-sided"), Claim("bc", "greater")], PLAN, partial_null,
                   N_SIM, seed=13)
    assert sim.rate("holds", 0) > 0.99  # the true effect is found, so alpha is recycled
    assert sim.any_holds([1, 2]) <= mc_bound(0.05)


@pytest.mark.parametrize(("direction", "spending"), [("less", "obrien-fleming"), ("two-sided", "pocock")])
def test_power_at_min_effect_reaches_the_stated_power_with_fewer_seeds_than_fixed_n(direction, spending):
    """At a true Cliff's delta equal to min_effect (a normal shift), the design holds at least
    as often as `planned_design` states (Noether's drift errs low, so the simulated power is a
    little higher), and it uses fewer seeds on average than the fixed-n test of equal power."""
    plan = SequentialPlan(max_seeds=48, batch=8, alpha=0.05, spending=spending)
    claim = Claim("h", direction, 0.33, 0.8)
    shift = cliffs_delta_shift(0.33)
    sim = simulate([claim], plan, lambda rng, k, n: [(rng.normal(0, 1, (k, n)), rng.normal(shift, 1, (k, n)))],
                   N_SIM, seed=14)
    stated = planned_design(claim, plan).power
    power = sim.rate("holds")
    se = np.sqrt(stated * (1 - stated) / N_SIM)
    assert stated - 3 * se <= power <= stated + 0.05
    two = direction == "two-sided"
    fixed_n = next(n for n in range(2, 200) if mann_whitney_power(n, n, 0.33, 0.05, two) >= stated)
    assert sim.seeds.mean() < 0.85 * fixed_n
    if stated >= claim.power:  # every other experiment stops as fails (none inconclusive)
        assert sim.rate("fails") == pytest.approx(1 - power)
