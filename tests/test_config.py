"""Experiment files: grids, seeds, validation errors that name the field."""

from __future__ import annotations

import inspect
import json

import pytest
import torch

from optiscope.config import canonical_numbers, parse_config
from optiscope.errors import OptiscopeError
from optiscope.optim.registry import check_hyperparameters, resolve_optimizer
from optiscope.tasks import make_task


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
    assert [c.hyperparameters["betas"] for c in cells[:1]] == [(0.9, 0.99)]  # the declared tuple
    assert len(cells) == 2  # the two task dims only
    cells = cfg(optimizers=[{"name": "adam", "betas": [[0.9, 0.99], [0.0, 0.0]]}]).cells()
    assert len(cells) == 4


def test_cell_ids_are_stable_and_ignore_the_experiment_name():
    a = cfg().cells()
    b = cfg(experiment={"name": "renamed", "seeds": 2, "steps": 5}).cells()
    assert [c.cell_id for c in a] == [c.cell_id for c in b]


def test_a_hyperparameter_added_later_keeps_the_ids_of_cells_at_its_default():
    """Shampoo's `beta2` came after stores existed: at its default (1, accumulation) a cell's id
    and batch id are the ones computed before it was declared (recorded from that code); another
    value is another cell, and an import path to the same class behaves alike."""
    cells = cfg(
        tasks=[{"name": "quadratic"}],
        optimizers=[{"name": "shampoo"}, {"name": "shampoo", "lr": 0.1, "accumulate": False},
                    {"name": "optiscope.optim:Shampoo", "lr": 0.03}, {"name": "shampoo", "beta2": 0.99}],
        experiment={"name": "x", "seeds": 2, "steps": 10},
    ).cells()
    assert [c.hyperparameters["beta2"] for c in cells] == [1.0, 1.0, 1.0, 0.99]  # 1 and 1.0: one cell
    before = [("484f2eaefeeb40b7", "1e047c8aad5c21d3"), ("8de5c8aa2fa74114", "01c14e5df63fc061"),
              ("2196c0ab38a08c8e", "c0419fc684f3065d")]
    assert [(c.cell_id, c.batch_id) for c in cells[:3]] == before
    assert cells[3].cell_id not in {c for c, _ in before}
    assert cells[3].display_name == "shampoo(beta2=0.99)"
    written = cfg(tasks=[{"name": "quadratic"}], optimizers=[{"name": "shampoo", "beta2": 1}],
                  experiment={"name": "x", "seeds": 2, "steps": 10}).cells()
    assert written[0].cell_id == before[0][0]  # written out at its default: the same cell


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
        ({"optimizers": [{"name": "shampoo", "beta2": 1.5}]}, "beta2"),
        ({"optimizers": [{"name": "shampoo", "beta2": 0.9, "accumulate": False}]}, "beta2: a preconditioner decay"),
        ({"tasks": [{"name": "quadratic", "condition": 0.5}]}, "condition"),
        ({"tasks": []}, "tasks"),
    ],
)
def test_bad_input_names_the_field(override, message):
    with pytest.raises(OptiscopeError) as exc:
        cfg(**override)
    assert message in str(exc.value)


def one_cell(task: dict, optimizer: dict):
    (cell,) = cfg(tasks=[task], optimizers=[optimizer]).cells()
    return cell


def test_cells_carry_every_default_so_the_store_says_what_a_run_used():
    cell = one_cell({"name": "himmelblau"}, {"name": "sgd", "lr": 0.1})
    assert cell.task_settings == {"rotate": True, "shift": 1.0, "noise": 0.0}
    assert cell.hyperparameters == {
        "lr": 0.1, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
        "nesterov": False, "maximize": False,
    }
    assert cell.display_name == "sgd(lr=0.1)"  # named by what the config wrote


def test_a_default_written_out_or_left_implicit_is_the_same_cell():
    implicit = one_cell({"name": "himmelblau"}, {"name": "adam", "lr": 0.01})
    written = one_cell(
        {"name": "himmelblau", "rotate": True, "shift": 1, "noise": 0},
        {"name": "adam", "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0},
    )
    assert written.cell_id == implicit.cell_id
    assert json.dumps(written.task_settings) == json.dumps(implicit.task_settings)
    assert json.dumps(written.hyperparameters) == json.dumps(implicit.hyperparameters)


@pytest.mark.parametrize("name", ["sgd", "torch.optim:SGD"])
def test_a_number_is_the_same_cell_however_it_is_written(name):
    as_int = one_cell({"name": "sphere", "dim": 3}, {"name": name, "lr": 1, "momentum": 0})
    as_float = one_cell({"name": "sphere", "dim": 3}, {"name": name, "lr": 1.0, "momentum": 0.0})
    assert as_int.cell_id == as_float.cell_id
    assert json.dumps(as_int.hyperparameters) == json.dumps(as_float.hyperparameters)
    assert as_int.hyperparameters["lr"] == 1.0 and isinstance(as_int.hyperparameters["lr"], float)


def test_third_party_optimizers_get_their_signature_defaults():
    cell = one_cell({"name": "sphere"}, {"name": "torch.optim:Adam", "lr": 0.01})
    reference = inspect.signature(torch.optim.Adam).parameters
    assert cell.hyperparameters["lr"] == 0.01
    for key in ("betas", "eps", "weight_decay", "amsgrad", "foreach"):
        assert cell.hyperparameters[key] == reference[key].default
    assert cell.display_name == "torch.optim:Adam(lr=0.01)"


def test_hash_of_numbers_ignores_how_they_are_written():
    assert canonical_numbers({"a": [1.0, 2.5], "b": 3}) == {"a": [1, 2.5], "b": 3}


def test_sgd_armijo_takes_its_batches_per_epoch_from_the_task():
    data = one_cell({"name": "least-squares"}, {"name": "sgd_armijo"})
    task = make_task("least-squares")
    assert task.batches_per_epoch() == len(task.x) // task.batch_size
    assert data.hyperparameters["n_batches_per_epoch"] == task.batches_per_epoch()
    assert data.display_name == "sgd_armijo"
    # No finite data set: the optimizer's own default; a value the user wrote is kept.
    default = inspect.signature(resolve_optimizer("sgd_armijo")).parameters["n_batches_per_epoch"]
    assert one_cell({"name": "sphere"}, {"name": "sgd_armijo"}).hyperparameters[
        "n_batches_per_epoch"] == default.default
    written = one_cell({"name": "least-squares"}, {"name": "sgd_armijo", "n_batches_per_epoch": 7})
    assert written.hyperparameters["n_batches_per_epoch"] == 7


def test_effective_settings_build_the_same_task_and_optimizer():
    cell = one_cell({"name": "quadratic", "dim": 4}, {"name": "adam", "lr": 0.01})
    given, full = make_task("quadratic", dim=4), make_task(cell.task, **cell.task_settings)
    assert torch.equal(given.init_params(3)["x"], full.init_params(3)["x"])
    assert check_hyperparameters(cell.optimizer, cell.hyperparameters) == cell.hyperparameters
