"""Plots that do not mislead: log axes where values span decades, no plot of a constant, probe
steps on their sampled axis, ECDFs in the natural direction; and the interactive specs' data."""

from __future__ import annotations

import json

import numpy as np

from optiscope.report import interactive, plots


def test_log_axes_for_gaps_losses_and_decades_only():
    assert plots.wants_log("f_gap", np.array([0.5, 0.6]))  # a gap to an optimum: always
    assert plots.wants_log("score", np.array([1e-3, 0.5]))  # spans more than a decade
    assert not plots.wants_log("score", np.array([0.2, 0.5]))
    assert not plots.wants_log("f_gap", np.array([0.0, 0.5]))  # a zero has no logarithm
    assert not plots.wants_log("test_acc", np.array([0.8, 0.9, np.nan]))


def test_constant_values_are_recognised():
    assert plots.constant(np.array([0.0, 0.0, np.nan]))
    assert plots.constant(np.full(5, 3.25))
    assert not plots.constant(np.array([0.0, 1e-6]))
    assert not plots.constant(np.array([np.nan]))  # nothing to plot is not 'a constant'


def test_probe_cadences_are_drawn_on_a_log_step_axis():
    log_steps = np.unique(np.round(np.geomspace(1, 1000, 12))).astype(int)
    assert plots.log_spaced(np.concatenate([[0], log_steps]))
    assert not plots.log_spaced(np.arange(0, 1001, 100))
    svg = plots.learning_curves("r_med", [("A", log_steps, np.ones((3, log_steps.size)) * log_steps)], log_y=True)
    assert "step (log axis beyond the first sample)" in svg


def test_ecdf_runs_left_to_right_and_says_which_side_is_better():
    acc = [("A", np.array([0.7, 0.8, 0.9])), ("B", np.array([0.5, np.nan, 0.6]))]
    svg = plots.final_ecdf("test_acc", acc, "max")
    assert "better: higher, to the right" in svg and "fraction of seeds &gt;= x" in svg
    svg = plots.final_ecdf("f_gap", [("A", np.array([1e-3, 1e-1]))], "min", log_x=True)
    assert "better: lower, to the left" in svg


def test_legends_sit_outside_the_axes():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="a")
    plots.legend_outside(ax)
    legend = ax.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1
    plt.close(fig)


def test_learning_curve_spec_carries_seeds_toggles_and_other_x_axes():
    steps = np.array([0, 10, 20])
    values = np.array([[1.0, 0.5, 0.123456789], [1.0, 0.6, np.nan]])
    grad = {"gradient evaluations": {"A": (np.array([0.0, 20.0]), np.array([0.0, 40.0]))}}
    spec = interactive.learning_curves("loss", [("A", steps, values)], log_y=True, x_axes=grad, seed_ids=[[7, 9]])
    names = {p["name"]: p for p in spec["params"]}
    assert names["ylog"]["value"] is True and names["seeds"]["value"] is False
    assert names["xaxis"]["bind"]["options"] == ["step", "gradient evaluations"]
    assert names["hidden_cells"]["value"] == [] and spec["usermeta"]["toggles"][0][0] == "A"
    med = spec["data"]["columns"]
    assert med["gradient evaluations"] == [0.0, 20.0, 40.0]  # interpolated at the curve's steps
    assert med["value"][-1] == 0.1235  # 4 significant digits in the page (full precision in the store)
    seeds = spec["layer"][0]["data"]["columns"]
    assert sorted(set(seeds["seed"])) == [7, 9] and sum(seeds["anchor"]) == 1
    json.dumps(spec, allow_nan=False)  # no NaN or inf reaches the page


def test_distribution_spec_names_each_seed_and_counts_the_unfinished():
    spec = interactive.distributions("f_gap", [("A", np.array([0.1, np.nan, 0.3]))], log_y=True, seeds=[[4, 5, 6]])
    cols = spec["data"]["columns"]
    assert cols["seed"] == [4, 6] and cols["cell"] == ["A (1 not finished)"] * 2
    assert spec["layer"][1]["encoding"]["y"]["scale"]["type"] == "log"
    assert {"field": "seed"} in spec["layer"][1]["encoding"]["tooltip"]


def test_static_figures_without_the_library(tmp_path):
    token = interactive.STATIC.set(True)
    interactive.reset()
    try:
        fig = interactive.vega_figure({"mark": "point"}, lambda: "<svg>static</svg>")
    finally:
        interactive.STATIC.reset(token)
    assert "<svg>static</svg>" in fig and not interactive.used()
