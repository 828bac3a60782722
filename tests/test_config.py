"""Experiment files: grids, seeds, validation errors that name the field."""

from __future__ import annotations

import pytest

from optiscope.config import parse_config
from optiscope.errors import OptiscopeError


def cfg(**over):
    raw = {
        "experiment": {"name": "x", "seeds": 2, "steps": 5},
        "tasks": [{"name": "quadratic", "dim": [2, 3]}],
        "optimizers": [{"name": "sgd", "lr": [0.1, 0.2], "momentum": 0.9}],
    }
    for k, v in over.items():
        raw[k] = v
    return parse_config(raw)


def test_lists_are_grids_over_tasks_and_optimizers():
    cells = cfg().cells()
    assert [(c.task_settings["dim"], c.hyperparameters["lr"]) for c in cells] == [
        (2, 0.1), (2, 0.2), (3, 0.1), (3, 0.2)
    ]
    assert len({c.cell_id for c in cells}) == 4
    assert all(c.seeds == (0, 1) for c in cells)


def test_a_flat_list_for_a_tuple_hyperparameter_is_one_value():
    cells = cfg(optimizers=[{"name": "adam", "betas": [0.9, 0.99]}]).cells()
    assert [c.hyperparameters["betas"] for c in cells[:1]] == [[0.9, 0.99]]
    assert len(cells) == 2  # the two task dims only
    cells = cfg(optimizers=[{"name": "adam", "betas": [[0.9, 0.99], [0.0, 0.0]]}]).cells()
    assert len(cells) == 4


def test_cell_ids_are_stable_and_ignore_the_experiment_name():
    a = cfg().cells()
    b = cfg(experiment={"name": "renamed", "seeds": 2, "steps": 5}).cells()
    assert [c.cell_id for c in a] == [c.cell_id for c in b]


def test_explicit_seed_list():
    c = cfg(experiment={"name": "x", "seeds": [3, 7], "steps": 5}).cells()[0]
    assert c.seeds == (3, 7)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"experiment": {"name": "x", "seeds": 0}}, "experiment.seeds"),
        ({"experiment": {"name": "x", "device": "tpu"}}, "device must be one of"),
        ({"experiment": {"name": "x", "stepz": 3}}, "experiment.stepz"),
        ({"optimizers": [{"name": "adam", "betas": [0.9, 1.5]}]}, "betas[1]"),
        ({"optimizers": [{"name": "sgd", "lr": -0.1}]}, "lr must be in"),
        ({"optimizers": [{"name": "nosuch.module:Opt"}]}, "cannot import module 'nosuch.module'"),
        ({"optimizers": [{"name": "sgd", "nesterov": True}]}, "nesterov requires momentum"),
        ({"tasks": [{"name": "quadratic", "condition": 0.5}]}, "condition"),
        ({"tasks": []}, "tasks"),
    ],
)
def test_bad_input_names_the_field(override, message):
    with pytest.raises(OptiscopeError) as exc:
        cfg(**override)
    assert message in str(exc.value)
