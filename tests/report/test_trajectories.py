"""Trajectories of 2-D tasks come from the iterates recorded during training, not a re-run."""

from __future__ import annotations

import numpy as np
import pytest

from optiscope.config import parse_config
from optiscope.engine.runner import run_experiment
from optiscope.report.data import StoreView
from optiscope.report.trajectories import has_iterates, stored_trajectories
from optiscope.store import RunStore
from optiscope.tasks import make_task

STEPS = 40


@pytest.fixture(scope="module")
def view(tmp_path_factory):
    store = RunStore.create(tmp_path_factory.mktemp("traj") / "store")
    run_experiment(parse_config({
        "experiment": {"name": "t", "seeds": 3, "steps": STEPS, "eval_every": 20},
        "tasks": [{"name": "quadratic", "dim": 2, "condition": 10.0}, {"name": "quadratic", "dim": 3}],
        "optimizers": [{"name": "adam", "lr": 0.1}, {"name": "torch.optim:SGD", "lr": 0.05}],
    }), store)
    return StoreView.load(store)


def _cell(view, optimizer):
    return next(c for c in view.cells if c.optimizer == optimizer and "dim=2" in c.task_key)


def test_only_two_dimensional_tasks_record_iterates(view):
    by_task = {t: has_iterates(view, t) for t in view.tasks()}
    assert sorted(by_task.values()) == [False, True]
    assert all(v == ("dim=2" in t) for t, v in by_task.items())


@pytest.mark.parametrize("optimizer", ["adam", "torch.optim:SGD"])  # ensemble and loop mode
def test_recorded_iterates_are_the_parameters_in_instance_coordinates(view, optimizer):
    """Every step is recorded; the last point is R (x - shift) of the stored final parameters
    (mapped here with the task's own instance, independently of the recorder)."""
    cell = _cell(view, optimizer)
    t = stored_trajectories(view, cell, n_seeds=3)
    assert t is not None and t.points.shape == (3, STEPS + 1, 2)
    np.testing.assert_array_equal(t.steps, np.arange(STEPS + 1))
    task = make_task(cell.task, **cell.task_settings)
    final = view.store.final_params(cell.cell_id)
    for i, seed in enumerate(t.seeds):
        rot, shift = task.instance(seed)
        x_end = final[seed]["final"]["x"].double().numpy()
        x_start = final[seed]["init"]["x"].double().numpy()
        np.testing.assert_allclose(t.points[i, -1], rot.double().numpy() @ (x_end - shift.double().numpy()),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(t.points[i, 0], rot.double().numpy() @ (x_start - shift.double().numpy()),
                                   rtol=1e-5, atol=1e-6)
    # The stored dist_to_min (the task's own evaluation) is |z_final - z*| with z* = 0.
    np.testing.assert_allclose(np.linalg.norm(t.points[:, -1], axis=1), view.final_values(cell, "dist_to_min"),
                               rtol=1e-4, atol=1e-6)


def test_stored_surface_is_the_function_around_the_iterates(view):
    cell = _cell(view, "adam")
    t = stored_trajectories(view, cell)
    (gx, gy, f), mins = t.surface.grid, t.surface.minimizers
    np.testing.assert_array_equal(mins, [[0.0, 0.0]])
    assert gx.min() <= 0 <= gx.max() and gy.min() <= 0 <= gy.max()
    starts = t.points[:, 0]
    assert (starts[:, 0] >= gx.min()).all() and (starts[:, 0] <= gx.max()).all()
    # f(z) = 1/2 (z0^2 + 10 z1^2) for condition 10 in two dimensions.
    np.testing.assert_allclose(f, 0.5 * (gx**2 + 10 * gy**2), rtol=1e-6, atol=1e-9)


def test_iterates_are_declared_in_the_store(view):
    cell = _cell(view, "adam")
    info = view.declarations[cell.cell_id]
    assert info["iterate.x"].source == "iterate" and info["iterate.x"].goal is None
    assert info["f_gap"].headline and info["f_gap"].goal == "min"
