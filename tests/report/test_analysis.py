"""Runtime ECDFs, performance profiles and comparisons on hand-made stores with known answers."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from optiscope.errors import OptiscopeError
from optiscope.report.analysis import compare_task
from optiscope.report.runtime import profile_times, task_runtimes, task_targets
from optiscope.report.data import StoreView
from optiscope.stats import performance_profile, runtime_ecdf

from .conftest import with_budget, write_cell

STEPS = [0, 10, 20]
NAN = np.nan


def test_runtime_ecdf_over_coco_targets_by_hand(handmade):
    # Targets 10^(2 - 0.2 k), k = 0..50. Seed 0 reaches k = 0 at 0, k = 1..10 (down to 1) at 10,
    # k = 11..20 (down to 0.01) at 20; seed 1 reaches k = 0 at 0 and k = 1..5 (down to 10) at 10.
    write_cell(handmade, "a", "A", with_budget(np.array([[100, 1, 0.01], [100, 10, 10]], float), STEPS), STEPS)
    view = StoreView.load(handmade)
    targets = task_targets(view, "quadratic", "f_gap", "min")
    assert targets.size == 51
    rts = task_runtimes(view, "quadratic", "f_gap", targets, "grad_evals")["A"]
    e = runtime_ecdf(rts, budgets=[0, 5, 10, 20, 1000])
    np.testing.assert_allclose(e.proportion, np.array([2, 2, 17, 27, 27]) / 102)


def test_diverged_run_never_reaches_later_targets(handmade):
    vals = np.array([[100, 1, 0.01], [100, 50, NAN]], float)
    write_cell(handmade, "a", "A", with_budget(vals, STEPS), STEPS, status=["ok", "diverged"])
    view = StoreView.load(handmade)
    rts = task_runtimes(view, "quadratic", "f_gap", np.array([60.0, 1.0]), "step")["A"]
    np.testing.assert_array_equal(rts, [[10, 10], [10, np.inf]])


def test_performance_profile_from_a_store_by_hand(handmade):
    # quadratic: A's seeds reach the target 2 at 10, 10, never -> 10; B's at 20, 20, never -> 20.
    write_cell(handmade, "qa", "A", with_budget(np.array([[100, 1, 1], [100, 2, 2], [100, 50, 3]], float), STEPS), STEPS)
    write_cell(handmade, "qb", "B", with_budget(np.array([[100, 50, 1.5], [100, 50, 2], [100, 50, 2.5]], float), STEPS), STEPS)
    # rosenbrock: A diverged everywhere; B reaches 0.5 at 20.
    div = np.array([[100, NAN, NAN]] * 3, float)
    write_cell(handmade, "ra", "A", with_budget(div, STEPS), STEPS, task="rosenbrock", status=["diverged"] * 3)
    write_cell(handmade, "rb", "B", with_budget(np.array([[100, 9, 0.5]] * 3, float), STEPS), STEPS, task="rosenbrock")
    inp = profile_times(StoreView.load(handmade))
    assert inp.targets == {"quadratic": 2.0, "rosenbrock": 0.5}
    np.testing.assert_array_equal(inp.times, [[10, np.inf], [20, 20]])
    prof = performance_profile(inp.times, inp.solvers, inp.problems)
    np.testing.assert_array_equal(prof.ratios, [[1, np.inf], [2, 1]])
    np.testing.assert_allclose(prof.scores, [0.5, 5 / 6])


def test_compare_task_counts_diverged_as_worst_and_exports(handmade, tmp_path):
    finals_a = np.array([[9, 1], [9, 2], [9, 3]], float)
    finals_b = np.array([[9, 4], [9, 5], [9, NAN]], float)
    write_cell(handmade, "a", "A", {"f_gap": finals_a}, [0, 10])
    write_cell(handmade, "b", "B", {"f_gap": finals_b}, [0, 10], status=["ok", "ok", "diverged"])
    cmp = compare_task(StoreView.load(handmade), "quadratic")
    np.testing.assert_array_equal(cmp.outcomes["B"], [4, 5, np.inf])
    r = cmp.table.results[("A", "B")]
    assert r.effects["a12"].estimate == 0.0 and r.n_y_infinite == 1
    assert cmp.summaries["B"].n_finite == 2 and cmp.summaries["B"].success.estimate == pytest.approx(2 / 3)
    paths = cmp.export(tmp_path / "s.csv", tmp_path / "s.parquet")
    assert [p.name for p in paths] == ["s.csv", "s.pairwise.csv", "s.parquet", "s.pairwise.parquet"]
    table = pq.read_table(tmp_path / "s.parquet").to_pydict()
    assert table["cell"] == ["A", "B"] and table["median"] == [2.0, 4.5]
    assert pq.read_table(tmp_path / "s.pairwise.parquet").to_pydict()["pvalue_holm"][0] == pytest.approx(r.pvalue)


def test_compare_task_names_the_choices_on_bad_input(handmade):
    write_cell(handmade, "a", "A", {"f_gap": np.ones((2, 2))}, [0, 10])
    view = StoreView.load(handmade)
    with pytest.raises(OptiscopeError, match="tasks stored: quadratic"):
        compare_task(view, "rosen")
    with pytest.raises(OptiscopeError, match="choose one of f_gap"):
        compare_task(view, "quadratic", "test_acc")
    with pytest.raises(OptiscopeError, match="mannwhitney, ks, welch, permutation"):
        compare_task(view, "quadratic", test="t")
