"""Validity guards: `requires` conditions and the plasticity guard of forgetting hypotheses turn a
verdict into "invalid", with the failing condition and its measured values."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from optiscope.config import parse_config
from optiscope.engine.runner import run_experiment
from optiscope.errors import OptiscopeError
from optiscope.hypotheses.evaluate import verify_store
from optiscope.hypotheses.spec import DEFAULT_PLASTICITY, parse_hypothesis_list
from optiscope.store import RunStore

from .conftest import land, land_finals
from .test_evaluate import claim


def toml(*hypotheses: dict) -> str:
    """TOML text of hypotheses whose values may be lists of inline tables (`requires`)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    return "\n".join("[[hypotheses]]\n" + "\n".join(f"{k} = {value(v)}" for k, v in h.items()) + "\n"
                     for h in hypotheses)


def separated(store, n: int = 8, **kw_a) -> None:
    """treated (adam) every run below control (sgd): "treated < control" holds on its own."""
    land_finals(store, "ca", "treated", np.arange(n) * 0.01, optimizer="adam", **kw_a)
    land_finals(store, "cb", "control", 5 + np.arange(n) * 0.01, optimizer="sgd")


# -- the schema ---------------------------------------------------------------------------------
BASE = {"name": "h", "metric": "loss", "a": "x", "b": "y"}


def parse(**fields):
    (h,) = parse_hypothesis_list([BASE | fields])
    return h


@pytest.mark.parametrize(("condition", "expected"), [
    ({"side": "c", "metric": "loss", "op": "<", "value": 1}, "requires.0.side: Input should be 'a', 'b' or 'both'"),
    ({"metric": "loss", "op": "=", "value": 1}, "requires.0.op: Input should be '<', '<=', '>' or '>='"),
    ({"metric": "loss", "op": "<", "value": 1, "statistic": "rate"},
     "requires.0.statistic: Input should be 'final', 'at_step', 'min', 'max', 'auc' or 'steps_to_target'"),
    ({"metric": "loss", "op": "<"}, "requires.0: a condition needs `value`"),
    ({"metric": "acc_task*", "op": ">=", "value": 0.9}, "is a family: `reduce` (median | mean | max | min)"),
    ({"metric": "loss", "reduce": "min", "op": "<", "value": 1}, "`reduce` has no effect here"),
    ({"metric": "loss", "op": "<", "value": 1, "step": 5}, "`step` has no effect here"),
    ({"metric": "loss", "statistic": "at_step", "op": "<", "value": 1}, "statistic 'at_step' needs `step`"),
    ({"max_diverged": 2, "metric": "loss"}, "`max_diverged` is a condition of its own"),
    ({"max_diverged": -1}, "requires.0.max_diverged: Input should be greater than or equal to 0"),
    ({"metric": "loss", "op": "<", "value": 1, "colour": "red"},
     "unknown field 'requires.0.colour'; fields: name, side, metric, statistic"),
])
def test_a_bad_condition_names_the_field_and_the_allowed_values(condition, expected):
    with pytest.raises(OptiscopeError) as e:
        parse(requires=[condition])
    assert "hypotheses[0] ('h')" in str(e.value) and expected in str(e.value)


def test_conditions_parse_and_describe_themselves():
    h = parse(requires=[
        {"side": "both", "metric": "acc_task*", "statistic": "max", "reduce": "min", "op": ">=", "value": 0.9},
        {"side": "b", "metric": "loss", "op": "<", "value": 0.5, "all_seeds": True, "name": "b-trains"},
        {"side": "a", "max_diverged": 2},
    ])
    assert [r.describe() for r in h.guards] == [
        "both: max acc_task* (min over members) >= 0.9 (median over seeds)",
        "b: final loss < 0.5 (every seed)",
        "a: at most 2 diverged seeds",
    ]
    assert h.guards[1].label == "b-trains" and h.guards[1].sides == ("b",)
    assert h.guards[0].sides == ("a", "b")


def test_forgetting_gets_a_plasticity_guard_the_user_can_change_or_switch_off():
    forgetting = {"metric": None, "statistic": "forgetting"}
    (plastic,) = parse(**forgetting).guards
    assert plastic.label == "plasticity" and plastic.value == DEFAULT_PLASTICITY == 0.5
    assert (plastic.metric, plastic.statistic, plastic.reduce, plastic.op, plastic.side) == (
        "acc_task*", "max", "min", ">=", "both")
    assert parse(**forgetting, plasticity=0.9).guards[0].value == 0.9
    assert parse(**forgetting, plasticity=True).guards[0].value == DEFAULT_PLASTICITY
    assert parse(**forgetting, plasticity=False).guards == ()
    assert parse().guards == ()  # other statistics: no default guard
    for bad, expected in ((0, "plasticity is an accuracy floor in (0, 1]"), (1.5, "in (0, 1]"),
                          ("yes", "plasticity: an accuracy floor in (0, 1], or true / false (got 'yes')")):
        with pytest.raises(OptiscopeError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            parse(**forgetting, plasticity=bad)
    with pytest.raises(OptiscopeError, match="`plasticity` guards statistic = 'forgetting' only"):
        parse(plasticity=0.5)


def test_requires_in_an_experiment_file_is_validated_with_the_config():
    with pytest.raises(OptiscopeError, match="requires.0.side"):
        parse_config({"experiment": {"name": "x"}, "tasks": [{"name": "quadratic"}],
                      "optimizers": [{"name": "adam"}, {"name": "sgd"}],
                      "hypotheses": [{"name": "h", "metric": "f_gap", "a": "adam", "b": "sgd",
                                      "requires": [{"side": "x", "metric": "f_gap", "op": "<", "value": 1}]}]})


# -- verdicts -----------------------------------------------------------------------------------
def test_a_met_guard_leaves_the_verdict_and_records_what_it_measured(store):
    separated(store)
    store.save_config(toml(claim("lower", "treated", "control",
                                 requires=[{"side": "both", "metric": "loss", "op": "<", "value": 6}])))
    (v,) = verify_store(store.root)
    assert v.verdict == "holds", v.reason
    assert [(c.side, c.met, c.n, c.failing) for c in v.guards] == [("a", True, 8, 0), ("b", True, 8, 0)]
    assert v.guards[0].measured == pytest.approx(np.median(np.arange(8) * 0.01))
    assert v.guards[1].measured == pytest.approx(5.035)
    assert v.guards_failed() == ""


def test_an_unmet_guard_makes_the_verdict_invalid_with_the_measured_values(store):
    """The claim holds by the test, but side b never got below 1: the comparison is invalid."""
    separated(store)
    guard = {"side": "b", "metric": "loss", "op": "<", "value": 1, "name": "b-trained"}
    store.save_config(toml(claim("lower", "treated", "control", requires=[guard])))
    (v,) = verify_store(store.root)
    assert v.verdict == "invalid"
    (c,) = v.guards
    assert (c.side, c.cell, c.met, c.failing, c.n) == ("b", "control", False, 8, 8)
    assert c.measured == pytest.approx(5.035)
    assert "b-trained not met (b: final loss < 1 (median over seeds))" in v.reason
    assert "b 'control': median 5.04 (range 5 to 5.07), 8 of 8 seeds failing, 0 diverged" in v.reason
    assert "Without the guards: holds" in v.reason
    assert v.pvalue < 1e-3 and v.effect.estimate == -1.0  # the test still ran and is reported
    assert v.guards_failed() == "b-trained"


def test_the_median_rule_and_all_seeds(store):
    """Two of eight b runs end above 1: the median is below, but not every seed is."""
    land_finals(store, "ca", "treated", np.arange(8) * 0.01, optimizer="adam")
    land_finals(store, "cb", "control", np.r_[0.5 + np.arange(6) * 0.01, 3.0, 4.0], optimizer="sgd")
    median = {"side": "b", "metric": "loss", "op": "<", "value": 1}
    store.save_config(toml(claim("median", "treated", "control", requires=[median]),
                           claim("every", "treated", "control", requires=[median | {"all_seeds": True}])))
    by_median, every_seed = verify_store(store.root)
    assert by_median.verdict == "holds" and by_median.guards[0].failing == 2
    assert every_seed.verdict == "invalid" and "2 of 8 seeds failing" in every_seed.reason


def test_diverged_seeds_fail_a_guard_even_where_their_value_passes(store):
    """Five of eight a runs diverged at step 8, after logging a small loss at step 5: the
    value at step 5 passes `< 1`, but a diverged seed counts as failing the condition."""
    steps = [0, 5, 10]
    values = np.tile([10.0, 0.1, 0.05], (8, 1))
    values[3:, 2] = np.nan
    land(store, "ca", "treated", {"loss": values}, steps, optimizer="adam",
         status=["ok"] * 3 + ["diverged"] * 5, diverged_step=[None] * 3 + [8] * 5)
    land(store, "cb", "control", {"loss": np.tile([10.0, 9.0, 8.0], (8, 1))}, steps)
    guard = {"side": "a", "metric": "loss", "statistic": "at_step", "step": 5, "op": "<", "value": 1}
    store.save_config(toml(claim("early", "treated", "control", statistic="at_step", step=5, requires=[guard])))
    (v,) = verify_store(store.root)
    (c,) = v.guards
    assert (c.failing, c.diverged, c.measured) == (5, 5, np.inf)
    assert v.verdict == "invalid" and "5 of 8 seeds failing, 5 diverged" in v.reason


@pytest.mark.parametrize(("k", "verdict"), [(2, "invalid"), (3, "holds")])
def test_no_more_than_k_diverged_seeds(store, k, verdict):
    """Three of twenty a runs diverged (counted as worst): a is still below b in 340 of 400
    pairs (Cliff's delta -0.7), so the claim holds, unless at most 2 seeds may diverge."""
    status = ["ok"] * 17 + ["diverged"] * 3
    land_finals(store, "ca", "treated", np.r_[np.arange(17) * 0.01, [np.nan] * 3], optimizer="adam",
                status=status, diverged_step=[None] * 17 + [5] * 3)
    land_finals(store, "cb", "control", 5 + np.arange(20) * 0.01, optimizer="sgd")
    store.save_config(toml(claim("lower", "treated", "control",
                                 requires=[{"side": "both", "max_diverged": k}])))
    (v,) = verify_store(store.root)
    assert v.verdict == verdict, v.reason
    a, b = v.guards
    assert (a.diverged, a.met, b.diverged, b.met) == (3, k >= 3, 0, True)
    if verdict == "invalid":
        assert "a 'treated': 3 of 20 seeds diverged" in v.reason and "at most 2 diverged seeds" in v.reason


def continual(store, learns_late_tasks: bool) -> None:
    """Three tasks. 'adam' learns each task and forgets it; 'shampoo' keeps task 0 and, unless
    `learns_late_tasks`, never learns tasks 1 and 2 (best accuracy 0.05 and 0.1)."""
    steps = [10, 20, 30]
    goals = {f"acc_task{k}": "max" for k in range(3)}
    adam = {"acc_task0": [0.95, 0.1, 0.05], "acc_task1": [0.0, 0.95, 0.1], "acc_task2": [0.0, 0.0, 0.95]}
    late = [0.0, 0.9, 0.85] if learns_late_tasks else [0.0, 0.05, 0.05]
    shampoo = {"acc_task0": [0.95, 0.9, 0.9], "acc_task1": late, "acc_task2": [0.0, 0.0, 0.9 if learns_late_tasks else 0.1]}
    rng = np.random.default_rng(0)
    for cid, label, curves in (("cs", "shampoo", shampoo), ("ca", "adam", adam)):
        land(store, cid, label, {k: np.clip(np.tile(v, (8, 1)) + rng.uniform(0, 0.01, (8, 3)), 0, 1)
                                 for k, v in curves.items()},
             steps, optimizer=label, goals=goals, task="continual-split-digits")


FORGETS_LESS = {"name": "forgets-less", "statistic": "forgetting", "a": "shampoo", "b": "adam", "direction": "less"}


def test_plasticity_guard_is_on_by_default_for_forgetting(store):
    """Shampoo 'forgets less' only because it never learned tasks 1 and 2: invalid (plasticity)."""
    continual(store, learns_late_tasks=False)
    store.save_config(toml(FORGETS_LESS))
    (v,) = verify_store(store.root)
    assert v.verdict == "invalid"
    assert v.guards_failed() == "plasticity"
    a, b = v.guards
    assert not a.met and b.met
    assert a.measured == pytest.approx(0.055, abs=0.006)  # the worst task's best accuracy
    assert b.measured == pytest.approx(0.955, abs=0.006)
    assert "plasticity not met (both: max acc_task* (min over members) >= 0.5 (median over seeds))" in v.reason
    assert "a 'shampoo': median 0.05" in v.reason and "Without the guards: holds" in v.reason


def test_plasticity_guard_passes_when_both_learn_and_can_be_changed_or_switched_off(tmp_path):
    learned = RunStore.create(tmp_path / "learned")
    continual(learned, learns_late_tasks=True)
    learned.save_config(toml(FORGETS_LESS))
    (v,) = verify_store(learned.root)
    assert v.verdict == "holds" and all(c.met for c in v.guards), v.reason
    stuck = RunStore.create(tmp_path / "stuck")
    continual(stuck, learns_late_tasks=False)
    (off,) = verify_store(stuck.root, toml(FORGETS_LESS | {"plasticity": False}))
    assert off.verdict == "holds" and off.guards == ()
    (low,) = verify_store(stuck.root, toml(FORGETS_LESS | {"plasticity": 0.04}))
    assert low.verdict == "holds" and [c.met for c in low.guards] == [True, True]


def test_a_guard_on_an_unknown_metric_is_bad_input(store):
    separated(store)
    with pytest.raises(OptiscopeError, match="requires b-ok: unknown metric 'los'. Did you mean 'loss'"):
        verify_store(store.root, toml(claim("h", "treated", "control", requires=[
            {"side": "b", "metric": "los", "op": "<", "value": 1, "name": "b-ok"}])))
    with pytest.raises(OptiscopeError, match=r"requires \[0\]: metric = 'acc\*' matches no metric"):
        verify_store(store.root, toml(claim("h", "treated", "control", requires=[
            {"side": "b", "metric": "acc*", "reduce": "min", "op": "<", "value": 1}])))
    with pytest.raises(OptiscopeError, match="step = 7: cell 'treated': step 7 was not logged"):
        verify_store(store.root, toml(claim("h", "treated", "control", requires=[
            {"side": "a", "metric": "loss", "statistic": "at_step", "step": 7, "op": "<", "value": 1}])))


STUDY = """
[experiment]
name = "guarded"
seeds = 6
steps = 30
eval_every = 10

[[tasks]]
name = "quadratic"
dim = 4
condition = 10.0

[[optimizers]]
name = "sgd"
lr = 0.1
label = "fast"

[[optimizers]]
name = "sgd"
lr = 0.001
label = "slow"

[[hypotheses]]
name = "fast-reaches-a-smaller-gap"
metric = "f_gap"
a = "fast"
b = "slow"
direction = "less"
requires = [{ side = "both", metric = "f_gap", statistic = "final", op = "<", value = {bound}, name = "trained" }]
"""


@pytest.mark.parametrize("bound", ["1e9", "1.0"])
def test_a_trained_store_the_slow_side_fails_to_train(tmp_path, bound):
    """Trained for real: in 30 steps sgd at lr 0.1 takes a quadratic's gap to about 0.005 and at
    lr 0.001 leaves it near 50, so "fast < slow" holds by the test and is invalid once both
    sides must reach a gap below 1."""
    text = STUDY.replace("{bound}", bound)
    store = RunStore.create(tmp_path / "store")
    run_experiment(parse_config(tomllib.loads(text)), store, config_text=text)
    (v,) = verify_store(store.root)
    fast, slow = v.guards
    assert fast.met and fast.measured < 0.1
    if bound == "1e9":
        assert v.verdict == "holds" and slow.met, v.reason
    else:
        assert v.verdict == "invalid" and not slow.met and slow.measured > 10
        assert "trained not met" in v.reason and "b 'slow': median" in v.reason


@pytest.mark.slow
def test_the_shipped_forgetting_study_shortened_is_invalid_by_plasticity(tmp_path):
    """The Shampoo forgetting study's version 1 (studies/pascanu_forgetting_shampoo/v1), trained
    for real at its own settings but 3 tasks and 4 seeds (about 50 s on a CPU): Shampoo at its default step does
    not learn tasks 1 and 2 (median worst-task best accuracy measured 0.08; Adam 0.99), so
    "Shampoo forgets less" is invalid (plasticity), not "holds"."""
    from pathlib import Path

    study = Path(__file__).resolve().parents[2] / "studies" / "pascanu_forgetting_shampoo" / "v1" / "study.toml"
    text = (study.read_text().replace("seeds = 8", "seeds = 4").replace("steps = 500", "steps = 300")
            .replace("steps_per_stage = 100", "steps_per_stage = 100\nn_tasks = 3"))
    store = RunStore.create(tmp_path / "store")
    run_experiment(parse_config(tomllib.loads(text)), store, config_text=text)
    (v,) = verify_store(store.root)
    assert v.verdict == "invalid" and v.guards_failed() == "plasticity", v.reason
    shampoo, adam = v.guards
    assert not shampoo.met and shampoo.measured < 0.3
    assert adam.met and adam.measured > 0.9
    assert v.effect.estimate < 0  # by forgetting alone Shampoo "forgets less"
