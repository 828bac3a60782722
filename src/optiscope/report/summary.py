"""The report's first section: the answer, on one screen.

Per task: the cells ranked on the headline metric (the task's declared headline, else its first
metric) by median with its 95% BCa interval; the differences that stay significant after Holm's
correction across the task's pairs, each written winner first with its effect in the direction
"better" for the metric's goal (P(winner better), Cohen's d signed so that positive favours the
winner); and a banner with every failed or diverged cell, its error and what to do. The numbers
are those of `optiscope compare` (`analysis.compare_task`), so the terminal and the page agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from optiscope.report.analysis import compare_task
from optiscope.report.data import CellRuns, StoreView

ALPHA = 0.05


@dataclass
class Ranked:
    """One cell's place on a task's headline metric."""

    rank: int | None  # None: no finished seed (not ranked)
    cell: CellRuns
    median: float
    low: float
    high: float
    n_finite: int
    n: int


@dataclass
class Better:
    """A Holm-significant difference, oriented so that `winner` is better on the metric's goal."""

    winner: str
    loser: str
    p_better: float  # P(winner's outcome better than loser's) + ties / 2
    p_better_low: float
    p_better_high: float
    cohens_d: float  # signed so that > 0 favours the winner
    pvalue_holm: float


@dataclass
class TaskSummary:
    task_key: str
    name: str
    anchor: str
    metric: str | None
    goal: str
    ranking: list[Ranked] = field(default_factory=list)
    better: list[Better] = field(default_factory=list)
    n_pairs: int = 0
    note: str = ""


@dataclass
class Trouble:
    """A cell that failed or had diverged seeds: shown in the banner."""

    task: str
    cell: str
    n_failed: int
    n_diverged: int
    n: int
    error: str


def oriented(row: dict) -> Better:
    """A row of `TaskComparison.pairwise_rows` written winner first, effects in the 'better'
    direction of the metric's goal."""
    p = float(row["p_a_better"])
    lo, hi, d = float(row["p_a_better_low"]), float(row["p_a_better_high"]), float(row["d_a_better"])
    if p >= 0.5:
        return Better(str(row["a"]), str(row["b"]), p, lo, hi, d, float(row["pvalue_holm"]))
    return Better(str(row["b"]), str(row["a"]), 1 - p, 1 - hi, 1 - lo, -d, float(row["pvalue_holm"]))


def task_summary(view: StoreView, k: int, task_key: str) -> TaskSummary:
    metric = view.headline_metric(task_key)
    out = TaskSummary(task_key, view.task_name(task_key), f"task-{k}", metric,
                      view.goal(task_key, metric) if metric else "min")
    if metric is None:
        out.note = "no outcome metric was stored for this task (every cell failed?)"
        return out
    cmp = compare_task(view, task_key, metric)
    ranked, keys = [], {}
    sign = 1 if out.goal == "min" else -1
    for c in cmp.cells:
        s = cmp.summaries[c.label]
        ranked.append(Ranked(None, c, s.median, s.median_ci.low, s.median_ci.high, s.n_finite, s.n))
        o = cmp.outcomes[c.label]  # diverged seeds as the worst value: they cost a cell its rank
        keys[c.label] = (sign * float(np.median(o)), sign * s.median) if o.size else (math.inf, math.inf)
    finite = sorted((r for r in ranked if math.isfinite(r.median)), key=lambda r: keys[r.cell.label])
    for i, r in enumerate(finite):
        r.rank = i + 1
    out.ranking = finite + [r for r in ranked if not math.isfinite(r.median)]
    rows = cmp.pairwise_rows()
    out.n_pairs = len(rows)
    sig = [r for r in rows if math.isfinite(float(r["pvalue_holm"])) and float(r["pvalue_holm"]) < ALPHA]
    out.better = sorted((oriented(r) for r in sig),
                        key=lambda b: (b.pvalue_holm, -b.p_better))
    return out


def troubles(view: StoreView) -> list[Trouble]:
    return [
        Trouble(view.task_name(c.task_key), c.label, c.n_failed, c.n_diverged, len(c.status),
                error_line(c.error))
        for c in view.cells if c.n_failed or c.n_diverged
    ]


def every_cell_failed(view: StoreView) -> bool:
    """True when the store has cells and not one seed of them trained (all failed)."""
    return bool(view.cells) and all(c.n_failed == len(c.status) for c in view.cells)


def error_line(error: str | None) -> str:
    """The line of an error that says what went wrong (a traceback's last line)."""
    lines = [line for line in (error or "").strip().splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1].strip() if lines[0].startswith("Traceback") else lines[0].strip()
