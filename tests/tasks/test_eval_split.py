"""`eval_split = "validation"`: a fixed part of the training data is held out, the task trains on
the rest, the held-out metrics are named val_* and the test split is never touched; the default
("test") leaves every task and every cell id as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from optiscope.config import Cell
from optiscope.errors import OptiscopeError
from optiscope.tasks import make_task
from optiscope.tasks.dataset import VALIDATION_FRACTION
from optiscope.tasks.optima import logistic_optimum

DATA_TASKS = {
    "logistic-regression": {"dataset": "separable"},
    "kernel-logistic": {"n_samples": 200},
    "softmax-digits": {},
    "digits-mlp": {"hidden": 8},
    "digits-cnn": {"channels": 2},
    "mnist1d-mlp": {"hidden": 8},
    "mnist1d-cnn": {"channels": 2},
}


def rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x.reshape(len(x), -1)}


@pytest.mark.parametrize("name", sorted(DATA_TASKS))
def test_validation_is_a_fixed_part_of_the_training_split(name):
    settings = DATA_TASKS[name]
    test, val = make_task(name, **settings), make_task(name, eval_split="validation", **settings)
    n = len(test.y)
    assert len(val.y_val) == round(VALIDATION_FRACTION * n) and len(val.y) + len(val.y_val) == n
    assert not hasattr(val, "x_test") and "x_test" not in val.eval_batch(torch.tensor([0]), 0).shared
    if name != "kernel-logistic":  # its features are built against the training points
        # (and breast-cancer's standardisation differs: see the next tests)
        assert rows(val.x) | rows(val.x_val) == rows(test.x) and not rows(val.x) & rows(val.x_val)
        assert not rows(val.x_val) & rows(test.x_test)
    again = make_task(name, eval_split="validation", **settings)
    assert torch.equal(again.x_val, val.x_val) and torch.equal(again.y, val.y)


@pytest.mark.parametrize("name", sorted(DATA_TASKS))
def test_validation_metrics_are_named_val_and_computed_on_the_held_out_part(name):
    settings = DATA_TASKS[name]
    task = make_task(name, eval_split="validation", **settings)
    names = [m.name for m in task.metrics]
    default_names = [m.name for m in make_task(name, **settings).metrics]
    assert names == [n.replace("test_", "val_") for n in default_names] and "val_acc" in names
    params = task.init_params(3)
    out = task.evaluate(params, task.eval_batch(torch.tensor([3]), 0).member(0))
    assert sorted(out) == sorted(names)
    if hasattr(task, "logits"):
        logits = task.logits(params, task.x_val)
    else:  # softmax-digits: a linear layer
        logits = F.linear(task.x_val, params["weight"], params["bias"])
    predicted = (logits > 0).long() if logits.ndim == 1 else logits.argmax(-1)
    assert float(out["val_acc"]) == pytest.approx(float((predicted == task.y_val).float().mean()))
    if "val_loss" in out:
        assert float(out["val_loss"]) == pytest.approx(float(F.cross_entropy(logits, task.y_val)), rel=1e-6)


def test_f_star_and_standardisation_are_those_of_the_rows_actually_trained_on():
    """f* at validation is the optimum over the remaining training rows (scipy, float64), and
    the features are standardised with those rows' statistics (the held-out ones do not leak)."""
    task = make_task("logistic-regression", eval_split="validation")
    x, y = task.x.double().numpy(), task.y.numpy().astype(np.float64)
    assert np.abs(x.mean(0)).max() < 1e-6 and np.abs(x.std(0) - 1).max() < 1e-5
    assert task.f_star == pytest.approx(logistic_optimum(x, y, task.l2, True), rel=1e-9)
    assert task.f_star != make_task("logistic-regression").f_star


def test_kernel_features_are_built_against_the_remaining_training_points_only():
    task = make_task("kernel-logistic", n_samples=200, eval_split="validation")
    full = make_task("kernel-logistic", n_samples=200)
    assert task.x.shape[1] == len(task.y) < full.x.shape[1] == len(full.y)
    assert task.x_val.shape[1] == len(task.y)  # validation rows: features against fit points


def test_default_split_is_the_test_split_and_keeps_cell_ids():
    explicit, default = make_task("digits-mlp", eval_split="test"), make_task("digits-mlp")
    assert torch.equal(explicit.x, default.x) and torch.equal(explicit.x_test, default.x_test)
    base = dict(experiment="e", task="digits-mlp", optimizer="sgd", label=None, hyperparameters={"lr": 0.1},
                seeds=(0,), steps=1, eval_every=1, log_every=1)
    with_default = Cell(task_settings={"hidden": 8, "eval_split": "test"}, **base)
    without = Cell(task_settings={"hidden": 8}, **base)
    validation = Cell(task_settings={"hidden": 8, "eval_split": "validation"}, **base)
    assert with_default.cell_id == without.cell_id != validation.cell_id


def test_bad_split_and_tasks_without_data_are_refused():
    with pytest.raises(OptiscopeError, match="eval_split.*'test', 'validation'"):
        make_task("digits-mlp", eval_split="val")
    for name in ("rosenbrock", "matrix-factorization"):
        with pytest.raises(OptiscopeError, match="eval_split"):
            make_task(name, eval_split="validation")
