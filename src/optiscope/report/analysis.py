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
    task_key: str,
    metric: str | None = None,
    test: str = "mannwhitney",
    *,
    n_bootstrap: int = 1000,
    alternative: str = "two-sided",
) -> TaskComparison:
    """Compare every cell of `task_key` on `metric` (default: the task's headline metric).

    `alternative` ("two-sided", "less", "greater") is passed to `pairwise`: each pair (a, b) is
    tested as a against b.
    """
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
    goal = view.goal(task_key, metric)
    outcomes = {c.label: view.outcomes(c, metric, goal) for c in cells}
    summaries = {c.label: summarize(view.final_values(c, metric), n_resamples=n_bootstrap) for c in cells}
    groups = {k: v for k, v in outcomes.items() if v.size}  # a failed cell has no outcomes
    table = pairwise(groups, test, goal=goal, n_bootstrap=n_bootstrap,  # type: ignore[arg-type]
                     alternative=alternative)  # type: ignore[arg-type]
    return TaskComparison(task_key, metric, goal, test, cells, outcomes, summaries, table)
