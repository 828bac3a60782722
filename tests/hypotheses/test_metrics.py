"""Per-run statistics against hand-computed values, with divergence and failure."""

from __future__ import annotations

import numpy as np
import pytest

from optiscope.hypotheses import metrics
from optiscope.hypotheses.metrics import Curves
from optiscope.tasks.continual import final_forgetting, stage_accuracy_matrix

NAN = np.nan
STEPS = np.array([0, 10, 20, 30])
#: run 0 ok, run 1 diverged at step 25 (no value at 30), run 2 failed (no values).
VALUES = np.array([
    [4.0, 2.0, 3.0, 1.0],
    [4.0, 1.0, 0.5, NAN],
    [NAN, NAN, NAN, NAN],
])
CURVES = Curves(STEPS, VALUES, ["ok", "diverged", "failed"], [None, 25, None])


def test_final_min_max_auc_by_hand_with_the_diverged_run_worst_and_the_failed_run_dropped():
    np.testing.assert_array_equal(metrics.final(CURVES, "min"), [1.0, np.inf])
    np.testing.assert_array_equal(metrics.final(CURVES, "max"), [1.0, -np.inf])
    np.testing.assert_array_equal(metrics.extreme(CURVES, "min", "min"), [1.0, np.inf])
    np.testing.assert_array_equal(metrics.extreme(CURVES, "min", "max"), [4.0, np.inf])
    # trapezoid by hand: 10 * ((4 + 2) / 2 + (2 + 3) / 2 + (3 + 1) / 2) = 75
    np.testing.assert_array_equal(metrics.auc(CURVES, "min"), [75.0, np.inf])


def test_at_step_counts_divergence_only_from_its_step_on():
    np.testing.assert_array_equal(metrics.at_step(CURVES, "min", 20), [3.0, 0.5])
    np.testing.assert_array_equal(metrics.at_step(CURVES, "min", 30), [1.0, np.inf])
    with pytest.raises(ValueError, match="step 15 was not logged; logged steps: 0, 10, 20, 30"):
        metrics.at_step(CURVES, "min", 15)


def test_steps_to_target_is_the_first_logged_step_before_divergence_and_never_is_infinite():
    np.testing.assert_array_equal(metrics.first_reach(CURVES, "min", 2.0), [10.0, 10.0])
    np.testing.assert_array_equal(metrics.first_reach(CURVES, "min", 0.8), [np.inf, 20.0])
    np.testing.assert_array_equal(metrics.first_reach(CURVES, "min", 0.1), [np.inf, np.inf])
    # a maximised metric reaches a target from below
    np.testing.assert_array_equal(metrics.first_reach(CURVES, "max", 3.5), [0.0, 0.0])
    np.testing.assert_array_equal(metrics.reached(CURVES, "min", 0.8), [0.0, 1.0])


def test_a_target_reached_only_after_divergence_does_not_count():
    c = Curves(STEPS, np.array([[4.0, 3.0, 2.0, 0.0]]), ["diverged"], [30])
    np.testing.assert_array_equal(metrics.first_reach(c, "min", 0.5), [np.inf])
    np.testing.assert_array_equal(metrics.first_reach(c, "min", 2.5), [20.0])


def test_final_rate_reads_the_last_logged_value_not_the_best_one():
    # run 0 ends at 1.0 (reached 2.0 at its end, and 0.8 never); run 1 diverged: 0 whatever it logged
    np.testing.assert_array_equal(metrics.final_reached(CURVES, "min", 2.0), [1.0, 0.0])
    np.testing.assert_array_equal(metrics.final_reached(CURVES, "min", 0.8), [0.0, 0.0])
    # a run that passed the target and left it: `rate` counts it, `final_rate` does not
    left = Curves(STEPS, np.array([[0.1, 3.0, 3.0, 3.0], [4.0, 3.0, 2.0, 0.3]]), ["ok", "ok"], [None, None])
    np.testing.assert_array_equal(metrics.reached(left, "min", 0.5), [1.0, 1.0])
    np.testing.assert_array_equal(metrics.final_reached(left, "min", 0.5), [0.0, 1.0])
    # a maximised metric reaches from below
    np.testing.assert_array_equal(metrics.final_reached(left, "max", 3.0), [1.0, 0.0])


def test_forgetting_by_hand():
    """Three tasks, two runs. Run 0: task 0 peaks at 0.9 then ends 0.5 (forgets 0.4); task 1
    peaks at 0.8 and ends 0.8 (forgets 0); task 2, the last, is left out. Mean 0.2.
    Run 1: task 0 0.6 -> 0.3 (0.3), task 1 0.7 -> 0.2 (0.5): mean 0.4."""
    steps = np.array([10, 20, 30])
    acc0 = np.array([[0.9, 0.6, 0.5], [0.6, 0.4, 0.3]])
    acc1 = np.array([[0.1, 0.8, 0.8], [0.0, 0.7, 0.2]])
    acc2 = np.array([[0.0, 0.1, 0.9], [0.1, 0.0, 0.95]])
    tasks = [Curves(steps, a, ["ok", "ok"], [None, None]) for a in (acc0, acc1, acc2)]
    np.testing.assert_allclose(metrics.task_forgetting(tasks[0]), [0.4, 0.3])
    np.testing.assert_allclose(metrics.forgetting(tasks), [0.2, 0.4])
    np.testing.assert_allclose(metrics.forgetting(tasks[:1]), [0.4, 0.3])  # one task: its own
    # With evaluations only at the ends of stages, the definition is Chaudhry et al.'s, as
    # optiscope.tasks.continual computes it from the stage matrix.
    for run in range(2):
        acc = np.stack([acc0[run], acc1[run], acc2[run]], axis=1)
        reference = final_forgetting(stage_accuracy_matrix(acc, steps, 10)).mean()
        assert metrics.forgetting(tasks)[run] == pytest.approx(reference, abs=1e-15)


def test_a_diverged_run_forgets_worst():
    steps = np.array([10, 20])
    tasks = [Curves(steps, np.array([[0.9, 0.5], [0.8, NAN]]), ["ok", "diverged"], [None, 15])] * 2
    np.testing.assert_allclose(metrics.forgetting(tasks), [0.4, np.inf])


def test_families_are_ordered_by_task_number_and_reduced_per_step():
    names = ["acc_task10", "acc_task2", "avg_acc", "acc_task0", "r_med/w", "r_med/b", "r_med_samples"]
    assert metrics.task_metric_family(names, "acc_task*") == ["acc_task0", "acc_task2", "acc_task10"]
    assert metrics.task_metric_family(names, "r_med/*") == ["r_med/b", "r_med/w"]
    c1 = Curves(np.array([0, 10]), np.array([[1.0, 3.0]]), ["ok"], [None])
    c2 = Curves(np.array([10, 20]), np.array([[5.0, 7.0]]), ["ok"], [None])
    r = metrics.reduce_curves({"x": c1, "y": c2}, "median")
    np.testing.assert_array_equal(r.steps, [0, 10, 20])
    np.testing.assert_array_equal(r.values, [[1.0, 4.0, 7.0]])


def test_an_undefined_tensor_is_left_out_of_a_reduced_r_med():
    """R_med is NaN where a tensor's median |diag H| is 0 (an embedding's unused rows): a
    `reduce = "median"` over 'r_med/*' reduces over the defined tensors only, where an inf would
    have counted as the largest value."""
    steps = np.array([0, 10])
    curves = {
        "r_med/tok_embed": Curves(steps, np.array([[NAN, NAN]]), ["ok"], [None]),
        "r_med/w1": Curves(steps, np.array([[2.0, 3.0]]), ["ok"], [None]),
        "r_med/w2": Curves(steps, np.array([[4.0, 5.0]]), ["ok"], [None]),
    }
    r = metrics.reduce_curves(curves, "median")
    np.testing.assert_array_equal(r.values, [[3.0, 4.0]])
    np.testing.assert_array_equal(metrics.final(r, "min"), [4.0])
    per_layer = metrics.task_metric_family(list(curves) + ["r_med_samples"], "r_med/w*")
    assert per_layer == ["r_med/w1", "r_med/w2"]  # hypotheses can name a subset of layers by prefix
