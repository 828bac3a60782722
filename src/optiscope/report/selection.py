"""Selections the report makes across a task's cells: the tuned setting of each optimizer, and
whether a lower training loss goes with a better held-out metric (generalisation).

Plain dataclasses out, computed from the store's final values with `optiscope.stats`; the HTML
layer only draws them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from optiscope.report.data import CellRuns, StoreView
from optiscope.stats import (
    CorrelationResult,
    Interval,
    SensitivityCurve,
    best_setting,
    bootstrap_ci,
    sensitivity,
    spearman,
)

HELD_OUT_PREFIXES = ("test_", "val_")


# -- generalisation --------------------------------------------------------------------------
@dataclass
class Generalisation:
    """Spearman correlations of final training loss with a held-out metric, and the scatter."""

    train: str
    held: str
    correlations: list[tuple[str, CorrelationResult]]  # (across what, result); pooled first
    scatter: list[tuple[str, np.ndarray, np.ndarray]]  # (cell, final train, final held-out)

    @property
    def pooled(self) -> CorrelationResult:
        return self.correlations[0][1]


def held_out_metric(view: StoreView, task_key: str) -> str | None:
    """The headline if it is held-out (test_/val_), else the first held-out outcome metric."""
    head = view.headline_metric(task_key)
    if head and head.startswith(HELD_OUT_PREFIXES):
        return head
    return next((n for n in view.outcome_metrics(task_key) if n.startswith(HELD_OUT_PREFIXES)), None)


def training_loss_metric(view: StoreView, task_key: str) -> str | None:
    """`train_loss`, or `loss` (the convex tasks' full-data training objective)."""
    names = view.outcome_metrics(task_key)
    return next((n for n in ("train_loss", "loss") if n in names), None)


def generalisation(view: StoreView, task_key: str) -> Generalisation | None:
    """None when the task logs no training-loss and held-out pair (synthetic functions)."""
    train, held = training_loss_metric(view, task_key), held_out_metric(view, task_key)
    if train is None or held is None:
        return None
    cells = view.cells_of(task_key)
    g_train, g_held = view.goal(task_key, train), view.goal(task_key, held)
    xs = {c.label: view.outcomes(c, train, g_train) for c in cells}
    ys = {c.label: view.outcomes(c, held, g_held) for c in cells}
    pooled = spearman(np.concatenate(list(xs.values())), np.concatenate(list(ys.values())))
    med_x = [np.median(v) for v in xs.values() if v.size]
    med_y = [np.median(v) for v in ys.values() if v.size]
    rows = [("all runs (pooled)", pooled), ("cells (medians)", spearman(med_x, med_y))]
    rows += [(f"within {label}", spearman(xs[label], ys[label])) for label in xs]
    scatter = [(c.label, view.final_values(c, train), view.final_values(c, held)) for c in cells]
    return Generalisation(train, held, rows, scatter)


# -- tuning ----------------------------------------------------------------------------------
@dataclass
class TunedOptimizer:
    """One optimizer's best setting on a task, chosen on selection data, reported on other data."""

    optimizer: str
    n_settings: int
    best: str
    basis: str  # what the selection was made on
    reported: Interval  # median at the best setting with its bootstrap CI
    n_finished: int
    n_seeds: int


@dataclass
class Tuning:
    metric: str
    tuned: list[TunedOptimizer] = field(default_factory=list)
    sensitivity: list[tuple[str, SensitivityCurve]] = field(default_factory=list)


def tuning(view: StoreView, task_key: str) -> Tuning | None:
    """None when the task has no outcome metric. Selection: on validation data (`val_*`) where
    stored, else on even-indexed seeds with reporting on odd ones (4+ seeds), else on the same
    seeds (optimistic; said in `basis`)."""
    metric = view.headline_metric(task_key)
    if metric is None:
        return None
    goal = view.goal(task_key, metric)
    by_opt: dict[str, list[CellRuns]] = {}
    for c in view.cells_of(task_key):
        by_opt.setdefault(c.optimizer, []).append(c)
    out = Tuning(metric)
    val = "val_" + metric.removeprefix("test_")
    has_val = val in view.outcome_metrics(task_key)
    for opt, cs in ((o, cs) for o, cs in by_opt.items() if len(cs) > 1):
        n = min(len(c.seeds) for c in cs)
        if has_val:
            sel = {c.label: view.outcomes(c, val, view.goal(task_key, val)) for c in cs}
            rep = {c.label: view.final_values(c, metric) for c in cs}
            basis = f"median {val} (validation data)"
        elif n >= 4:
            sel = {c.label: view.outcomes(c, metric, goal)[0::2] for c in cs}
            rep = {c.label: view.final_values(c, metric)[1::2] for c in cs}
            basis = f"median {metric} on even-indexed seeds; reported on the odd ones"
        else:
            sel = {c.label: view.outcomes(c, metric, goal) for c in cs}
            rep = {c.label: view.final_values(c, metric) for c in cs}
            basis = f"median {metric} on the same seeds (fewer than 4: optimistic)"
        best = best_setting(sel, goal)  # type: ignore[arg-type]
        r = rep[best]
        out.tuned.append(TunedOptimizer(opt, len(cs), best, basis, bootstrap_ci(r, "median"),
                                        int(np.isfinite(r).sum()), r.size))
        out.sensitivity += _lr_sensitivity(view, opt, cs, metric)
    return out


def _lr_sensitivity(view: StoreView, opt: str, cells: list[CellRuns], metric: str) -> list[tuple[str, SensitivityCurve]]:
    """Final metric against the learning rate, per group of cells that differ only in `lr`."""
    groups: dict[str, list[CellRuns]] = {}
    for c in cells:
        if isinstance(c.hyperparameters.get("lr"), int | float):
            rest = {k: v for k, v in c.hyperparameters.items() if k != "lr"}
            groups.setdefault(json.dumps(rest, sort_keys=True), []).append(c)
    out = []
    rests = {k: json.loads(k) for k in groups}
    varying = sorted({k for r in rests.values() for k in r
                      if len({json.dumps(o.get(k), sort_keys=True) for o in rests.values()}) > 1})
    for rest, gc in groups.items():
        if len({c.hyperparameters["lr"] for c in gc}) > 1:
            curve = sensitivity([float(c.hyperparameters["lr"]) for c in gc],
                                [view.final_values(c, metric) for c in gc])
            shown = ", ".join(f"{k}={_num(rests[rest].get(k))}" for k in varying)  # only what differs
            out.append((opt + (f"({shown})" if shown else ""), curve))
    return out


def _num(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
