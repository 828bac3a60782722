"""`[[hypotheses]]` validation: fields, allowed values, and cells resolved against the config."""

from __future__ import annotations

import pytest

from optiscope.config import parse_config
from optiscope.errors import OptiscopeError
from optiscope.hypotheses.spec import Hypothesis, config_cells, parse_hypothesis_list


def config(hypotheses, optimizers=None, tasks=None, **extra):
    return parse_config({
        "experiment": {"name": "h", "seeds": 3, "steps": 10},
        "tasks": tasks or [{"name": "quadratic"}],
        "optimizers": optimizers or [{"name": "sgd", "lr": [0.1, 0.2]}, {"name": "adam"}],
        "hypotheses": hypotheses, **extra,
    })


BASE = {"name": "h", "metric": "f_gap", "a": "adam", "b": "sgd(lr=0.1)", "direction": "less"}


def test_a_valid_hypothesis_parses_with_its_defaults():
    cfg = config([BASE])
    (h,) = parse_hypothesis_list(cfg.hypotheses)
    assert (h.statistic, h.test_name, h.alpha, h.effect_measure, h.smallest_effect) == (
        "final", "mann-whitney", 0.05, "cliffs_delta", 0.33)
    assert h.describe() == "adam < sgd(lr=0.1) on final f_gap"


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("direction", "lesser", "'less', 'greater', 'two-sided' or 'equivalent'"),
    ("statistic", "last", "'final', 'at_step', 'min', 'max', 'auc', 'steps_to_target', 'forgetting', 'rate' or 'final_rate'"),
    ("test", "t-test", "'mann-whitney', 'permutation' or 'fisher'"),
    ("alpha", 1.5, "alpha: Input should be less than 1"),
    ("colour", "red", "unknown field 'colour'; fields: name, metric"),
])
def test_a_bad_field_is_named_with_the_allowed_values(field, value, expected):
    with pytest.raises(OptiscopeError) as e:
        config([BASE | {field: value}])
    assert "hypotheses[0] ('h')" in str(e.value) and field in str(e.value)
    assert expected in str(e.value)


@pytest.mark.parametrize(("change", "expected"), [
    ({"statistic": "at_step"}, "needs `step`"),
    ({"statistic": "steps_to_target"}, "needs `target`"),
    ({"direction": "equivalent"}, "needs `margin`"),
    ({"test": "fisher"}, "needs statistic = 'rate'"),
    ({"statistic": "rate", "target": 0.1, "test": "permutation"}, "test = 'fisher'"),
    ({"statistic": "final_rate", "target": 0.1, "test": "mann-whitney"}, "test = 'fisher'"),
    ({"statistic": "final_rate"}, "needs `target`"),
    ({"metric": None}, "`metric` is required"),
    ({"b": "adam"}, "name the same cell"),
    ({"min_effect": 2.0}, "in [0, 1]"),
    ({"step": 500}, "`step` has no effect here (it is read by statistic = 'at_step' only)"),
    ({"target": 0.1}, "`target` has no effect here"),
    ({"margin": 0.1}, "`margin` has no effect here"),
    ({"reduce": "max"}, "`reduce` has no effect here"),
])
def test_inconsistent_fields_fail_with_what_is_needed(change, expected):
    entry = {k: v for k, v in (BASE | change).items() if v is not None}
    with pytest.raises(OptiscopeError, match=None) as e:
        config([entry])
    assert expected in str(e.value)


def test_a_typo_in_a_cell_lists_the_cells_that_exist():
    with pytest.raises(OptiscopeError) as e:
        config([BASE | {"a": "adm"}])
    msg = str(e.value)
    assert "a = 'adm' names no cell" in msg
    for label in ("'sgd(lr=0.1)'", "'sgd(lr=0.2)'", "'adam'"):
        assert label in msg


def test_an_optimizer_name_over_a_grid_is_ambiguous_and_lists_its_cells():
    with pytest.raises(OptiscopeError) as e:
        config([BASE | {"b": "sgd"}])
    assert "ambiguous" in str(e.value) and "'sgd(lr=0.1)'" in str(e.value) and "'sgd(lr=0.2)'" in str(e.value)


def test_a_label_wins_over_optimizer_names_and_task_narrows_two_tasks():
    optimizers = [{"name": "sgd", "lr": 0.1, "label": "fast"}, {"name": "sgd", "lr": 0.01, "label": "slow"}]
    tasks = [{"name": "quadratic"}, {"name": "rosenbrock"}]
    with pytest.raises(OptiscopeError, match="ambiguous"):
        config([BASE | {"a": "fast", "b": "slow"}], optimizers, tasks)
    cfg = config([BASE | {"a": "fast", "b": "slow", "task": "rosenbrock"}], optimizers, tasks)
    assert cfg.hypotheses[0]["task"] == "rosenbrock"
    with pytest.raises(OptiscopeError, match="task = 'sphere' matches no cell; tasks: quadratic, rosenbrock"):
        config([BASE | {"a": "fast", "b": "slow", "task": "sphere"}], optimizers, tasks)


def test_task_settings_narrow_a_task_grid():
    tasks = [{"name": "quadratic", "dim": [2, 4]}]
    optimizers = [{"name": "sgd", "label": "sgd"}, {"name": "adam", "label": "adam"}]
    with pytest.raises(OptiscopeError, match="ambiguous"):
        config([BASE | {"b": "sgd"}], optimizers, tasks)
    config([BASE | {"b": "sgd", "task_settings": {"dim": 4}}], optimizers, tasks)


def test_tuned_experiments_name_their_final_cells():
    cfg_dict = {"experiment": {"name": "h"}, "tasks": [{"name": "quadratic"}],
                "optimizers": [{"name": "adam"}], "tuning": {"studies": 2, "default": True}}
    from optiscope.config import ExperimentConfig

    cells = config_cells(ExperimentConfig.model_validate(cfg_dict))
    assert [c.label for c in cells] == ["adam tuned s0", "adam tuned s1", "adam default"]


def test_a_label_and_an_optimizer_name_of_the_same_cell_are_refused():
    with pytest.raises(OptiscopeError, match="name the same cell"):
        config([BASE | {"a": "adam", "b": "fast"}], [{"name": "adam", "label": "fast"}, {"name": "sgd"}])


def test_names_must_be_unique():
    with pytest.raises(OptiscopeError, match="'h' is used twice"):
        config([BASE, BASE])


def test_the_model_is_the_contract_field_set():
    """Engineer F writes studies with these names (contract 6): they must not change."""
    for name in ("name", "metric", "statistic", "step", "target", "task", "a", "b", "direction",
                 "margin", "test", "alpha", "min_effect"):
        assert name in Hypothesis.model_fields
