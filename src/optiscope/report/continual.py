"""Continual learning in the report: per-task accuracy over the stages, forgetting, plasticity.

For every task whose cells logged per-task accuracies (`acc_task0`, `acc_task1`, ...: the
continual tasks of optiscope.tasks.continual), read from the store alone:

- per cell, each task's test accuracy over training (median and inter-quartile band over
  seeds, one line per task), with the stage boundaries (the task's `steps_per_stage` setting)
  drawn as dashed lines;
- forgetting per task, best accuracy reached (over every evaluation) minus the final one, for
  every task but the last (nothing is trained after it), and its mean over those tasks: the
  same per-run numbers as the `forgetting` statistic of `[[hypotheses]]`
  (optiscope.hypotheses.metrics); median with a 95% BCa interval over seeds;
- plasticity per task: the accuracy on task k at the last evaluation of its own stage
  (steps k * steps_per_stage < t <= (k + 1) * steps_per_stage), that is how well the network
  still learns a new task when it is introduced; and its mean over tasks.

Diverged runs are counted, not described: forgetting counts them as the worst outcome
(infinite), plasticity has no value for a run that diverged before the end of the stage.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from markupsafe import Markup

from optiscope.hypotheses.metrics import Curves, forgetting, task_forgetting
from optiscope.report import plots
from optiscope.report.data import CellRuns, StoreView
from optiscope.report.html import ENV, EXTRA_SECTIONS, Section, _guard, figure
from optiscope.stats import CellSummary, summarize

TASK_ACCURACY = re.compile(r"^acc_task(\d+)$")
INTRO = (
    "Trained on a sequence of tasks, one after another (Pascanu et al. 2025). Per-task test "
    "accuracy over training: median and IQR over seeds, stage boundaries dashed. Forgetting of a "
    "task: the best accuracy it reached minus its final accuracy (every task but the last; "
    "'mean' averages them, as the hypotheses' forgetting statistic does). Plasticity of a task: "
    "its accuracy at the end of its own stage. Medians with 95% BCa bootstrap intervals over "
    "seeds; diverged seeds are counted in 'finished / runs', not described."
)


@dataclass(frozen=True)
class Row:
    cell: str
    task: str
    summary: CellSummary


def task_accuracies(view: StoreView, task_key: str) -> list[str]:
    """The task's per-task accuracy metrics in task order (empty: not a continual task)."""
    found = [(int(m.group(1)), n) for n in view.metric_names(task_key) if (m := TASK_ACCURACY.match(n))]
    return [n for _, n in sorted(found)] if len(found) >= 2 else []


def _curves(view: StoreView, cell: CellRuns, name: str) -> Curves:
    steps, values = view.curves(cell, name)
    return Curves(np.asarray(steps), np.asarray(values, dtype=float), cell.status, cell.diverged_step)


def _kept(cell: CellRuns) -> np.ndarray:
    return np.array([s != "failed" for s in cell.status], dtype=bool)


def plasticity(c: Curves, stage: int, steps_per_stage: int) -> np.ndarray:
    """Accuracy at the last evaluation of `stage` per run (failed runs dropped; NaN if none or
    the run diverged before it)."""
    lo, hi = stage * steps_per_stage, (stage + 1) * steps_per_stage
    inside = np.flatnonzero((c.steps > lo) & (c.steps <= hi))
    out = np.full(c.values.shape[0], np.nan)
    if inside.size:
        j = inside[-1]
        step = int(c.steps[j])
        for i in range(c.values.shape[0]):
            d = c.diverged_step[i]
            if d is None or d > step:
                out[i] = c.values[i, j]
    return out[c.kept()]


def accuracy_figure(cell: CellRuns, series: list[tuple[str, np.ndarray, np.ndarray]], steps_per_stage: int | None) -> str:
    """One line per task (median, IQR band over seeds), stage boundaries dashed."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    last = 0
    for i, (label, steps, values) in enumerate(series):
        vals = np.where(np.isfinite(values), values, np.nan)[_kept(cell)]
        if vals.size == 0 or np.all(np.isnan(vals)):
            continue
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # steps no seed reached
            med = np.nanmedian(vals, axis=0)
            q1, q3 = np.nanpercentile(vals, [25, 75], axis=0)
        ax.plot(steps, med, color=plots.color(i), label=label, lw=1.5)
        ax.fill_between(steps, q1, q3, color=plots.color(i), alpha=0.18, lw=0)
        last = max(last, int(steps[-1]) if len(steps) else 0)
    if steps_per_stage:
        for s in range(steps_per_stage, last, steps_per_stage):
            ax.axvline(s, color="#888", ls="--", lw=0.8)
    ax.set(xlabel="step", ylabel="test accuracy")
    ax.grid(alpha=0.3)
    plots.legend_outside(ax)
    ax.set_title(f"{cell.label}: accuracy per task (median, IQR over seeds)", fontsize=10)
    return plots.to_svg(fig)


def task_parts(view: StoreView, task_key: str, names: list[str]) -> tuple[list[Markup], list[Row], list[Row]]:
    """Figures, forgetting rows and plasticity rows of one continual task."""
    figs, forget_rows, plastic_rows = [], [], []
    for cell in view.cells_of(task_key):
        sps = cell.task_settings.get("steps_per_stage")
        sps = int(sps) if isinstance(sps, (int, float)) and sps > 0 else None
        curves = [_curves(view, cell, n) for n in names]
        series = [(f"task {k}", c.steps, c.values) for k, c in enumerate(curves)]
        figs.append(figure(accuracy_figure(cell, series, sps)))
        if not _kept(cell).any():
            continue
        for k, c in enumerate(curves[:-1]):
            forget_rows.append(Row(cell.label, f"task {k}", summarize(task_forgetting(c))))
        forget_rows.append(Row(cell.label, f"mean of tasks 0-{len(curves) - 2}", summarize(forgetting(curves))))
        if sps is None:
            continue
        per_task = [plasticity(c, k, sps) for k, c in enumerate(curves)]
        for k, v in enumerate(per_task):
            plastic_rows.append(Row(cell.label, f"task {k}", summarize(v)))
        mean = np.mean(np.stack(per_task), axis=0)  # NaN (counted, not described) if a task has none
        plastic_rows.append(Row(cell.label, "mean", summarize(mean)))
    return figs, forget_rows, plastic_rows


def continual_section(view: StoreView) -> Section | None:
    """The continual-learning panels of every task with per-task accuracies; None if none has."""
    tasks = [(t, names) for t in view.tasks() if (names := task_accuracies(view, t))]
    if not tasks:
        return None

    def body() -> Markup:
        parts = [(view.task_name(t), *task_parts(view, t, names)) for t, names in tasks]
        return Markup(ENV.get_template("continual.html").module.continual(INTRO, parts))

    return Section("Continual learning: forgetting and plasticity", "continual",
                   _guard("continual learning", body))


EXTRA_SECTIONS.append(continual_section)
