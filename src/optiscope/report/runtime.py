"""Runtime to target: COCO-style targets, each run's budget to reach them, performance profiles.

A runtime is the budget (gradient evaluations, steps or seconds) a run spent until its metric
first reached a target; never reaching it, or diverging first, is an infinite runtime. Built on
`optiscope.stats` from the store's curves only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from optiscope.errors import OptiscopeError
from optiscope.report.data import CellRuns, StoreView
from optiscope.stats import (
    PerformanceProfile,
    RuntimeECDF,
    coco_targets,
    log_targets,
    performance_profile,
    runtime_ecdf,
    runtimes_to_targets,
)

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
    if budget not in BUDGETS:
        raise OptiscopeError(f"budget must be one of {', '.join(BUDGETS)}, not '{budget}'")
    out = {}
    cells = view.cells_of(task_key)
    goal = view.goal(task_key, metric)
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
        goal = view.goal(task_key, metric)
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


@dataclass
class RuntimeCurves:
    """Runtime ECDFs of every cell for one budget, or why they could not be computed."""

    budget: str
    budget_label: str
    series: list[tuple[str, RuntimeECDF]] = field(default_factory=list)
    error: str | None = None


@dataclass
class RuntimeAnalysis:
    """The runtime-to-target section of one task (metric None or no targets: nothing to show)."""

    metric: str | None
    targets: np.ndarray
    curves: list[RuntimeCurves]

    @property
    def coco(self) -> bool:
        return self.metric == "f_gap"


def runtime_analysis(view: StoreView, task_key: str, budgets: tuple[str, ...] = ("grad_evals", "time_s")) -> RuntimeAnalysis:
    metric = runtime_metric(view, task_key)
    if metric is None:
        return RuntimeAnalysis(None, np.array([]), [])
    targets = task_targets(view, task_key, metric, view.goal(task_key, metric))
    curves = []
    if targets.size:
        for budget in budgets:
            try:
                rts = task_runtimes(view, task_key, metric, targets, budget)
            except Exception as exc:  # shown in the report, the other budget still drawn
                curves.append(RuntimeCurves(budget, BUDGETS[budget], error=str(exc)))
                continue
            series = [(label, runtime_ecdf(r)) for label, r in rts.items() if r.size]
            curves.append(RuntimeCurves(budget, BUDGETS[budget], series))
    return RuntimeAnalysis(metric, targets, curves)


@dataclass
class ProfileAnalysis:
    """A performance profile across the store's tasks, with each task's target."""

    inputs: ProfileInput
    profile: PerformanceProfile | None  # None: no task has a finite target
    goals: dict[str, str]  # task -> goal of its runtime metric

    @property
    def order(self) -> list[int]:
        """Solvers, best score first."""
        if self.profile is None:
            return []
        return [int(i) for i in np.argsort(-self.profile.scores, kind="stable")]


def profile_analysis(view: StoreView, budget: str = "grad_evals") -> ProfileAnalysis:
    inputs = profile_times(view, budget)
    goals = {t: view.goal(t, m) for t, m in inputs.metric.items()}
    if not inputs.targets:
        return ProfileAnalysis(inputs, None, goals)
    return ProfileAnalysis(inputs, performance_profile(inputs.times, inputs.solvers, inputs.problems), goals)
