"""The 2-D iterate recorder (optiscope.probes.iterates): cadence, frame, and which tasks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optiscope.probes.iterates import IterateRecorder, contour_surface, records_iterates
from optiscope.tasks import make_task


def test_cadence_is_every_step_for_short_runs_and_bounded_for_long_ones():
    rec = IterateRecorder(max_points=5)
    assert [s for s in range(5) if rec.due(s, 4)] == [0, 1, 2, 3, 4]
    due = [s for s in range(1001) if rec.due(s, 1000)]
    assert due == [0, 250, 500, 750, 1000]
    assert [s for s in range(11) if rec.due(s, 10)] == [0, 3, 6, 9, 10]  # the last step always
    with pytest.raises(ValueError, match="max_points"):
        IterateRecorder(max_points=1)


def test_records_only_single_two_dimensional_points():
    assert records_iterates(make_task("himmelblau"))
    assert records_iterates(make_task("quadratic", dim=2))
    assert not records_iterates(make_task("quadratic", dim=3))
    assert not records_iterates(make_task("mnist1d-mlp", hidden=8, depth=1))


def test_values_are_in_each_members_instance_frame():
    task = make_task("himmelblau")
    seeds = torch.tensor([3, 7])
    x = torch.stack([task.init_params(3)["x"], task.init_params(7)["x"] + 0.5])
    out = IterateRecorder()(task, {"x": x}, None, seeds, 0)
    for i, seed in enumerate((3, 7)):
        rot, shift = task.instance(seed)
        z = rot.double() @ (x[i].double() - shift.double())
        assert out["iterate.x"][i].item() == pytest.approx(z[0].item(), abs=1e-6)
        assert out["iterate.y"][i].item() == pytest.approx(z[1].item(), abs=1e-6)


def test_contour_surface_holds_the_minimisers_and_the_function():
    task = make_task("himmelblau")
    xs, ys = np.array([[0.0, 1.0]]), np.array([[0.0, 1.0]])
    s = contour_surface(task, xs, ys, n=20)
    grid = s["kind"] == "grid"
    assert grid.sum() == 400 and (~grid).sum() == 4
    z = torch.tensor(np.stack([s["x"][grid], s["y"][grid]], axis=1))
    himmelblau = (z[:, 0] ** 2 + z[:, 1] - 11) ** 2 + (z[:, 0] + z[:, 1] ** 2 - 7) ** 2
    np.testing.assert_allclose(s["f"][grid], himmelblau.numpy(), rtol=1e-9, atol=1e-9)
    mins = np.stack([s["x"][~grid], s["y"][~grid]], axis=1)
    assert (mins.min(axis=0) >= [s["x"].min(), s["y"].min()]).all()
    assert contour_surface(make_task("mnist1d-mlp", hidden=8, depth=1), xs, ys) is None
