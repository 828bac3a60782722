"""`[tuning]` validation: every mistake fails at parse time with the field and the allowed values,
and the tuning seeds never overlap the evaluation seeds."""

from __future__ import annotations

import copy

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from optiscope.config import parse_config
from optiscope.errors import OptiscopeError
from optiscope.tuning.space import parse_dimension
from optiscope.tuning.spec import TUNING_SEED_BASE, parse_tuning

BASE = {
    "experiment": {"name": "t", "seeds": 3, "steps": 10},
    "tasks": [{"name": "rosenbrock"}],
    "optimizers": [{"name": "adam", "label": "adam-a"}, {"name": "sgd"}],
    "tuning": {"metric": "f_gap", "space": {"adam-a": {"lr": {"log_uniform": [1e-4, 1e-1]}}}},
}


def config(**tuning):
    raw = copy.deepcopy(BASE)
    raw["tuning"].update(tuning)
    return raw


def error(raw) -> str:
    with pytest.raises(OptiscopeError) as exc:
        parse_config(raw)
    return str(exc.value)


def test_a_valid_table_resolves_goal_keys_seeds_and_split():
    spec = parse_tuning(parse_config(config(studies=2, seeds_per_trial=2)))
    assert (spec.metric, spec.final_metric, spec.goal, spec.sampler) == ("f_gap", "f_gap", "min", "tpe")
    assert spec.optimizers == {"adam-a": "adam", "sgd": "sgd"}
    assert spec.tuning_seeds(0) == [TUNING_SEED_BASE, TUNING_SEED_BASE + 1]
    assert spec.tuning_seeds(1) == [TUNING_SEED_BASE + 1000, TUNING_SEED_BASE + 1001]
    assert spec.evaluation_seeds == [0, 1, 2]
    assert spec.split == "none"  # rosenbrock has no data: it selects on what it logs


def test_unknown_sampler_lists_the_samplers():
    msg = error(config(sampler="grid"))
    assert "tuning.sampler" in msg and "'random'" in msg and "'qmc'" in msg and "'tpe'" in msg


def test_unknown_optimizer_key_lists_the_keys():
    msg = error(config(space={"adam": {"lr": {"uniform": [0.0, 1.0]}}}))
    assert "tuning.space.adam" in msg and "adam-a, sgd" in msg


def test_unknown_hyperparameter_lists_the_optimizers_hyperparameters():
    msg = error(config(space={"sgd": {"learning_rate": {"uniform": [0.0, 1.0]}}}))
    assert "tuning.space.sgd.learning_rate" in msg and "has no hyperparameter" in msg
    assert "lr" in msg and "momentum" in msg


def test_task_setting_the_task_lacks_lists_its_settings():
    msg = error(config(space={"sgd": {"task.width": {"choice": [1, 2]}}}))
    assert "tuning.space.sgd.task.width" in msg and "rosenbrock" in msg and "dim" in msg


@pytest.mark.parametrize(
    ("dimension", "expected"),
    [
        ({"log_uniform": [0.0, 1.0]}, "lo > 0"),
        ({"uniform": [1.0, 0.5]}, "lo < hi"),
        ({"int_uniform": [1.5, 3]}, "int_uniform"),
        ({"choice": []}, "at least one"),
        ({"normal": [0, 1]}, "log_uniform, uniform, int_uniform, choice"),
        ({"uniform": [0.1, 0.2], "choice": [1]}, "exactly one"),
    ],
)
def test_bad_ranges_are_refused_with_the_kinds(dimension, expected):
    msg = error(config(space={"sgd": {"lr": dimension}}))
    assert "tuning.space.sgd.lr" in msg and expected in msg


def test_a_bound_the_optimizer_refuses_is_refused():
    msg = error(config(space={"sgd": {"momentum": {"uniform": [-0.5, 0.9]}}}))
    assert "tuning.space.sgd.momentum" in msg and "-0.5" in msg and "[0.0, inf)" in msg


def test_evaluation_seeds_overlapping_tuning_seeds_are_refused():
    raw = config()
    raw["experiment"]["seeds"] = [0, TUNING_SEED_BASE + 2]
    msg = error(raw)
    assert "[experiment].seeds" in msg and str(TUNING_SEED_BASE + 2) in msg


def test_a_metric_the_task_does_not_log_lists_its_metrics():
    msg = error(config(metric="val_loss"))
    assert "tuning.metric" in msg and "f_gap" in msg and "dist_to_min" in msg


def test_data_tasks_select_on_the_validation_split_and_report_on_test():
    raw = config(metric="val_acc")
    raw["tasks"] = [{"name": "logistic-regression"}]
    spec = parse_tuning(parse_config(raw))
    assert (spec.metric, spec.final_metric, spec.goal, spec.split) == ("val_acc", "test_acc", "max", "validation")
    raw["tuning"]["metric"] = "test_acc"  # never selected on the test split
    assert "val_acc" in error(raw)


def test_a_tuned_optimizer_cannot_also_be_a_grid():
    raw = config()
    raw["optimizers"][0]["lr"] = [0.1, 0.01]
    assert "cannot be a grid" in error(raw)


def test_dimensions_map_onto_optuna_distributions():
    assert parse_dimension("x", {"log_uniform": [1e-4, 1e-1]}).distribution() == FloatDistribution(1e-4, 1e-1, log=True)
    assert parse_dimension("x", {"uniform": [0, 1]}).distribution() == FloatDistribution(0.0, 1.0)
    assert parse_dimension("x", {"int_uniform": [1, 4]}).distribution() == IntDistribution(1, 4)
    assert parse_dimension("x", {"choice": [64, 128]}).distribution() == CategoricalDistribution((64, 128))


def test_an_entry_of_a_tuple_hyperparameter_is_tuned_alone():
    """"betas[1]" tunes Adam's beta2: the trial's betas keep beta1 as given (else its default);
    a value the optimizer refuses, or an index past the tuple, is refused naming the field."""
    from optiscope.tuning.cells import templates, tuned_cell
    from optiscope.tuning.space import with_sampled

    assert with_sampled({"lr": 0.1}, {"betas[1]": 0.99}, {"betas": (0.9, 0.999)}) == {"lr": 0.1, "betas": (0.9, 0.99)}
    assert with_sampled({"betas": (0.5, 0.9)}, {"betas[1]": 0.99}, {"betas": (0.9, 0.999)})["betas"] == (0.5, 0.99)
    raw = {
        "experiment": {"name": "x", "seeds": 2, "steps": 5},
        "tasks": [{"name": "quadratic"}],
        "optimizers": [{"name": "adam", "betas": [0.8, 0.999]}],
        "tuning": {"metric": "f_gap", "space": {"adam": {"betas[1]": {"choice": [0.9, 0.99]}}}},
    }
    cfg = parse_config(raw)
    spec = parse_tuning(cfg)
    (template,) = templates(cfg, spec)
    cell = tuned_cell(template, {"betas[1]": 0.99}, seeds=[1], trial=True, label="t")
    assert cell.hyperparameters["betas"] == (0.8, 0.99)
    for bad, message in (({"choice": [0.9, 1.5]}, "betas\\[1\\]: the value 1.5 is not allowed"),
                         ({"choice": [0.9]}, None)):
        raw["tuning"]["space"]["adam"] = {"betas[1]": bad}
        if message is None:
            parse_tuning(parse_config(raw))
            continue
        with pytest.raises(OptiscopeError, match=message):
            parse_tuning(parse_config(raw))
    raw["tuning"]["space"]["adam"] = {"betas[2]": {"choice": [0.9]}}
    with pytest.raises(OptiscopeError, match="betas\\[2\\]"):
        parse_tuning(parse_config(raw))
    raw["tuning"]["space"]["adam"] = {"gammas[0]": {"choice": [0.9]}}
    with pytest.raises(OptiscopeError, match="has no hyperparameter 'gammas\\[0\\]'"):
        parse_tuning(parse_config(raw))
