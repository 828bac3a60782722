"""What the tuning section shows, as plain data computed from the store alone.

The tuning protocol (optiscope.tuning) leaves STORE/tuning/protocol.json, trials.parquet and
final.parquet (read by tuning_files.py); the trial and final cells themselves are
ordinary cells of the store (runs.role "trial" / "final"). Everything here is recomputed from the
stored metrics with `optiscope.stats`, never by importing the tuning, task or engine code, so the
numbers a reader sees are the store's:

- sensitivity: each trial's final selection metric, median and IQR over its tuning seeds, against
  each tuned dimension (diverged trials kept and counted: the protocol scores them worst);
- the default-vs-tuned gap on the evaluation seeds, with bootstrap intervals;
- the finals compared on fresh seeds, each against the best one (Mann-Whitney, Holm);
- with several studies, who won each; with task settings searched, the best architecture.

A protocol over several task settings (protocol.json "tasks", the files' `task` column) is
analysed per task: trials and finals of different tasks are never pooled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optiscope.report.data import CellRuns, StoreView
from optiscope.report.tuning_files import Final, Protocol, Trial, read_finals, read_trials
from optiscope.stats import (
    CellSummary,
    Interval,
    PairwiseTable,
    SensitivityCurve,
    best_setting,
    bootstrap_ci,
    compare,
    holm,
    sensitivity,
    summarize,
)
from optiscope.stats.bootstrap import bootstrap_interval

TASK_PREFIX = "task."


# -- sensitivity -------------------------------------------------------------------------------
@dataclass
class Sensitivity:
    """One tuned dimension of one optimizer: every trial of one study as a point."""

    key: str
    dim: str
    scale: str  # log | linear | categorical
    categories: list[Any]  # categorical: the choices in order (x = index)
    by_study: list[tuple[int, SensitivityCurve, list[int]]]  # (study, curve over trials, trial numbers in x order)
    best: list[tuple[int, float, float]]  # (study, x, median) of the selected trial
    n_worst: int  # diverged or failed trials (drawn at the worst edge)
    n_trials: int


def dimension_scale(spec: Any) -> str:
    """How a search-space entry is drawn: log_uniform on a log axis, choice as categories."""
    if isinstance(spec, dict):
        if "choice" in spec or "choices" in spec:
            return "categorical"
        if "log_uniform" in spec or spec.get("log"):
            return "log"
    return "linear"


def sensitivities(protocol: Protocol, trials: list[Trial], finals: list[Final]) -> list[Sensitivity]:
    out = []
    chosen = {(f.study, f.key): f.trial for f in finals if f.kind == "tuned"}
    for key, space in protocol.space.items():
        mine = [t for t in trials if t.key == key]
        if not mine:
            continue
        for dim, spec in space.items():
            scale = dimension_scale(spec)
            cats = list(spec.get("choice", spec.get("choices", []))) if scale == "categorical" else []
            by_study, best = [], []
            for study in sorted({t.study for t in mine}):
                ts = [t for t in mine if t.study == study and dim in t.params]
                if not ts:
                    continue
                xs = [_x(t.params[dim], scale, cats) for t in ts]
                samples = [np.full(max(t.finals.size, 1), np.nan) if t.counts_worst else t.finals for t in ts]
                curve = sensitivity(xs, samples)
                order = np.argsort(np.asarray(xs, dtype=float), kind="stable")
                by_study.append((study, curve, [ts[i].number for i in order]))
                pick = chosen.get((study, key), _best_trial(ts, protocol.goal))
                k = next((i for i, t in enumerate(ts) if t.number == pick), None)
                if k is not None and not ts[k].counts_worst:
                    j = int(np.flatnonzero(order == k)[0])
                    best.append((study, float(curve.x[j]), float(curve.median[j])))
            out.append(Sensitivity(key, dim, scale, cats, by_study, best,
                                   sum(t.counts_worst for t in mine), len(mine)))
    return out


def _x(value: Any, scale: str, categories: list[Any]) -> float:
    if scale == "categorical":
        return float(categories.index(value)) if value in categories else float(len(categories))
    return float(value)


def _best_trial(trials: list[Trial], goal: str) -> int | None:
    scored = [t for t in trials if not t.counts_worst]
    if not scored:
        return None
    sign = 1.0 if goal == "min" else -1.0
    return min(scored, key=lambda t: sign * t.value).number


# -- finals: default vs tuned, and the comparison on fresh seeds --------------------------------
@dataclass
class Gap:
    """Tuned against default on the evaluation seeds; `gain` > 0: tuning improved the metric."""

    key: str
    study: int
    default: Interval  # median with bootstrap CI (finished seeds)
    tuned: Interval
    gain: Interval  # goal-oriented difference of medians (default - tuned for min)
    n_default: tuple[int, int]  # (finished, seeds)
    n_tuned: tuple[int, int]
    note: str = ""


def final_goal(view: StoreView, protocol: Protocol, cell: CellRuns) -> str:
    """The final metric's goal as its producer declared it (the protocol's goal if not stored)."""
    if protocol.final_metric in view.metric_names(cell.task_key):
        return view.goal(cell.task_key, protocol.final_metric)
    return protocol.goal


def gaps(view: StoreView, protocol: Protocol, finals: list[Final]) -> list[Gap]:
    out = []
    for d in (f for f in finals if f.kind == "default" and f.cell is not None):
        for t in (f for f in finals if f.kind == "tuned" and f.key == d.key and f.cell is not None):
            goal = final_goal(view, protocol, t.cell)
            a = view.outcomes(d.cell, protocol.final_metric, goal)
            b = view.outcomes(t.cell, protocol.final_metric, goal)
            out.append(_gap(d.key, t.study, a, b, goal))
    return out


def _gap(key: str, study: int, default: np.ndarray, tuned: np.ndarray, goal: str) -> Gap:
    sign = 1.0 if goal == "min" else -1.0
    fa, fb = default[np.isfinite(default)], tuned[np.isfinite(tuned)]
    with np.errstate(invalid="ignore"):
        est = sign * (np.median(default) - np.median(tuned)) if default.size and tuned.size else np.nan
    note = ""
    left_out = (default.size - fa.size) + (tuned.size - fb.size)
    if left_out:
        note = f"{left_out} diverged seed(s) count as worst in the estimate, left out of the interval"
    if fa.size >= 2 and fb.size >= 2 and not (np.all(fa == fa[0]) and np.all(fb == fb[0])):
        gain = bootstrap_interval(
            (fa, fb), lambda x, y, axis: sign * (np.median(x, axis=axis) - np.median(y, axis=axis)),
            float(est), method="percentile")
    else:
        gain = Interval(float(est), np.nan, np.nan, 0.95, "percentile", "too few finished seeds for an interval")
    return Gap(key, study, bootstrap_ci(default), bootstrap_ci(tuned), gain,
               (int(fa.size), int(default.size)), (int(fb.size), int(tuned.size)), note)


@dataclass
class FinalRow:
    final: Final
    label: str
    summary: CellSummary
    vs_best: dict[str, Any] | None  # PairwiseTable row (a = this final, b = the best); None for the best


@dataclass
class FinalsComparison:
    metric: str
    goal: str
    best: str
    rows: list[FinalRow]
    methods: list[str]


def compare_finals(view: StoreView, protocol: Protocol, finals: list[Final]) -> FinalsComparison | None:
    """Every landed final against the best (median, diverged = worst): Mann-Whitney U per pair,
    Holm across the family, effect sizes (A12, Cliff's delta, Cohen's d) from optiscope.stats."""
    landed = [f for f in finals if f.cell is not None]
    if not landed:
        return None
    goal = final_goal(view, protocol, landed[0].cell)
    outcomes = {f.cell.label: view.outcomes(f.cell, protocol.final_metric, goal) for f in landed}
    groups = {k: v for k, v in outcomes.items() if v.size}
    if not groups:
        return None
    best = str(best_setting(groups, goal))  # type: ignore[arg-type]
    raw = {(k, best): compare(v, groups[best], "mannwhitney", n_bootstrap=1000) for k, v in groups.items() if k != best}
    adjusted = holm(np.array([r.pvalue for r in raw.values()])) if raw else np.array([])
    table = PairwiseTable(list(groups), "mannwhitney", goal,
                          {k: r.with_adjusted(p) for (k, r), p in zip(raw.items(), adjusted, strict=True)})
    pairs = {row["a"]: row for row in table.rows()}
    rows = [FinalRow(f, f.cell.label, summarize(view.final_values(f.cell, protocol.final_metric)),
                     pairs.get(f.cell.label)) for f in landed]
    methods = sorted({str(r["pvalue_method"]) for r in pairs.values()} - {""})
    return FinalsComparison(protocol.final_metric, goal, best, rows, methods)


# -- studies and joint search ------------------------------------------------------------------
@dataclass
class StudySpread:
    """Which optimizer won each study (median final metric on the evaluation seeds), and by how
    much. An optimizer with no search space enters every study with its default final."""

    keys: list[str]
    untuned: list[str]
    rows: list[tuple[int, str, dict[str, float]]]  # (study, winner, key -> median)
    wins: dict[str, int]
    winner_values: np.ndarray  # the winner's median in each study


def study_spread(view: StoreView, protocol: Protocol, finals: list[Final]) -> StudySpread | None:
    tuned = [f for f in finals if f.kind == "tuned" and f.cell is not None]
    studies = sorted({f.study for f in tuned})
    if protocol.studies < 2 or not studies:
        return None
    tuned_keys = {f.key for f in tuned}
    fixed = [f for f in finals if f.kind == "default" and f.cell is not None and f.key not in tuned_keys
             and f.key not in protocol.space]
    keys = list(dict.fromkeys([f.key for f in tuned] + [f.key for f in fixed]))
    goal = final_goal(view, protocol, tuned[0].cell)
    rows = []
    for s in studies:
        out = {f.key: view.outcomes(f.cell, protocol.final_metric, goal) for f in tuned if f.study == s}
        out.update({f.key: view.outcomes(f.cell, protocol.final_metric, goal) for f in fixed})
        out = {k: v for k, v in out.items() if v.size}
        if out:
            winner = str(best_setting(out, goal))  # type: ignore[arg-type]
            rows.append((s, winner, {k: float(np.median(v)) for k, v in out.items()}))
    wins = {k: sum(r[1] == k for r in rows) for k in keys}
    return StudySpread(keys, [f.key for f in fixed], rows, wins, np.array([r[2][r[1]] for r in rows]))


@dataclass
class JointSearch:
    """Task settings searched with the optimizer: best architecture per optimizer, and the best
    validation value of each optimizer at each architecture (does the winner change?)."""

    dims: list[str]
    best: list[tuple[str, int, dict[str, Any], float]]  # (key, study, architecture, value)
    keys: list[str]
    table: list[tuple[dict[str, Any], dict[str, float], str | None]]  # (architecture, key -> best, winner)
    winner_changes: bool
    winners: list[str]
    n_common: int = 0  # architecture settings every optimizer tried (the only ones with a winner)


def joint_search(protocol: Protocol, trials: list[Trial], finals: list[Final]) -> JointSearch | None:
    dims = sorted({d for space in protocol.space.values() for d in space if d.startswith(TASK_PREFIX)})
    if not dims:
        return None
    keys = list(protocol.space)
    chosen = {(f.study, f.key): f for f in finals if f.kind == "tuned"}
    sign = 1.0 if protocol.goal == "min" else -1.0
    best = []
    for key in keys:
        for study in sorted({t.study for t in trials if t.key == key}):
            ts = [t for t in trials if t.key == key and t.study == study]
            f = chosen.get((study, key))
            pick = next((t for t in ts if f is not None and t.number == f.trial), None)
            if pick is None and (n := _best_trial(ts, protocol.goal)) is not None:
                pick = next(t for t in ts if t.number == n)
            if pick is not None:
                best.append((key, study, {d: pick.params.get(d) for d in dims}, pick.value))
    archs: dict[str, dict[str, Any]] = {}
    cells: dict[tuple[str, str], float] = {}
    for t in trials:
        arch = {d: t.params.get(d) for d in dims}
        a = json.dumps(arch, sort_keys=True, default=str)
        archs.setdefault(a, arch)
        v = protocol.worst if t.counts_worst else t.value
        if (a, t.key) not in cells or sign * v < sign * cells[(a, t.key)]:
            cells[(a, t.key)] = v
    table = []
    for a in sorted(archs, key=lambda a: [str(archs[a][d]) for d in dims]):
        row = {k: cells[(a, k)] for k in keys if (a, k) in cells}
        finite = {k: v for k, v in row.items() if np.isfinite(v)}
        winner = min(finite, key=lambda k: sign * finite[k]) if len(row) == len(keys) and finite else None
        table.append((archs[a], row, winner))
    winners = list(dict.fromkeys(w for _, _, w in table if w is not None))
    n_common = sum(w is not None for _, _, w in table)
    return JointSearch(dims, best, keys, table, len(winners) > 1, winners, n_common)


# -- everything --------------------------------------------------------------------------------
@dataclass
class TaskTuning:
    """The protocol's results on one task setting ("" when the files name no task)."""

    task: str
    trials: list[Trial]
    finals: list[Final]
    sensitivity: list[Sensitivity]
    gaps: list[Gap]
    comparison: FinalsComparison | None
    spread: StudySpread | None
    joint: JointSearch | None


def analyse_task(
    view: StoreView, protocol: Protocol, task: str, trials: list[Trial], finals: list[Final]
) -> TaskTuning:
    return TaskTuning(
        task, trials, finals, sensitivities(protocol, trials, finals), gaps(view, protocol, finals),
        compare_finals(view, protocol, finals), study_spread(view, protocol, finals),
        joint_search(protocol, trials, finals),
    )


@dataclass
class TuningAnalysis:
    protocol: Protocol
    trials: list[Trial]
    finals: list[Final]
    tasks: list[TaskTuning]
    stored_overlap: set[int]  # seeds found both in trial cells and in final cells (should be empty)
    missing_trials: int  # trials listed whose cell is not in the store


def tuning_dir(view: StoreView) -> Path:
    return view.store.root / "tuning"


def analyse_tuning(view: StoreView) -> TuningAnalysis | None:
    """None when the store has no tuning protocol (STORE/tuning/protocol.json)."""
    root = tuning_dir(view)
    if not (root / "protocol.json").exists():
        return None
    protocol = Protocol.read(root / "protocol.json")
    trials = read_trials(view, protocol, root / "trials.parquet")
    finals = read_finals(view, root / "final.parquet")
    trial_ids = {t.cell_id for t in trials}
    trial_seeds = {s for c in view.trial_cells if c.cell_id in trial_ids for s in c.seeds}
    final_seeds = {s for f in finals if f.cell is not None for s in f.cell.seeds}
    keys = list(dict.fromkeys(protocol.tasks + [t.task for t in trials] + [f.task for f in finals]))
    per_task = [
        analyse_task(view, protocol, k, [t for t in trials if t.task == k], [f for f in finals if f.task == k])
        for k in keys if any(t.task == k for t in trials) or any(f.task == k for f in finals)
    ]
    return TuningAnalysis(protocol, trials, finals, per_task, trial_seeds & final_seeds,
                          sum(t.finals.size == 0 for t in trials))
