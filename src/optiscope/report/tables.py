"""The report's tables as plain data: setup, status, per-metric summaries, significance, basins.

Computed from a `StoreView` with `optiscope.stats`; the HTML layer (templates) only lays them out.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as scipy_stats

from optiscope.report.analysis import TaskComparison, compare_task
from optiscope.report.data import CellRuns, StoreView
from optiscope.stats import CellSummary, Proportion, success_rate, summarize


# -- setup and status ------------------------------------------------------------------------
@dataclass
class Setup:
    cells: list[CellRuns]
    environments: list[tuple[str, str]]  # (software versions, device)
    config: str | None


def setup(view: StoreView) -> Setup:
    rows = view.store.fetch("SELECT DISTINCT versions, device FROM runs")
    envs = []
    for v, d in zip(rows["versions"], rows["device"], strict=True):
        try:
            parts = ", ".join(f"{k} {val}" for k, val in json.loads(str(v)).items())
        except (TypeError, ValueError):
            parts = str(v)
        envs.append((parts, str(d or "n/a")))
    return Setup(view.cells, envs, view.store.config_text())


def seed_ranges(seeds: list[int]) -> str:
    """'0–15' for a contiguous run of three or more seeds, else the list."""
    s = sorted(seeds)
    if s and s == list(range(s[0], s[-1] + 1)) and len(s) > 2:
        return f"{s[0]}–{s[-1]}"
    return ", ".join(map(str, s))


@dataclass
class StatusRow:
    cell: CellRuns
    rate: Proportion  # success rate with its Wilson interval
    divergence_steps: list[int]
    error_line: str

    @property
    def bad(self) -> bool:
        return bool(self.cell.n_diverged or self.cell.n_failed)


def status_rows(view: StoreView) -> list[StatusRow]:
    return [
        StatusRow(c, success_rate(c.n_ok, len(c.status)), sorted(d for d in c.diverged_step if d is not None),
                  c.error.splitlines()[0] if c.error else "")
        for c in view.cells
    ]


# -- per task --------------------------------------------------------------------------------
@dataclass
class SummaryRow:
    metric: str
    goal: str
    unit: str
    cell: str
    summary: CellSummary


def summary_rows(view: StoreView, task_key: str, names: list[str]) -> list[SummaryRow]:
    rows = []
    for name in names:
        decl = view.decl(task_key, name)
        for c in view.cells_of(task_key):
            rows.append(SummaryRow(name, decl.goal or "", decl.unit, c.label,
                                   summarize(view.final_values(c, name))))
    return rows


@dataclass
class FinalValues:
    """Each cell's final values of one metric, for distribution and ECDF plots."""

    metric: str
    goal: str
    finals: list[tuple[str, np.ndarray]]


def final_values(view: StoreView, task_key: str, names: list[str]) -> list[FinalValues]:
    cells = view.cells_of(task_key)
    return [FinalValues(n, view.goal(task_key, n), [(c.label, view.final_values(c, n)) for c in cells])
            for n in names]


@dataclass
class Curves:
    """Learning curves of one metric: (cell, steps, values[member, step]) per cell."""

    metric: str
    log_y: bool
    series: list[tuple[str, np.ndarray, np.ndarray]]


def learning_curves(view: StoreView, task_key: str) -> list[Curves]:
    """The task's outcome metrics and the minibatch loss, log-scaled for losses and gaps."""
    names = view.outcome_metrics(task_key)
    if "batch_loss" in view.metric_names(task_key):
        names = names + ["batch_loss"]
    cells = view.cells_of(task_key)
    return [Curves(n, "loss" in n or "gap" in n, [(c.label, *view.curves(c, n)) for c in cells])
            for n in names]


def x_axes(view: StoreView, task_key: str) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Other x axes of the learning curves: per cell, the median gradient evaluations and wall
    time (the engine's `grad_evals`, `time_s`) as (steps, value) per cell, for the curves to
    interpolate at their own steps."""
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    names = view.metric_names(task_key)
    for name, shown in (("grad_evals", "gradient evaluations"), ("time_s", "wall time (s)")):
        if name not in names:
            continue
        per_cell = {}
        for c in view.cells_of(task_key):
            steps, values = view.curves(c, name)
            if not len(steps) or not np.isfinite(values).any():
                continue
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(values, axis=0)
            ok = np.isfinite(med)
            if ok.sum() < 2:
                continue
            per_cell[c.label] = (np.asarray(steps[ok], float), med[ok])
        if per_cell:
            out[shown] = per_cell
    return out


@dataclass
class Significance:
    """The pairwise comparison of a task's cells on its headline metric."""

    comparison: TaskComparison
    rows: list[dict[str, object]]
    methods: list[str]  # p-value methods used across the pairs (e.g. ["exact", "asymptotic"])

    @property
    def alternative(self) -> str:
        return self.comparison.table.alternative


def significance(view: StoreView, task_key: str, metric: str) -> Significance:
    cmp = compare_task(view, task_key, metric)
    rows = cmp.pairwise_rows()
    methods = sorted({str(r.get("pvalue_method", "")) for r in rows} - {""})
    return Significance(cmp, rows, methods)


@dataclass
class BasinTable:
    """Where each cell's seeds ended: counts per basin label, and a homogeneity test."""

    metric: str
    ids: list[int]
    counts: dict[str, list[int]]  # cell -> count per id
    unfinished: dict[str, int]
    chi2: float | None = None
    dof: int | None = None
    pvalue: float | None = None
    small_expected: bool = False
    labels: list[str] = field(default_factory=list)


def basin_table(view: StoreView, task_key: str, metric: str) -> BasinTable | None:
    """Counts of a categorical metric's final labels (None if fewer than two labels occur).

    Chi-square test of homogeneity (scipy.stats.chi2_contingency) over the cells with counts."""
    finals = {c.label: view.final_values(c, metric) for c in view.cells_of(task_key)}
    ids = sorted({int(v) for f in finals.values() for v in f[np.isfinite(f)]})
    if len(ids) < 2:
        return None
    counts = {k: [int((f == i).sum()) for i in ids] for k, f in finals.items()}
    table = BasinTable(metric, ids, counts, {k: int((~np.isfinite(f)).sum()) for k, f in finals.items()},
                       labels=list(finals))
    observed = np.array([row for row in counts.values() if sum(row) > 0])
    if observed.shape[0] > 1:
        r = scipy_stats.chi2_contingency(observed)
        table.chi2, table.dof, table.pvalue = float(r.statistic), int(r.dof), float(r.pvalue)
        table.small_expected = bool((r.expected_freq < 5).any())
    return table
