"""The comparison of one task's cells on one metric: what the report shows and `compare` prints.

Built from a `StoreView` with `optiscope.stats`: per-cell summaries (median, mean, quantiles,
BCa intervals, success rate with Wilson interval) and the pairwise table (a test per pair, Holm
across the family, effect sizes with intervals). Exported as CSV or Parquet from here, so the
terminal, the HTML and the files always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from optiscope.errors import OptiscopeError
from optiscope.report.data import CellRuns, StoreView
from optiscope.stats import TESTS, CellSummary, PairwiseTable, pairwise, summarize


def metric_goal(task: str, name: str) -> str:
    """'min' or 'max' for a task's metric (losses and gaps are minimised by default)."""
    from optiscope.tasks.registry import task_class

    try:
        info = task_class(task).metrics
    except Exception:
        info = ()
    for m in info:
        if m.name == name:
            return m.goal
    return "max" if name.endswith("acc") or name.endswith("accuracy") else "min"


@dataclass
class TaskComparison:
    """Summaries and pairwise tests of every cell of one task on one metric."""

    task_key: str
    metric: str
    goal: str
    test: str
    cells: list[CellRuns]
    outcomes: dict[str, np.ndarray]  # label -> per-seed outcome, diverged = worst
    summaries: dict[str, CellSummary]
    table: PairwiseTable

    def summary_rows(self) -> list[dict[str, Any]]:
        rows = []
        for c in self.cells:
            s = self.summaries[c.label]
            rows.append({
                "task": self.task_key, "metric": self.metric, "goal": self.goal, "cell": c.label,
                "optimizer": c.optimizer, "cell_id": c.cell_id, "n_diverged": c.n_diverged,
                "n_failed": c.n_failed, **s.row(),
            })
        return rows

    def pairwise_rows(self) -> list[dict[str, Any]]:
        return [{"task": self.task_key, "metric": self.metric, **r} for r in self.table.rows()]

    def export(self, csv: Path | None = None, parquet: Path | None = None) -> list[Path]:
        """Write the summaries to `csv`/`parquet` and the pairwise table beside them
        (`<stem>.pairwise.<ext>`); returns the paths written."""
        written = []
        for path, writer in ((csv, pa_csv.write_csv), (parquet, pq.write_table)):
            if path is None:
                continue
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            writer(pa.Table.from_pylist(self.summary_rows()), path)
            pair_path = path.with_name(f"{path.stem}.pairwise{path.suffix}")
            writer(_table(self.pairwise_rows()), pair_path)
            written += [path, pair_path]
        return written


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    if rows:
        return pa.Table.from_pylist(rows)
    return pa.table({"a": pa.array([], pa.string()), "b": pa.array([], pa.string())})


def compare_task(
    view: StoreView,
    task_key: str,
    metric: str | None = None,
    test: str = "mannwhitney",
    *,
    n_bootstrap: int = 1000,
) -> TaskComparison:
    """Compare every cell of `task_key` on `metric` (default: the task's headline metric)."""
    tasks = view.tasks()
    if task_key not in tasks:
        matches = [t for t in tasks if t.split("(")[0] == task_key]
        if len(matches) != 1:
            raise OptiscopeError(
                f"task '{task_key}' is not in the store"
                + (f" or is ambiguous ({', '.join(matches)})" if matches else "")
                + f"; tasks stored: {', '.join(tasks) or 'none'}"
            )
        task_key = matches[0]
    metric = metric or view.headline_metric(task_key)
    names = view.outcome_metrics(task_key)
    if metric is None or metric not in names:
        raise OptiscopeError(
            f"metric '{metric}' is not stored for task '{task_key}'; choose one of {', '.join(names)}"
        )
    if test not in TESTS:
        raise OptiscopeError(f"test must be one of {', '.join(TESTS)}, not '{test}'")
    cells = view.cells_of(task_key)
    goal = metric_goal(cells[0].task, metric)
    outcomes = {c.label: view.outcomes(c, metric, goal) for c in cells}
    summaries = {c.label: summarize(view.final_values(c, metric), n_resamples=n_bootstrap) for c in cells}
    groups = {k: v for k, v in outcomes.items() if v.size}  # a failed cell has no outcomes
    table = pairwise(groups, test, goal=goal, n_bootstrap=n_bootstrap)  # type: ignore[arg-type]
    return TaskComparison(task_key, metric, goal, test, cells, outcomes, summaries, table)


# -- runtime to target --------------------------------------------------------------------
BUDGETS = {"grad_evals": "gradient evaluations", "step": "steps", "time_s": "seconds"}


def runtime_metric(view: StoreView, task_key: str) -> str | None:
    """The metric runtimes are measured on: training loss where stored (an optimisation
    measure, as in COCO), else the task's headline metric."""
    names = view.outcome_metrics(task_key)
    if "train_loss" in names:
        return "train_loss"
    return view.headline_metric(task_key)


def _budget(view: StoreView, cell: CellRuns, steps: np.ndarray, budget: str) -> np.ndarray:
    """(members, len(steps)) budget spent at each evaluation step."""
    if budget == "step":
        return np.broadcast_to(steps.astype(float), (len(cell.run_ids), len(steps)))
    b_steps, b_vals = view.curves(cell, budget)
    if not len(b_steps):
        raise OptiscopeError(f"cell {cell.label} has no '{budget}' metric to measure budgets with")
    idx = np.searchsorted(b_steps, steps)
    idx = np.clip(idx, 0, len(b_steps) - 1)
    out = b_vals[:, idx]
    # A member that stopped (diverged) has no later budget rows; its runtimes there are inf anyway.
    return np.where(np.isfinite(out), out, np.inf)


def task_targets(view: StoreView, task_key: str, metric: str, goal: str, n: int = 51) -> np.ndarray:
    """Targets for runtime ECDFs on one task.

    A suboptimality (`f_gap`, known optimum 0) gets COCO's 51 targets 10^2 .. 10^-8. Another
    metric to minimise gets `n` targets log-spaced from the median initial value to the best
    value any run reached (linearly spaced if a bound is not positive); a metric to maximise,
    linearly from the median initial value to the best.
    """
    from optiscope.stats import coco_targets, log_targets

    if metric == "f_gap":
        return coco_targets(n)
    firsts, bests = [], []
    for c in view.cells_of(task_key):
        steps, vals = view.curves(c, metric)
        if not len(steps):
            continue
        firsts.append(vals[:, 0])
        fin = vals[np.isfinite(vals)]
        if fin.size:
            bests.append(fin.min() if goal == "min" else fin.max())
    start = np.nanmedian(np.concatenate(firsts)) if firsts else np.nan
    if not bests or not np.isfinite(start):
        return np.array([])
    best = min(bests) if goal == "min" else max(bests)
    if goal == "min" and start > 0 and best > 0 and best < start:
        return log_targets(start, best, n)
    return np.linspace(start, best, n)


def task_runtimes(
    view: StoreView, task_key: str, metric: str, targets: np.ndarray, budget: str = "grad_evals"
) -> dict[str, np.ndarray]:
    """label -> (members, targets) runtimes (inf: never reached, diverged first, or failed)."""
    from optiscope.stats import runtimes_to_targets

    if budget not in BUDGETS:
        raise OptiscopeError(f"budget must be one of {', '.join(BUDGETS)}, not '{budget}'")
    out = {}
    cells = view.cells_of(task_key)
    goal = metric_goal(cells[0].task, metric) if cells else "min"
    for c in cells:
        steps, vals = view.curves(c, metric)
        keep = np.array([s != "failed" for s in c.status], dtype=bool)
        if not len(steps) or not keep.any():
            out[c.label] = np.full((int(keep.sum()), len(targets)), np.inf)
            continue
        b = _budget(view, c, steps, budget)
        out[c.label] = runtimes_to_targets(b[keep], vals[keep], targets, goal)  # type: ignore[arg-type]
    return out


@dataclass
class ProfileInput:
    """Times to one target per task, for a performance profile across tasks."""

    solvers: list[str]
    problems: list[str]
    times: np.ndarray  # (solvers, problems)
    targets: dict[str, float]
    metric: dict[str, str]


def profile_times(view: StoreView, budget: str = "grad_evals") -> ProfileInput:
    """Per task, the target is the best cell's median final value (of the runtime metric, the
    median taken so that ceil(n/2) of its seeds reach it); a
    cell's time is the median over its seeds of the budget to reach it (inf if half or more of
    the seeds never do), as AlgoPerf takes the median over its trials. Times are floored at one
    budget unit so that ratios exist when a target is met at the start."""
    solvers: list[str] = list(dict.fromkeys(c.label for c in view.cells))
    problems = view.tasks()
    times = np.full((len(solvers), len(problems)), np.inf)
    targets, metrics = {}, {}
    for j, task_key in enumerate(problems):
        metric = runtime_metric(view, task_key)
        cells = view.cells_of(task_key)
        if metric is None or not cells:
            continue
        goal = metric_goal(cells[0].task, metric)
        # The median a cell reliably reaches: of n seeds, ceil(n/2) are at least this good.
        method = "higher" if goal == "min" else "lower"
        medians = [np.quantile(o, 0.5, method=method) for c in cells
                   if (o := view.outcomes(c, metric, goal)).size]
        finite = [m for m in medians if np.isfinite(m)]
        if not finite:
            continue
        target = min(finite) if goal == "min" else max(finite)
        targets[task_key], metrics[task_key] = float(target), metric
        try:
            rts = task_runtimes(view, task_key, metric, np.array([target]), budget)
        except OptiscopeError:  # a store without budget bookkeeping: count steps instead
            rts = task_runtimes(view, task_key, metric, np.array([target]), "step")
        for c in cells:
            r = rts[c.label][:, 0]
            if r.size:
                times[solvers.index(c.label), j] = max(float(np.median(r)), 1.0)
    return ProfileInput(solvers, problems, times, targets, metrics)
