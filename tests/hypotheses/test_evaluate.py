"""Verdicts on stores written directly: Holm by hand, planted effects, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from optiscope.errors import OptiscopeError
from optiscope.hypotheses.evaluate import verify_store

from .conftest import land, land_finals


def toml(*hypotheses: dict) -> str:
    def value(v):
        return f'"{v}"' if isinstance(v, str) else repr(v)

    return "\n".join("[[hypotheses]]\n" + "\n".join(f"{k} = {value(v)}" for k, v in h.items()) + "\n"
                     for h in hypotheses)


def claim(name, a, b, **kw):
    return {"name": name, "metric": "loss", "a": a, "b": b, "direction": "less"} | kw


def test_holm_across_hypotheses_against_a_hand_example(store):
    """Complete separation gives exact one-sided Mann-Whitney p-values 1/C(2n, n):
    n = 3, 4, 5 -> 1/20, 1/70, 1/252. Holm by hand (sorted ascending, times 3, 2, 1, running
    max): 3/252, 2/70, 1/20 -> in input order [0.05, 2/70, 3/252]."""
    for n, tag in ((3, "3"), (4, "4"), (5, "5")):
        land_finals(store, f"lo{tag}", f"low{tag}", np.arange(n) * 0.1, optimizer="adam")
        land_finals(store, f"hi{tag}", f"high{tag}", 5 + np.arange(n) * 0.1)
    store.save_config(toml(*(claim(f"h{n}", f"low{n}", f"high{n}", task="quadratic") for n in (3, 4, 5))))
    verdicts = verify_store(store.root)
    np.testing.assert_allclose([v.pvalue for v in verdicts], [1 / 20, 1 / 70, 1 / 252], rtol=1e-12)
    np.testing.assert_allclose([v.pvalue_adjusted for v in verdicts], [0.05, 2 / 70, 3 / 252], rtol=1e-12)
    assert [v.verdict for v in verdicts][1:] == ["holds", "holds"]
    assert verdicts[0].verdict != "holds"  # adjusted p = alpha is not below it
    assert all(v.effect.estimate == -1.0 for v in verdicts)  # Cliff's delta: a always smaller


def planted(store, shift: float, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    land_finals(store, "ca", "treated", rng.normal(0.0, 1.0, n), optimizer="adam")
    land_finals(store, "cb", "control", rng.normal(shift, 1.0, n), optimizer="sgd")


def test_a_planted_effect_holds_and_its_p_value_is_scipys(store):
    planted(store, shift=2.0, n=12)
    store.save_config(toml(claim("treated-lower", "treated", "control")))
    (v,) = verify_store(store.root)
    assert v.verdict == "holds", v.reason
    a, b = (store.fetch("SELECT m.value FROM metrics m JOIN runs r USING (run_id) WHERE r.cell_id = ? "
                        "AND m.step = 10 ORDER BY r.member", [c])["value"] for c in ("ca", "cb"))
    ref = stats.mannwhitneyu(a, b, alternative="less", method="exact")
    assert v.pvalue == pytest.approx(ref.pvalue, rel=1e-12, abs=1e-12)
    assert v.pvalue_adjusted == pytest.approx(ref.pvalue, rel=1e-12)  # a family of one
    assert (v.a, v.b, v.n_a, v.n_b) == ("treated", "control", 12, 12)


def test_without_the_effect_many_seeds_fail_and_few_are_inconclusive(tmp_path):
    from optiscope.store import RunStore

    many = RunStore.create(tmp_path / "many")
    planted(many, shift=0.0, n=80, seed=1)
    many.save_config(toml(claim("treated-lower", "treated", "control")))
    (v,) = verify_store(many.root)
    assert v.verdict == "fails" and v.power >= 0.8, v.reason
    few = RunStore.create(tmp_path / "few")
    planted(few, shift=0.0, n=5, seed=1)
    few.save_config(toml(claim("treated-lower", "treated", "control")))
    (v,) = verify_store(few.root)
    assert v.verdict == "inconclusive" and v.power < 0.8, v.reason
    assert "too few seeds" in v.reason


def test_an_effect_the_other_way_fails_even_with_few_seeds(store):
    planted(store, shift=-3.0, n=6)
    store.save_config(toml(claim("treated-lower", "treated", "control")))
    (v,) = verify_store(store.root)
    assert v.verdict == "fails" and "the other way" in v.reason


def test_a_significant_but_small_effect_does_not_hold(store):
    """Cliff's delta -1 is significant; min_effect above it (1.0 cannot be exceeded) is not met
    when a few values overlap."""
    a = np.r_[np.arange(30) * 0.01, 0.55]
    b = np.r_[0.5, 1 + np.arange(30) * 0.01]
    land_finals(store, "ca", "treated", a, optimizer="adam")
    land_finals(store, "cb", "control", b, optimizer="sgd")
    store.save_config(toml(claim("big", "treated", "control", min_effect=1.0)))
    (v,) = verify_store(store.root)
    assert v.pvalue_adjusted < 0.05 and v.effect.estimate > -1.0
    assert v.verdict != "holds" and "below min_effect" in v.reason


def test_diverged_runs_count_as_worst(store):
    """Cell a is better on every finished run but half its runs diverged: it does not hold."""
    n = 8
    finals = np.r_[np.zeros(4), [np.nan] * 4]
    land_finals(store, "ca", "treated", finals, optimizer="adam", status=["ok"] * 4 + ["diverged"] * 4,
                diverged_step=[None] * 4 + [5] * 4)
    land_finals(store, "cb", "control", np.ones(n), optimizer="sgd")
    store.save_config(toml(claim("treated-lower", "treated", "control")))
    (v,) = verify_store(store.root)
    assert v.worst_a == 4 and v.median_a == np.inf
    assert v.effect.estimate == pytest.approx(0.0)  # 4 wins, 4 losses of 8 each against 8
    assert v.verdict != "holds"


def test_rate_and_steps_to_target_from_stored_curves(store):
    """loss 10 -> 0 for cell a (reaches target 1 at step 10), never for cell b."""
    steps = [0, 5, 10]
    a = np.tile([10.0, 5.0, 0.0], (10, 1))
    b = np.tile([10.0, 9.0, 8.0], (10, 1))
    land(store, "ca", "treated", {"loss": a}, steps, optimizer="adam")
    land(store, "cb", "control", {"loss": b}, steps)
    store.save_config(toml(
        claim("faster", "treated", "control", statistic="steps_to_target", target=1.0),
        claim("reaches-more", "treated", "control", statistic="rate", target=1.0, direction="greater"),
    ))
    faster, rate = verify_store(store.root)
    assert faster.median_a == 10 and faster.median_b == np.inf and faster.worst_b == 10
    assert faster.verdict == "holds"
    assert rate.test == "fisher" and rate.effect.estimate == 1.0 and rate.verdict == "holds"
    assert rate.pvalue == pytest.approx(stats.fisher_exact([[10, 0], [0, 10]], alternative="greater").pvalue, rel=1e-12)


def test_final_rate_counts_where_runs_end_and_rate_where_they_have_been(store):
    """Cell a starts below the target (step 0) and ends above it in 6 of 10 runs; cell b starts
    above and ends below in 5. `rate` (any logged step) sees 10 vs 5, `final_rate` 4 vs 5."""
    steps = [0, 5, 10]
    a = np.array([[0.5, 3.0, 3.0]] * 6 + [[0.5, 0.5, 0.5]] * 4)
    b = np.array([[3.0, 2.0, 0.5]] * 5 + [[3.0, 3.0, 3.0]] * 5)
    land(store, "ca", "treated", {"loss": a}, steps, optimizer="adam")
    land(store, "cb", "control", {"loss": b}, steps)
    store.save_config(toml(
        claim("best", "treated", "control", statistic="rate", target=1.0, direction="greater"),
        claim("end", "treated", "control", statistic="final_rate", target=1.0, direction="greater"),
    ))
    best, end = verify_store(store.root)
    assert best.effect.estimate == pytest.approx(0.5) and end.effect.estimate == pytest.approx(-0.1)
    assert end.test == "fisher" and end.effect_measure == "rate_difference"
    assert end.pvalue == pytest.approx(stats.fisher_exact([[4, 6], [5, 5]], alternative="greater").pvalue, rel=1e-12)
    assert "final loss" in end.hypothesis.describe()


def test_forgetting_hypothesis_on_continual_curves(store):
    steps = [10, 20]
    keep = {"acc_task0": np.tile([0.9, 0.85], (6, 1)), "acc_task1": np.tile([0.0, 0.9], (6, 1))}
    forget = {"acc_task0": np.tile([0.9, 0.1], (6, 1)), "acc_task1": np.tile([0.0, 0.95], (6, 1))}
    goals = {"acc_task0": "max", "acc_task1": "max"}
    land(store, "ca", "shampoo", keep, steps, optimizer="shampoo", goals=goals,
         task="continual-split-digits")
    land(store, "cb", "adam", forget, steps, optimizer="adam", goals=goals, task="continual-split-digits")
    store.save_config(toml({"name": "forgets-less", "statistic": "forgetting", "a": "shampoo",
                            "b": "adam", "direction": "less"}))
    (v,) = verify_store(store.root)
    assert v.median_a == pytest.approx(0.05) and v.median_b == pytest.approx(0.8)
    assert v.verdict == "holds"


def test_bad_input_names_what_exists(store):
    planted(store, shift=1.0, n=4)
    with pytest.raises(OptiscopeError, match="unknown metric 'los'. Did you mean 'loss'"):
        verify_store(store.root, toml(claim("h", "treated", "control", metric="los")))
    with pytest.raises(OptiscopeError, match="a = 'treatd' names no cell.*'treated' \\(adam"):
        verify_store(store.root, toml(claim("h", "treatd", "control")))
    with pytest.raises(OptiscopeError, match="step = 7.*step 7 was not logged; logged steps: 0, 10"):
        verify_store(store.root, toml(claim("h", "treated", "control", statistic="at_step", step=7)))
    with pytest.raises(OptiscopeError, match="no saved config"):
        verify_store(store.root)
    with pytest.raises(OptiscopeError, match="no \\[\\[hypotheses\\]\\] tables"):
        verify_store(store.root, "[experiment]\nname = 'x'\n")


def test_tuning_trials_are_not_cells_a_hypothesis_can_name(store):
    planted(store, shift=1.0, n=4)
    land_finals(store, "tr", "adam · trial 0", np.zeros(4), optimizer="adam", role="trial")
    # "adam" names the optimizer of exactly one non-trial cell
    (v,) = verify_store(store.root, toml(claim("h", "adam", "control")))
    assert v.a == "treated"


def test_the_hypotheses_can_come_from_a_config_object_or_a_file(store, tmp_path):
    from optiscope.config import parse_config

    planted(store, shift=3.0, n=6)
    claims = toml(claim("treated-lower", "treated", "control"))
    path = tmp_path / "claims.toml"
    path.write_text(claims)
    cfg = parse_config({"experiment": {"name": "x"}, "tasks": [{"name": "least-squares"}],  # logs `loss`
                        "optimizers": [{"name": "adam", "label": "treated"}, {"name": "sgd", "label": "control"}],
                        "hypotheses": [claim("treated-lower", "treated", "control")]})
    results = [verify_store(store.root, claims), verify_store(store.root, config=path),
               verify_store(store.root, path), verify_store(store.root, config=cfg), verify_store(store.root, cfg)]
    assert {(v.name, v.verdict, v.pvalue) for (v,) in results} == {(results[0][0].name, "holds", results[0][0].pvalue)}


def test_the_same_store_gives_the_same_verdicts_and_intervals_twice(store):
    """A study's figures are a function of its store: the permutation and bootstrap draws are
    seeded (`seed`, default 0), so two verifications print the same intervals to the last bit."""
    planted(store, shift=0.3, n=10, seed=4)
    store.save_config(toml(claim("lower", "treated", "control"),
                           claim("on par", "treated", "control", direction="equivalent", margin=1.0)))
    first, second = verify_store(store.root), verify_store(store.root)
    assert [repr(v) for v in first] == [repr(v) for v in second]
    assert all(np.isfinite([v.effect.low, v.effect.high]).all() for v in first)  # intervals were drawn


def test_a_run_that_never_logged_the_metric_makes_the_hypothesis_invalid(store):
    """Two of a's runs finished (not failed, not diverged) but have no row of the metric (a probe
    never run on them): read as the worst value they would decide the test like divergences.
    The verdict is invalid, naming them."""
    low = np.stack([np.full(8, 10.0), np.arange(8) * 0.01], axis=1)
    low[:2] = np.nan  # no row at any step
    land(store, "ca", "treated", {"loss": low}, steps=[0, 10], optimizer="adam")
    land_finals(store, "cb", "control", 5 + np.arange(8) * 0.01, optimizer="sgd")
    store.save_config(toml(claim("treated-lower", "treated", "control")))
    (v,) = verify_store(store.root)
    assert v.verdict == "invalid" and v.unlogged == (2, 0)
    assert "2 of 8 runs of a 'treated' logged no value of loss" in v.reason
    assert v.guards_failed() == "metric logged"
