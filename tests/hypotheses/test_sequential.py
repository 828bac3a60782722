"""The sequential decision rule, one call after each batch, and its agreement with the simulator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from optiscope.errors import OptiscopeError
from optiscope.hypotheses.power import mann_whitney_power
from optiscope.hypotheses.sequential import (
    Claim,
    Look,
    SequentialPlan,
    drift,
    look_path,
    planned_design,
    sequential_look,
)
from optiscope.hypotheses.sequential_simulation import CODES, cliffs_delta_shift, simulate
from optiscope.hypotheses.spec import Hypothesis
from optiscope.stats.group_sequential import efficacy_bounds

PLAN = SequentialPlan(max_seeds=32, batch=8, alpha=0.05)


def run(outcomes: dict, claims: list[Claim], plan: SequentialPlan = PLAN, schedule=None):
    """Call sequential_look after each batch of the schedule, as the CLI will; return the
    results and every look (each stored through its dict, as JSON)."""
    looks: list[dict] = []
    results = []
    for n in schedule or plan.schedule():
        sub = {k: (a[:n], b[:n]) for k, (a, b) in outcomes.items()}
        r = sequential_look(sub, claims, plan, looks)
        looks += [json.loads(json.dumps(lk.to_dict())) for lk in r.looks]
        results.append(r)
        if r.done:
            break
    return results, looks


def test_one_look_design_is_the_fixed_n_power():
    claim = Claim("h", "greater", 0.4, 0.8)
    d = planned_design(claim, SequentialPlan(max_seeds=20, batch=20))
    assert d.power == pytest.approx(mann_whitney_power(20, 20, 0.4, 0.05), abs=1e-6)
    assert d.efficacy[0] == pytest.approx(1.6448536, abs=1e-6)


def test_a_large_effect_holds_early_and_the_look_is_stored():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 32), rng.normal(3, 1, 32)
    results, looks = run({"h": (a, b)}, [Claim("h", "less")])
    last = results[-1].decisions["h"]
    assert last.verdict == "holds" and len(results) < 4
    assert last.look is not None and last.look.statistic >= last.look.boundary
    assert last.look.effect < -0.8  # Cliff's delta of a against b
    assert Look.from_dict(looks[-1]) == last.look
    assert results[-1].done and results[-1].next_seeds is None


def test_the_opposite_effect_fails_for_futility():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1, 1, 32), rng.normal(0, 1, 32)
    results, _ = run({"h": (a, b)}, [Claim("h", "less")])
    d = results[-1].decisions["h"]
    assert d.verdict == "fails" and "futility" in d.reason
    assert d.look is not None and d.look.statistic < d.look.futility


def test_at_max_seeds_too_little_power_is_inconclusive_with_the_power_reached():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 8), rng.normal(0, 1, 8)
    plan = SequentialPlan(max_seeds=8, batch=4, futility_floor=0.0)
    results, _ = run({"h": (a, b)}, [Claim("h", "two-sided", 0.2)], plan)
    d = results[-1].decisions["h"]
    assert d.verdict == "inconclusive"
    assert d.look is not None and d.look.power < 0.8 and f"{d.look.power:.2f}" in d.reason


def test_no_new_runs_no_new_look():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 8), rng.normal(0.2, 1, 8)
    first = sequential_look({"h": (a, b)}, [Claim("h", "less")], PLAN)
    assert first.decisions["h"].verdict == "continue" and first.next_seeds == 16
    again = sequential_look({"h": (a, b)}, [Claim("h", "less")], PLAN, first.looks)
    assert again.looks == [] and again.decisions["h"].verdict == "continue"


def test_holm_recycles_the_alpha_of_a_rejected_hypothesis():
    """Two hypotheses at one look: 'weak' lies between the boundary at alpha (level after the
    other is rejected) and at alpha / 2 (its first level); it holds only because 'strong' did."""
    plan = SequentialPlan(max_seeds=16, batch=16)
    c_half, c_full = efficacy_bounds([1.0], 0.025)[0], efficacy_bounds([1.0], 0.05)[0]
    rng = np.random.default_rng(4)
    for _ in range(2000):
        a, b = rng.normal(0.6, 1, 16), rng.normal(0, 1, 16)
        r = sequential_look({"weak": (a, b)}, [Claim("weak", "greater")], plan)
        if c_full <= r.looks[0].statistic < c_half:
            break
    else:
        pytest.fail("no sample between the two boundaries")
    strong = (rng.normal(3, 1, 16), rng.normal(0, 1, 16))
    alone = sequential_look({"weak": (a, b), "null": (a, a)}, [Claim("weak", "greater"), Claim("null", "greater")],
                            plan)
    assert alone.decisions["weak"].verdict != "holds"
    both = sequential_look({"weak": (a, b), "strong": strong},
                           [Claim("weak", "greater"), Claim("strong", "greater")], plan)
    assert both.decisions["strong"].verdict == "holds"
    assert both.decisions["weak"].verdict == "holds"
    assert both.decisions["weak"].look.level == pytest.approx(0.05)


def test_simulator_decides_as_sequential_look_experiment_by_experiment():
    """The vectorised simulator (used for the error rates) against the per-call rule: same
    verdict and same deciding look on 40 experiments of a null and an effect hypothesis."""
    shift = cliffs_delta_shift(0.33)
    claims = [Claim("null", "less"), Claim("effect", "greater", 0.33), Claim("both", "two-sided", 0.5)]

    def sampler(rng, n_sim, n):
        x = np.round(rng.normal(0, 1, (n_sim, n)), 1)
        y = np.round(rng.normal(0, 1, (n_sim, n)), 1)
        x[rng.random((n_sim, n)) < 0.1] = np.inf
        e = rng.normal(shift, 1, (n_sim, n))
        return [(x, y), (e, y), (e, x)]

    sim = simulate(claims, PLAN, sampler, 40, seed=5)
    data = sampler(np.random.default_rng(5), 40, PLAN.max_seeds)
    codes = {v: k for k, v in CODES.items()}
    for i in range(40):
        outcomes = {c.name: (d[0][i], d[1][i]) for c, d in zip(claims, data, strict=True)}
        results, looks = run(outcomes, claims)
        for h, c in enumerate(claims):
            d = results[-1].decisions[c.name]
            assert d.verdict == codes[int(sim.verdict[h, i])], (i, c.name)
            assert d.look is not None and d.look.index - 1 == sim.decided_look[h, i]
        assert min(lk["n_a"] for lk in looks if lk["index"] == max(x["index"] for x in looks)) <= sim.seeds[i]


def test_look_path_gives_the_stored_path_in_order():
    rng = np.random.default_rng(6)
    a, b = rng.normal(0, 1, 32), rng.normal(0.5, 1, 32)
    _, looks = run({"h": (a, b)}, [Claim("h", "less")])
    path = look_path(list(reversed(looks)), "h")
    assert path["seeds"] == sorted(path["seeds"]) == [8, 16, 24, 32][: len(looks)]
    assert path["statistic"][0] == pytest.approx(looks[0]["statistic"])
    assert all(e > f for e, f in zip(path["efficacy"], path["futility"], strict=True))


def test_a_decided_hypothesis_keeps_its_verdict_and_gets_no_new_look():
    rng = np.random.default_rng(7)
    a, b = rng.normal(0, 1, 32), rng.normal(3, 1, 32)
    first = sequential_look({"h": (a[:16], b[:16])}, [Claim("h", "less")], PLAN)
    assert first.decisions["h"].verdict == "holds"
    later = sequential_look({"h": (a[:24], b[:24])}, [Claim("h", "less")], PLAN, first.looks)
    assert later.looks == [] and later.decisions["h"].verdict == "holds" and later.done


def test_unequal_sides_use_the_harmonic_information():
    """A cell with failed runs has fewer values: the fraction is 2 n_a n_b / (n_a + n_b) / max."""
    rng = np.random.default_rng(8)
    r = sequential_look({"h": (rng.normal(0, 1, 8), rng.normal(0, 1, 24))}, [Claim("h", "greater")], PLAN)
    assert r.looks[0].fraction == pytest.approx(2 * 8 * 24 / 32 / 32)
    assert (r.looks[0].n_a, r.looks[0].n_b) == (8, 24)


def test_drift_is_noethers_mean_of_z():
    assert drift(0.4, 20) == pytest.approx(0.2 * np.sqrt(12 * 400 / 41))


def test_bad_input_fails_with_the_field_and_the_allowed_values():
    h = Hypothesis.model_validate({"name": "e", "metric": "m", "a": "x", "b": "y", "direction": "equivalent",
                                   "margin": 0.1})
    with pytest.raises(OptiscopeError, match="equivalence stays fixed-n"):
        Claim.from_hypothesis(h)
    h2 = Hypothesis.model_validate({"name": "g", "metric": "m", "a": "x", "b": "y", "direction": "less"})
    assert Claim.from_hypothesis(h2) == Claim("g", "less", 0.33, 0.8)
    h3 = Hypothesis.model_validate({"name": "r", "metric": "m", "a": "x", "b": "y", "statistic": "rate",
                                    "target": 0.1})
    with pytest.raises(OptiscopeError, match="test = 'fisher' cannot run sequentially"):
        Claim.from_hypothesis(h3)
    with pytest.raises(OptiscopeError, match="spending = 'linear' is not one of obrien-fleming, pocock"):
        SequentialPlan(max_seeds=32, batch=8, spending="linear")  # type: ignore[arg-type]
    assert SequentialPlan.from_dict({"max_seeds": 64, "batch": 8, "spending": "pocock"}) == SequentialPlan(
        64, 8, spending="pocock")
    with pytest.raises(OptiscopeError, match="unknown field 'max_seed'; fields: max_seeds, batch"):
        SequentialPlan.from_dict({"max_seed": 64, "batch": 8})
    with pytest.raises(OptiscopeError, match="`batch` is required"):
        SequentialPlan.from_dict({"max_seeds": 64})
    first = sequential_look({"h": (np.zeros(8), np.ones(8))}, [Claim("h", "less")], PLAN)
    with pytest.raises(OptiscopeError, match="plan cannot change mid-verification"):
        sequential_look({"h": (np.zeros(16), np.ones(16))}, [Claim("h", "less")],
                        SequentialPlan(max_seeds=64, batch=8), first.looks)
    with pytest.raises(OptiscopeError, match="max_seeds must be at least 2"):
        SequentialPlan(max_seeds=1, batch=1)
    with pytest.raises(OptiscopeError, match="no outcomes for hypotheses h"):
        sequential_look({}, [Claim("h", "less")], PLAN)
    with pytest.raises(OptiscopeError, match="names hypothesis 'zz'"):
        bad = Look("zz", 1, 8, 8, 0.25, 0.0, 4.0, -1.0, 0.05, 0.0, "continue", 0.8)
        sequential_look({"h": (np.zeros(8), np.ones(8))}, [Claim("h", "less")], PLAN, [bad])


def test_two_sided_no_difference_early_continues():
    """Identical samples give a two-sided z slightly below 0 (scipy's continuity correction);
    early on the minimum effect is still within reach, so the hypothesis continues."""
    x = np.arange(8.0)
    r = sequential_look({"h": (x, x.copy())}, [Claim("h", "two-sided")], SequentialPlan(max_seeds=48, batch=8))
    assert r.looks[0].statistic < 0 and r.looks[0].futility == -np.inf
    assert r.decisions["h"].verdict == "continue"


def test_looks_off_the_plan_spend_alpha_at_their_own_fractions():
    """Batches need not follow the plan (a crash, seeds already stored): each look's boundary is
    the Lan-DeMets boundary at the fractions actually seen, and a look past max_seeds is the last."""
    rng = np.random.default_rng(9)
    a, b = rng.normal(0, 1, 40), rng.normal(0, 1, 40)
    claim = Claim("h", "greater", 0.33)
    plan = SequentialPlan(max_seeds=32, batch=8, futility_floor=0.0)  # no futility: every look is taken
    _, looks = run({"h": (a, b)}, [claim], plan, schedule=[10, 17, 30, 40])
    assert [lk["n_a"] for lk in looks] == [10, 17, 30, 40]
    t = [lk["fraction"] for lk in looks]
    assert t[-1] == 1.0 and looks[-1]["decision"] in ("fails", "inconclusive")
    np.testing.assert_allclose([lk["boundary"] for lk in looks], efficacy_bounds(t, 0.05), atol=1e-9)
