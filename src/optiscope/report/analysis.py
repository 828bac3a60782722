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

from optiscope.errors import OptiscopeError
from optiscope.report.data import CellRuns, StoreView
from optiscope.stats import TESTS, CellSummary, PairwiseTable, pairwise, summarize
from optiscope.store import atomic_write_parquet


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
    task_name: str = ""  # as the report shows it (the task's label, or its non-default settings)

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
        """One row per pair (a, b), with the effect also in the 'better' direction of the goal:
        P(a better) with its interval (A12 oriented), Cohen's d signed so that > 0 favours a, and
        `better`: the cell that is better at Holm p < 0.05 ("" when the difference is not)."""
        out = []
        for r in self.table.rows():
            low, high = float(r["a12_low"]), float(r["a12_high"])
            if self.goal == "min":
                low, high = 1 - high, 1 - low
            sign = 1.0 if self.goal == "max" else -1.0
            p = float(r["p_a_better"])
            significant = float(r["pvalue_holm"]) < 0.05 if r["pvalue_holm"] == r["pvalue_holm"] else False
            out.append({"task": self.task_key, "metric": self.metric, **r,
                        "p_a_better_low": low, "p_a_better_high": high,
                        "d_a_better": sign * float(r["cohens_d"]),
                        "d_a_better_low": sign * float(r["cohens_d_high" if sign < 0 else "cohens_d_low"]),
                        "d_a_better_high": sign * float(r["cohens_d_low" if sign < 0 else "cohens_d_high"]),
                        "better": (r["a"] if p > 0.5 else r["b"] if p < 0.5 else "") if significant else ""})
        return out

    def export(self, csv: Path | None = None, parquet: Path | None = None) -> list[Path]:
        """Write the summaries to `csv`/`parquet` and the pairwise table beside them
        (`<stem>.pairwise.<ext>`); returns the paths written."""
        written = []
        for path, writer in ((csv, pa_csv.write_csv), (parquet, lambda table, path: atomic_write_parquet(path, table))):
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
    task_key: str | None,
    metric: str | None = None,
    test: str = "mannwhitney",
    *,
    n_bootstrap: int = 1000,
    alternative: str = "two-sided",
) -> TaskComparison:
    """Compare every cell of `task_key` on `metric` (default: the task's headline metric).

    `task_key` may be the stored key, the name the report shows (a `label`), a bare task name
    that is unique, or None when the store holds one task.
    `alternative` ("two-sided", "less", "greater") is passed to `pairwise`: each pair (a, b) is
    tested as a against b.
    """
    tasks = view.tasks()
    if task_key is None:
        if len(tasks) != 1:
            raise OptiscopeError(
                "--task is needed: the store holds "
                + (f"{len(tasks)} tasks: {', '.join(view.task_name(t) for t in tasks)}" if tasks else "no task")
            )
        task_key = tasks[0]
    if task_key not in tasks:
        found = view.find_task(task_key)
        if found is None:
            matches = [view.task_name(t) for t in tasks if t.split("(")[0] == task_key]
            raise OptiscopeError(
                f"task '{task_key}' is not in the store"
                + (f" or is ambiguous ({', '.join(matches)})" if matches else "")
                + f"; tasks stored: {', '.join(view.task_name(t) for t in tasks) or 'none'}"
            )
        task_key = found
    metric = metric or view.headline_metric(task_key)
    names = view.outcome_metrics(task_key)
    if metric is None or metric not in names:
        raise OptiscopeError(
            f"metric '{metric}' is not stored for task '{task_key}'; choose one of {', '.join(names)}"
        )
    if test not in TESTS:
        raise OptiscopeError(f"test must be one of {', '.join(TESTS)}, not '{test}'")
    key = (task_key, metric, test, n_bootstrap, alternative)
    if key in view.comparisons:
        return view.comparisons[key]
    cells = view.cells_of(task_key)
    goal = view.goal(task_key, metric)
    outcomes = {c.label: view.outcomes(c, metric, goal) for c in cells}
    summaries = {c.label: summarize(view.final_values(c, metric), n_resamples=n_bootstrap) for c in cells}
    groups = {k: v for k, v in outcomes.items() if v.size}  # a failed cell has no outcomes
    table = pairwise(groups, test, goal=goal, n_bootstrap=n_bootstrap,  # type: ignore[arg-type]
                     alternative=alternative)  # type: ignore[arg-type]
    view.comparisons[key] = TaskComparison(task_key, metric, goal, test, cells, outcomes, summaries, table,
                                           view.task_name(task_key))
    return view.comparisons[key]
