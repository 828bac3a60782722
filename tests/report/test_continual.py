"""The continual-learning section: forgetting and plasticity from stored per-task accuracies."""

from __future__ import annotations

import numpy as np
import pytest

from optiscope.report import build_report
from optiscope.report.continual import continual_section, task_accuracies, task_parts
from optiscope.report.data import StoreView

from .conftest import write_cell

#: Three stages of 10 steps, evaluated every 5 steps (0, 5, ..., 30). Two seeds.
STEPS = [0, 5, 10, 15, 20, 25, 30]
ACC = {
    # task 0: learnt in stage 0 (0.9 at step 10), then forgotten to 0.3 (seed 0) / 0.5 (seed 1)
    "acc_task0": np.array([[0.1, 0.6, 0.9, 0.7, 0.5, 0.4, 0.3],
                           [0.1, 0.5, 0.8, 0.8, 0.6, 0.5, 0.5]]),
    # task 1: learnt in stage 1 (0.7 / 0.9 at step 20), ends 0.6 / 0.9
    "acc_task1": np.array([[0.0, 0.0, 0.1, 0.5, 0.7, 0.6, 0.6],
                           [0.0, 0.0, 0.1, 0.6, 0.9, 0.9, 0.9]]),
    # task 2, the last: learnt in stage 2 (0.8 / 0.6 at step 30)
    "acc_task2": np.array([[0.0, 0.0, 0.0, 0.0, 0.1, 0.5, 0.8],
                           [0.0, 0.0, 0.0, 0.0, 0.0, 0.4, 0.6]]),
}
GOALS = {k: "max" for k in ACC}


@pytest.fixture
def continual_store(handmade):
    write_cell(handmade, "c1", "adam", dict(ACC), STEPS, task="continual-split-digits",
               task_settings={"n_tasks": 3, "steps_per_stage": 10}, goals=GOALS, optimizer="adam")
    return handmade


def rows_by(rows, task):
    return {r.task: r.summary for r in rows}[task]


def test_forgetting_and_plasticity_by_hand(continual_store):
    view = StoreView.load(continual_store)
    (key,) = view.tasks()
    names = task_accuracies(view, key)
    assert names == ["acc_task0", "acc_task1", "acc_task2"]
    figs, forgetting, plasticity = task_parts(view, key, names)
    assert len(figs) == 1
    # task 0: best 0.9 - final 0.3 = 0.6; 0.8 - 0.5 = 0.3 -> median 0.45
    assert rows_by(forgetting, "task 0").median == pytest.approx(0.45)
    # task 1: 0.7 - 0.6 = 0.1; 0.9 - 0.9 = 0 -> median 0.05
    assert rows_by(forgetting, "task 1").median == pytest.approx(0.05)
    # the mean over tasks 0-1 per seed: 0.35 and 0.15 -> median 0.25; the last task is not listed
    assert rows_by(forgetting, "mean of tasks 0-1").median == pytest.approx(0.25)
    assert "task 2" not in {r.task for r in forgetting}
    # plasticity: each task at the end of its own stage (steps 10, 20, 30)
    assert rows_by(plasticity, "task 0").median == pytest.approx(0.85)
    assert rows_by(plasticity, "task 1").median == pytest.approx(0.8)
    assert rows_by(plasticity, "task 2").median == pytest.approx(0.7)
    assert rows_by(plasticity, "mean").median == pytest.approx((0.9 + 0.7 + 0.8 + 0.8 + 0.9 + 0.6) / 6)


def test_a_diverged_seed_is_counted_not_described(handmade):
    acc = {k: v.copy() for k, v in ACC.items()}
    for v in acc.values():
        v[1, 4:] = np.nan  # seed 1 diverged (write_cell records step 5); no values after 15
    write_cell(handmade, "c1", "adam", acc, STEPS, task="continual-split-digits",
               task_settings={"n_tasks": 3, "steps_per_stage": 10}, goals=GOALS, status=["ok", "diverged"])
    view = StoreView.load(handmade)
    (key,) = view.tasks()
    _, forgetting, plasticity = task_parts(view, key, task_accuracies(view, key))
    f0 = rows_by(forgetting, "task 0")
    assert (f0.n, f0.n_finite, f0.median) == (2, 1, pytest.approx(0.6))
    p0, p1 = rows_by(plasticity, "task 0"), rows_by(plasticity, "task 1")
    assert (p0.n_finite, p1.n_finite) == (1, 1)  # diverged at step 5, before task 0's stage ended


def test_the_report_draws_the_section_only_for_continual_tasks(continual_store, handmade, tmp_path):
    page = build_report(continual_store, tmp_path / "r.html").read_text()
    section = page.split("<h2>Continual learning: forgetting and plasticity</h2>")[1].split("<h2>")[0]
    assert "accuracy per task" in section and "<svg" in section
    assert "mean of tasks 0-1" in section and "could not be computed" not in section


def test_no_section_without_per_task_accuracies(tmp_path):
    from optiscope.store import RunStore

    store = RunStore.create(tmp_path / "plain")
    write_cell(store, "c1", "sgd", {"f_gap": np.ones((2, 2))}, [0, 10])
    assert continual_section(StoreView.load(store)) is None
