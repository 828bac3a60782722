"""Validity guards: what must be true of each side's runs before a hypothesis' verdict counts.

A comparison can be invalid: "Shampoo forgets less than Adam" read off runs in which Shampoo
never learned the later tasks says nothing about forgetting (it had nothing to forget). A
hypothesis states such conditions in `requires` (`spec.Requirement`), and forgetting hypotheses
get a plasticity guard by default (`spec.Hypothesis.guards`). Each condition is checked on each
side it names:

- a metric condition on the median over the side's seeds (`all_seeds = true`: on every seed),
  a diverged seed counting as failing it whatever its logged values (its curve stopped); for a
  family the statistic is taken per member, then reduced across members;
- `max_diverged = k`: at most k of the side's seeds diverged.

Failed runs (an exception: a bug, not an outcome) are left out, as everywhere in optiscope; a
side with no run left cannot show the condition, so it is not met. An unmet guard makes the
verdict "invalid" (`evaluate`), with the condition and the values measured.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from optiscope.errors import OptiscopeError, unknown_name
from optiscope.hypotheses import metrics
from optiscope.hypotheses.samples import cell_curves, curve_statistic
from optiscope.hypotheses.spec import Hypothesis, Requirement
from optiscope.report.data import CellRuns, StoreView

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_REDUCE = {"median": np.median, "mean": np.mean, "max": np.max, "min": np.min}


@dataclass(frozen=True)
class GuardCheck:
    """One condition checked on one side: met or not, and the values it was judged on."""

    requirement: Requirement
    side: str  # "a" or "b"
    cell: str  # the side's cell label
    met: bool
    measured: float  # the median over seeds (a metric condition) or the diverged count
    values: tuple[float, ...]  # per seed (diverged ones as the failing extreme); () for a count
    n: int  # seeds judged (failed runs left out)
    failing: int  # seeds failing the condition, diverged ones included
    diverged: int

    @property
    def name(self) -> str:
        return self.requirement.label

    def describe(self) -> str:
        """"a 'shampoo': median 0.01 (range 0 to 0.36), 8 of 8 seeds failing, 0 diverged"."""
        where = f"{self.side} '{self.cell}'"
        if self.n == 0:
            return f"{where}: no runs to judge"
        if self.requirement.max_diverged is not None:
            return f"{where}: {self.diverged} of {self.n} seeds diverged"
        finite = np.asarray(self.values)[np.isfinite(self.values)]
        spread = f" (range {finite.min():.3g} to {finite.max():.3g})" if finite.size > 1 else ""
        return (f"{where}: median {self.measured:.3g}{spread}, {self.failing} of {self.n} seeds failing, "
                f"{self.diverged} diverged")


def check_guards(view: StoreView, h: Hypothesis, a: CellRuns, b: CellRuns) -> tuple[GuardCheck, ...]:
    """Every guard of `h` on the sides it names, in order (a before b).

    Raises OptiscopeError for a condition the store cannot answer (an unknown metric, a step
    not logged), naming the hypothesis and the condition."""
    checks = []
    for i, req in enumerate(h.guards):
        where = f"hypothesis '{h.name}': requires {req.name or f'[{i}]'}"
        for side in req.sides:
            checks.append(check(view, req, side, a if side == "a" else b, where))
    return tuple(checks)


def unmet(checks: tuple[GuardCheck, ...]) -> tuple[GuardCheck, ...]:
    return tuple(c for c in checks if not c.met)


def check(view: StoreView, req: Requirement, side: str, cell: CellRuns, where: str = "") -> GuardCheck:
    """Condition `req` on `cell`'s runs (the hypothesis' side `side`)."""
    kept = np.array([s != "failed" for s in cell.status], dtype=bool)
    diverged = np.array([s == "diverged" for s in cell.status], dtype=bool)[kept]
    n, n_div = int(kept.sum()), int(diverged.sum())
    if req.max_diverged is not None:
        return GuardCheck(req, side, cell.label, n > 0 and n_div <= req.max_diverged, float(n_div), (),
                          n, n_div, n_div)
    assert req.op is not None and req.value is not None
    values = requirement_values(view, req, cell, where)
    # A diverged seed fails the condition: it takes the extreme on the failing side of `op`.
    failing_extreme = -np.inf if req.op in (">", ">=") else np.inf
    values = np.where(diverged | np.isnan(values), failing_extreme, values)
    passes = OPS[req.op](values, req.value)
    failing = int(n - passes.sum())
    measured = float(np.median(values)) if n else float("nan")
    met = n > 0 and (failing == 0 if req.all_seeds else bool(OPS[req.op](measured, req.value)))
    return GuardCheck(req, side, cell.label, met, measured, tuple(float(v) for v in values), n, failing, n_div)


def requirement_values(view: StoreView, req: Requirement, cell: CellRuns, where: str = "") -> np.ndarray:
    """One value per non-failed run of `cell`: the condition's statistic (per member, then reduced)."""
    assert req.metric is not None
    names = _metric_names(view, req.metric, cell, where)
    goal = view.decl(cell.task_key, names[0]).goal or "min"
    try:
        per = [curve_statistic(cell_curves(view, cell, n), goal, req.statistic, req.step, req.target)
               for n in names]
    except ValueError as exc:
        raise OptiscopeError(f"{where}: step = {req.step}: cell '{cell.label}': {exc}") from None
    if req.reduce is None:
        return per[0]
    with np.errstate(invalid="ignore"):  # inf - inf in a mean: the run is diverged, overwritten
        return _REDUCE[req.reduce](np.stack(per), axis=0)


def _metric_names(view: StoreView, metric: str, cell: CellRuns, where: str) -> list[str]:
    """The stored metric(s) a condition reads in `cell`: one name, or a family's members."""
    stored = view.metric_names(cell.task_key)
    logged = [n for n in stored if len(view.curves(cell, n)[0])]
    if metric.endswith("*"):
        found = metrics.task_metric_family(logged, metric)
        if not found:
            raise OptiscopeError(f"{where}: metric = '{metric}' matches no metric cell '{cell.label}' "
                                 f"logged. Stored metrics: {', '.join(stored) or 'none'}")
        return found
    if metric not in stored:
        raise OptiscopeError(f"{where}: {unknown_name('metric', metric, stored)}")
    if metric not in logged:
        raise OptiscopeError(f"{where}: cell '{cell.label}' logged no '{metric}'")
    return [metric]
