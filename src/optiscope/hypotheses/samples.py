"""The two samples a hypothesis compares, read from a store: one value per run of cells a and b.

Cells are resolved among the store's cells (tuning trials left out) the way `spec` resolves
them against a config: a label, else an optimizer name, exactly one cell. Metric names are
checked against what the two cells logged; an unknown one fails with the stored names listed.
Only the store is read (through the report's `StoreView`), never a task or the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optiscope.errors import OptiscopeError, unknown_name
from optiscope.hypotheses import metrics
from optiscope.hypotheses.spec import CellRef, Hypothesis, check_distinct, resolve_cell
from optiscope.report.data import CellRuns, StoreView


@dataclass(frozen=True)
class Samples:
    """Per-run values of the two cells, with what produced them."""

    a: np.ndarray
    b: np.ndarray
    cell_a: CellRuns
    cell_b: CellRuns
    metrics: tuple[str, ...]
    goal: str  # of the compared value: "min" or "max"
    note: str = ""
    unlogged_a: int = 0  # runs (not failed, not diverged) that logged none of the metrics
    unlogged_b: int = 0


def compared_cells(view: StoreView) -> list[CellRuns]:
    """The store's cells a hypothesis may name: every cell but tuning trials (which the view
    already keeps apart, in `trial_cells`)."""
    return list(view.cells)


def resolve_pair(view: StoreView, h: Hypothesis) -> tuple[CellRuns, CellRuns]:
    cells = compared_cells(view)
    refs = [CellRef(c.task, c.task_settings, c.label, c.optimizer) for c in cells]
    keys = [c.task_key for c in cells]
    a, b = resolve_cell("a", h.a, refs, h, keys), resolve_cell("b", h.b, refs, h, keys)
    check_distinct(h, a, b)
    return cells[a], cells[b]


def metric_names(view: StoreView, h: Hypothesis, a: CellRuns, b: CellRuns) -> list[str]:
    """The stored metric(s) the hypothesis reads: one name, or a family ("r_med/*", "acc_task*")."""
    stored = sorted(set(view.metric_names(a.task_key)) | set(view.metric_names(b.task_key)))
    name = h.metric_name
    if name.endswith("*"):
        found = metrics.task_metric_family(stored, name)
        if not found:
            raise OptiscopeError(
                f"hypothesis '{h.name}': metric = '{name}' matches no stored metric. "
                f"Stored metrics: {', '.join(stored) or 'none'}"
            )
        return found
    if name not in stored:
        raise OptiscopeError(f"hypothesis '{h.name}': {unknown_name('metric', name, stored)}")
    for cell in (a, b):
        if name not in view.metric_names(cell.task_key) or not len(view.curves(cell, name)[0]):
            raise OptiscopeError(f"hypothesis '{h.name}': cell '{cell.label}' logged no '{name}'")
    return [name]


def cell_curves(view: StoreView, cell: CellRuns, name: str) -> metrics.Curves:
    steps, values = view.curves(cell, name)
    return metrics.Curves(np.asarray(steps), np.asarray(values, dtype=float), cell.status, cell.diverged_step)


def run_values(view: StoreView, h: Hypothesis, cell: CellRuns, names: list[str]) -> np.ndarray:
    """One value per (non-failed) run of `cell`: the hypothesis' statistic of its curves."""
    goal = view.decl(cell.task_key, names[0]).goal or "min"
    if h.statistic == "forgetting":
        return metrics.forgetting([cell_curves(view, cell, n) for n in names])
    c = (cell_curves(view, cell, names[0]) if len(names) == 1
         else metrics.reduce_curves({n: cell_curves(view, cell, n) for n in names}, h.reduce))
    try:
        return curve_statistic(c, goal, h.statistic, h.step, h.target)
    except ValueError as exc:
        raise OptiscopeError(f"hypothesis '{h.name}': step = {h.step}: cell '{cell.label}': {exc}") from None


def curve_statistic(c: metrics.Curves, goal: str, statistic: str, step: int | None = None,
                    target: float | None = None) -> np.ndarray:
    """One value per (non-failed) run: `statistic` of its curve (all but forgetting).

    Raises ValueError when `step` was not logged."""
    if statistic == "final":
        return metrics.final(c, goal)
    if statistic == "at_step":
        assert step is not None
        return metrics.at_step(c, goal, step)
    if statistic in ("min", "max"):
        return metrics.extreme(c, goal, statistic)
    if statistic == "auc":
        return metrics.auc(c, goal)
    assert target is not None
    if statistic == "steps_to_target":
        return metrics.first_reach(c, goal, target)
    if statistic == "final_rate":
        return metrics.final_reached(c, goal, target)
    return metrics.reached(c, goal, target)


def hypothesis_samples(view: StoreView, h: Hypothesis) -> Samples:
    """Resolve the cells and metric of `h` in the store and compute both samples."""
    a, b = resolve_pair(view, h)
    names = metric_names(view, h, a, b)
    if h.statistic == "forgetting" and len(names) == 1 and h.metric is None:
        raise OptiscopeError(f"hypothesis '{h.name}': forgetting needs two or more per-task "
                             f"accuracies; stored: {names[0]}")
    goal = metrics.STATISTIC_GOALS[h.statistic] or view.decl(a.task_key, names[0]).goal or "min"
    note = ""
    if h.statistic == "auc":
        sa, sb = (view.curves(c, names[0])[0] for c in (a, b))
        if len(sa) and len(sb) and (sa[0], sa[-1]) != (sb[0], sb[-1]):
            note = (f"AUC spans differ: a logs steps {sa[0]}..{sa[-1]}, b {sb[0]}..{sb[-1]}")
    values = [run_values(view, h, c, names) for c in (a, b)]
    return Samples(values[0], values[1], a, b, tuple(names), goal, note,
                   unlogged(view, a, names), unlogged(view, b, names))


def unlogged(view: StoreView, cell: CellRuns, names: list[str]) -> int:
    """Runs of `cell` that neither failed nor diverged yet logged no value of any of `names`.

    Such a run has no outcome (its metric was never measured: a probe not run on it, a metric
    from another config), so it must not be read as the worst value the way a diverged run is;
    `evaluate` makes the hypothesis invalid instead."""
    ok = np.array([st not in ("failed", "diverged") for st in cell.status], dtype=bool)
    logged = np.zeros(len(cell.status), dtype=bool)
    for n in names:
        _, values = view.curves(cell, n)
        values = np.asarray(values, dtype=float)
        if values.size:
            logged |= (~np.isnan(values)).any(axis=1)
    return int((ok & ~logged).sum())
