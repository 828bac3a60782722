"""Per-run statistics from stored metric curves: one number per run, the sample a test compares.

Every function takes a cell's curves as `steps` (T,) and `values` (runs, T) (NaN where a run
logged nothing), with each run's `status` and `diverged_step`, and returns one value per run
that did not fail (a failed run raised an exception: a bug, not an outcome, so it is left out,
as everywhere in optiscope).

Diverged runs count as the worst outcome, never as missing: +inf for a quantity to minimise
(the metric's declared goal; a metric with no goal is treated as minimised), -inf for one to
maximise. So Mann-Whitney ranks a diverged run below every finished one. Precisely:

- final, min, max, auc, forgetting: any divergence makes the run worst (its curve stops).
- at_step: worst if the run diverged at or before `step` (its value there is not finite).
- steps_to_target: the first logged step at which the metric reaches `target` (<= for a
  minimised metric, >= for a maximised one), counted only before divergence; never reached is
  censored at +inf (slowest), which rank tests handle as the worst rank (ties among misses).
- rate: 1 if the run reached `target` (as above) at any logged step, else 0: the run's best
  logged value, which includes the start (step 0 is logged) and every evaluation.
- final_rate: 1 if the run's last logged value reaches `target`, else 0 (a diverged run: 0): where
  the run ended, what a "final point" claim needs.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: The goal of each statistic's value: forgetting and steps are minimised, a rate maximised;
#: None means the metric's own goal.
STATISTIC_GOALS: dict[str, str | None] = {
    "final": None, "at_step": None, "min": None, "max": None, "auc": None,
    "steps_to_target": "min", "forgetting": "min", "rate": "max", "final_rate": "max",
}
CONTINUAL_TASK_METRIC = re.compile(r"^(?P<family>.*?)(?P<k>\d+)$")


@dataclass(frozen=True)
class Curves:
    """One cell's curves of one metric: steps (T,), values (runs, T), and each run's status."""

    steps: np.ndarray
    values: np.ndarray
    status: Sequence[str]
    diverged_step: Sequence[int | None]

    def kept(self) -> np.ndarray:
        """Mask of the runs that did not fail."""
        return np.array([s != "failed" for s in self.status], dtype=bool)

    def diverged(self) -> np.ndarray:
        return np.array([s == "diverged" for s in self.status], dtype=bool)


def _worst(goal: str | None) -> float:
    return -np.inf if goal == "max" else np.inf


def _last_finite(values: np.ndarray) -> np.ndarray:
    """Each row's last non-NaN value (NaN if the row has none)."""
    ok = ~np.isnan(values)
    out = np.full(values.shape[0], np.nan)
    has = ok.any(axis=1)
    last = values.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)
    out[has] = values[has, last[has]]
    return out


def _finish(raw: np.ndarray, c: Curves, goal: str | None, spoiled: np.ndarray) -> np.ndarray:
    """Worst value where a run is spoiled (diverged) or has no finite value; failed runs dropped."""
    worst = _worst(goal)
    out = np.where(spoiled | ~np.isfinite(raw), worst, raw)
    return out[c.kept()]


def final(c: Curves, goal: str | None) -> np.ndarray:
    return _finish(_last_finite(c.values), c, goal, c.diverged())


def at_step(c: Curves, goal: str | None, step: int) -> np.ndarray:
    hit = np.flatnonzero(c.steps == step)
    if hit.size == 0:
        raise ValueError(_missing_step(c.steps, step))
    raw = c.values[:, hit[0]]
    spoiled = np.array([d is not None and d <= step for d in c.diverged_step], dtype=bool)
    return _finish(raw, c, goal, spoiled)


def extreme(c: Curves, goal: str | None, which: str) -> np.ndarray:
    """The smallest ("min") or largest ("max") value a run logged."""
    with np.errstate(all="ignore"):
        fn = np.nanmin if which == "min" else np.nanmax
        raw = np.array([fn(r) if np.isfinite(r).any() else np.nan for r in np.where(np.isfinite(c.values), c.values, np.nan)])
    return _finish(raw, c, goal, c.diverged())


def auc(c: Curves, goal: str | None) -> np.ndarray:
    """Area under the curve by the trapezoid rule over the logged steps (np.trapezoid)."""
    raw = np.array([
        np.trapezoid(row[ok], c.steps[ok]) if (ok := ~np.isnan(row)).sum() >= 2 else np.nan
        for row in c.values
    ])
    return _finish(raw, c, goal, c.diverged())


def first_reach(c: Curves, goal: str | None, target: float) -> np.ndarray:
    """Per run (failed ones dropped): the first step reaching `target` before divergence, +inf if none."""
    with np.errstate(invalid="ignore"):
        reached = c.values >= target if goal == "max" else c.values <= target
    reached &= np.isfinite(c.values)
    out = np.full(c.values.shape[0], np.inf)
    for i, row in enumerate(reached):
        d = c.diverged_step[i]
        ok = row & (c.steps < d) if d is not None else row
        if ok.any():
            out[i] = float(c.steps[np.argmax(ok)])
    return out[c.kept()]


def reached(c: Curves, goal: str | None, target: float) -> np.ndarray:
    """1.0 for each run (failed ones dropped) that reached `target` before diverging, else 0.0."""
    return np.isfinite(first_reach(c, goal, target)).astype(float)


def final_reached(c: Curves, goal: str | None, target: float) -> np.ndarray:
    """1.0 for each run (failed ones dropped) whose last logged value reaches `target` (<= for a
    minimised metric, >= for a maximised one), else 0.0; a diverged run is 0.0."""
    last = _last_finite(c.values)
    with np.errstate(invalid="ignore"):
        hit = last >= target if goal == "max" else last <= target
    hit &= np.isfinite(last) & ~c.diverged()
    return hit.astype(float)[c.kept()]


def forgetting(per_task: Sequence[Curves]) -> np.ndarray:
    """Mean over tasks of (best accuracy reached - final accuracy), per run.

    `per_task` holds the curves of the per-task accuracies acc_task0 .. acc_task{K-1} in task
    order; the last task is left out (nothing is trained after it, so a drop there is noise, not
    forgetting; Chaudhry et al. 2018 average over the first K-1 tasks too). The best is taken
    over every logged evaluation, not only the ends of stages. One task given: that task's
    forgetting. A diverged run is worst (+inf).
    """
    if not per_task:
        raise ValueError("forgetting needs at least one per-task accuracy curve")
    tasks = per_task[:-1] if len(per_task) > 1 else per_task
    drops = np.stack([task_forgetting(c) for c in tasks])
    return drops.mean(axis=0)


def task_forgetting(c: Curves) -> np.ndarray:
    """Best logged value minus final value of one accuracy curve, per run (failed dropped)."""
    vals = np.where(np.isfinite(c.values), c.values, np.nan)
    with np.errstate(all="ignore"):
        best = np.array([np.nanmax(r) if np.isfinite(r).any() else np.nan for r in vals])
    return _finish(best - _last_finite(vals), c, "min", c.diverged())


def task_metric_family(names: Sequence[str], pattern: str) -> list[str]:
    """The stored names matching `pattern` ("acc_task*": acc_task0, acc_task1, ...; "r_med/*":
    every tensor's), ordered by their trailing number when they have one, else by name."""
    prefix = pattern[:-1]
    found = [n for n in names if n.startswith(prefix) and n != prefix]

    def key(n: str) -> tuple[int, str]:
        m = CONTINUAL_TASK_METRIC.match(n[len(prefix):])
        return (int(m.group("k")) if m and not m.group("family") else 1 << 30, n)

    return sorted(found, key=key)


def reduce_curves(curves: Mapping[str, Curves], how: str) -> Curves:
    """One curve per run reducing several metrics (say every tensor's r_med) at each step."""
    first = next(iter(curves.values()))
    steps = np.unique(np.concatenate([c.steps for c in curves.values()]))
    stack = np.full((len(curves), first.values.shape[0], steps.size), np.nan)
    for i, c in enumerate(curves.values()):
        stack[i][:, np.searchsorted(steps, c.steps)] = c.values
    fn = {"median": np.nanmedian, "mean": np.nanmean, "max": np.nanmax, "min": np.nanmin}[how]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN steps stay NaN
        values = fn(stack, axis=0)
    return Curves(steps, values, first.status, first.diverged_step)


def _missing_step(steps: np.ndarray, step: int) -> str:
    shown = ", ".join(str(int(s)) for s in steps[:6]) + (f", ..., {int(steps[-1])}" if steps.size > 6 else "")
    return f"step {step} was not logged; logged steps: {shown or 'none'}"
