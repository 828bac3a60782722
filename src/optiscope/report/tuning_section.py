"""The report's tuning section: what the tuning protocol tried, chose and how the choice held up.

Present only when the store holds STORE/tuning/protocol.json. The numbers come from
`tuning_analysis` (the store alone); this module draws them (matplotlib, inline SVG) and lays
them out with templates/tuning.html. Diverged trials are drawn at the worst edge of each plot and
counted, never dropped.
"""

from __future__ import annotations

import numpy as np
from markupsafe import Markup

from optiscope.report import interactive, plots
from optiscope.report.data import StoreView
from optiscope.report.html import ENV, EXTRA_SECTIONS, Section, _guard, figure, grid, note
from optiscope.report.tables import seed_ranges
from optiscope.report.tuning_analysis import (
    Sensitivity,
    StudySpread,
    TaskTuning,
    TuningAnalysis,
    analyse_tuning,
)
from optiscope.report.tuning_files import Protocol
from optiscope.stats import bootstrap_ci

plt = plots.plt
WORST = "crimson"


def _macro(name: str, *args: object) -> Markup:
    """Call one macro of templates/tuning.html."""
    return Markup(getattr(ENV.get_template("tuning.html").module, name)(*args))


# -- plots -----------------------------------------------------------------------------------
def sensitivity_svg(s: Sensitivity, metric: str, goal: str, seeds_per_trial: int) -> str:
    """Each trial's median final `metric` (IQR bar over its seeds) against dimension `s.dim`;
    the selected trial starred, diverged/failed trials as crosses at the worst edge."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    rng = np.random.default_rng(0)
    worst_x: list[float] = []
    finite_y: list[np.ndarray] = []
    many = len(s.by_study) > 1
    drawn: dict[tuple[int, float, float], float] = {}  # (study, x, median) -> x as drawn (jittered)
    for i, (study, c, _) in enumerate(s.by_study):
        ok = c.n_finite > 0
        x = c.x + (rng.uniform(-0.15, 0.15, c.x.size) if s.scale == "categorical" else 0.0)
        drawn.update({(study, float(a), float(m)): float(b) for a, m, b in zip(c.x, c.median, x, strict=True)})
        worst_x += list(x[(~ok) & (c.n > 0)])
        if ok.any():
            y = c.median[ok]
            finite_y.append(np.concatenate([y, c.low[ok], c.high[ok]]))
            ax.errorbar(x[ok], y, yerr=[y - c.low[ok], c.high[ok] - y], fmt="o", ms=4, capsize=2, lw=1,
                        color=plots.color(i), alpha=0.85, label=f"study {study}" if many else "trials")
    for study, x, y in s.best:
        ax.plot([drawn.get((study, x, y), x)], [y], "*", ms=14, color="gold", mec="black", zorder=5,
                label="selected" if study == s.best[0][0] else None)
    ys = np.concatenate(finite_y) if finite_y else np.array([])
    ys = ys[np.isfinite(ys)]
    if ys.size and (ys > 0).all() and ys.max() / ys.min() > 10:
        ax.set_yscale("log")
    if worst_x:  # top edge for a metric to minimise (worse is up), bottom for one to maximise
        edge = 0.97 if goal == "min" else 0.03
        ax.plot(worst_x, [edge] * len(worst_x), "x", ms=7, mew=1.6, color=WORST, clip_on=False,
                transform=ax.get_xaxis_transform(), label=f"diverged or failed: worst ({len(worst_x)})")
    if s.scale == "log":
        ax.set_xscale("log")
    if s.scale == "categorical":
        ax.set_xticks(range(len(s.categories)), [str(v) for v in s.categories])
        ax.set_xlim(-0.6, len(s.categories) - 0.4)
    scale = {"log": ", log axis", "categorical": " (choice)", "linear": ""}[s.scale]
    return _finish(
        fig, ax, f"{s.key}: final {metric} vs {s.dim}", f"{s.dim}{scale}",
        f"final {metric}: median, IQR over {seeds_per_trial} seeds",
    )


def sensitivity_spec(s: Sensitivity, t: TaskTuning, p: Protocol) -> dict:
    """The sensitivity plot as a Vega-Lite spec: hover a trial for its number, every parameter
    it ran with, and its score; the selected trial starred; diverged trials at the worst edge."""
    by_number = {(tr.study, tr.number): tr for tr in t.trials if tr.key == s.key}
    dims = sorted({k for tr in by_number.values() for k in tr.params})
    cols: dict[str, list] = {k: [] for k in ("series", "x", "median", "low", "high", "finished", "trial",
                                             "selected", "worst", *dims)}
    best = {(study, float(x)) for study, x, _ in s.best}
    many = len(s.by_study) > 1
    for study, c, numbers in s.by_study:
        for j, number in enumerate(numbers):
            tr = by_number.get((study, number))
            ok = c.n_finite[j] > 0
            cols["series"].append(f"study {study}" if many else "trials")
            cols["x"].append(float(c.x[j]))
            cols["median"].append(float(c.median[j]) if ok else None)
            cols["low"].append(float(c.low[j]) if ok else None)
            cols["high"].append(float(c.high[j]) if ok else None)
            cols["finished"].append(f"{int(c.n_finite[j])} / {int(c.n[j])} seeds")
            cols["trial"].append(f"study {study}, trial {number}")
            cols["selected"].append((study, float(c.x[j])) in best)
            cols["worst"].append(not ok)
            for d in dims:
                v = tr.params.get(d) if tr is not None else None
                cols[d].append(v if isinstance(v, (int, float)) and not isinstance(v, bool) else
                               (None if v is None else str(v)))
    spec = interactive.tuning_sensitivity(
        f"{s.key}: {p.selected_on} vs {s.dim}", s.dim if s.scale != "categorical" else f"{s.dim} (choice index)",
        f"{p.selected_on}: median, IQR over {p.seeds_per_trial} seeds", cols, dims,
        log_x=s.scale == "log", goal=p.goal)
    return spec


def studies_svg(spread: StudySpread, metric: str) -> str:
    """Each optimizer's tuned median final metric per study; the study's winner ringed."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for i, key in enumerate(spread.keys):
        pts = [(s, med[key]) for s, _, med in spread.rows if key in med]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, "o-", color=plots.color(i), lw=1.2, ms=5, label=key)
    won = [(s, med[w]) for s, w, med in spread.rows]
    if won:
        xs, ys = zip(*won, strict=True)
        ax.plot(xs, ys, "o", ms=12, mfc="none", mec="black", mew=1.4, label="study winner")
    ax.set_xticks([s for s, _, _ in spread.rows])
    return _finish(fig, ax, f"finals over studies: median final {metric}", "study", f"median final {metric}")


def _finish(fig: plt.Figure, ax: plt.Axes, title: str, xlabel: str, ylabel: str) -> str:
    """Label and grid the axes, with the legend below them (points fill the whole plot)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.margins(y=0.08)
    ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    ax.set_title(title, fontsize=10)
    return plots.to_svg(fig)


# -- text --------------------------------------------------------------------------------------
def seeds_sentence(p: Protocol, overlap: set[int]) -> str:
    """States that tuning and evaluation seeds are disjoint (or, loudly, that they are not)."""
    tuning = "; ".join(f"study {s}: {seed_ranges(v)}" for s, v in sorted(p.tuning_seeds.items()))
    evaluation = seed_ranges(p.evaluation_seeds)
    if p.disjoint and not overlap:
        head = "Tuning seeds and evaluation seeds are disjoint"
    else:
        both = sorted((p.all_tuning_seeds & set(p.evaluation_seeds)) | overlap)
        head = f"WARNING: tuning and evaluation seeds overlap ({seed_ranges(both)})"
    return (f"{head}: trials ran on tuning seeds ({tuning}); the finals (tuned and default) on "
            f"evaluation seeds {evaluation}, checked against the seeds stored for the trial and "
            f"final cells.")


def split_sentence(p: Protocol) -> str:
    """Which data the trials were selected on: the validation split, or none (per task if mixed)."""
    if p.split == "validation":
        return (f"Trials were selected on {p.selection} ({p.goal}imised) from the validation split (a fixed "
                f"held-out part of the training data); the finals report {p.final_metric} on the task's "
                f"own data (its test split where it has one).")
    if p.split == "none":
        return (f"Trials were selected on {p.selection} ({p.goal}imised) with no validation split (the task has "
                f"none): selection and report share the data but never the seeds.")
    per_task = ", ".join(f"{t}: {'the validation split' if s == 'validation' else 'none (no split)'}"
                         for t, s in p.task_splits.items())
    return (f"Trials were selected on {p.selection} ({p.goal}imised); the split selected on, per task: "
            f"{per_task}. Where there is none, selection and report share the data but never the seeds.")


# -- the section ---------------------------------------------------------------------------------
def tuning_section(view: StoreView) -> Section | None:
    """None unless the store holds a tuning protocol."""
    a = analyse_tuning(view)
    if a is None:
        return None
    p = a.protocol
    parts = [_macro("intro", p, seeds_sentence(p, a.stored_overlap), split_sentence(p), a)]
    several = len(a.tasks) > 1
    for t in a.tasks:
        if several:
            parts.append(Markup("<h3>Tuned on {}</h3>").format(t.task))
        parts.append(_task_html(view, a, t, "h4" if several else "h3"))
    if not a.tasks:
        parts.append(note("No trial has been recorded yet."))
    parts.append(_macro("trials", a.trials, several))
    return Section("Tuning protocol", "tuning", Markup("").join(parts))


def _task_html(view: StoreView, a: TuningAnalysis, t: TaskTuning, h: str) -> Markup:
    def head(text: str) -> Markup:
        return Markup(f"<{h}>{{}}</{h}>").format(text)

    p = a.protocol
    parts = []
    for key in p.space:
        if any(tr.key == key for tr in t.trials):
            parts.append(head(f"{key}: sensitivity")
                         + _guard(f"sensitivity of {key}", lambda key=key: _sensitivity_html(p, t, key)))
    parts.append(head("Default versus tuned") + _guard("default vs tuned", lambda: _gaps_html(view, p, t)))
    parts.append(head("Tuned comparison on fresh seeds") + _guard("tuned comparison", lambda: _comparison_html(p, t)))
    if t.spread is not None:
        parts.append(head("Spread of the winner over studies") + _guard("studies", lambda: _spread_html(p, t)))
    if t.joint is not None:
        parts.append(head("Joint search: architecture and optimizer")
                     + _guard("joint search", lambda: _macro("joint", t.joint, p)))
    return Markup("").join(parts)


def _sensitivity_html(p: Protocol, t: TaskTuning, key: str) -> Markup:
    panels = [s for s in t.sensitivity if s.key == key]
    if not panels:
        return note(f"No trial of {key} is in the store yet.")
    figs = [interactive.vega_figure(sensitivity_spec(s, t, p),
                                    lambda s=s: sensitivity_svg(s, p.metric, p.goal, p.seeds_per_trial),
                                    kind="sensitivity")
            for s in panels]
    n_worst, n = panels[0].n_worst, panels[0].n_trials
    text = (f"{n} trials; each point is one trial (other dimensions vary between trials). "
            f"{n_worst} diverged or failed trial(s) scored worst and drawn as crosses at the worst edge.")
    return note(text) + grid(figs)


def _gaps_html(view: StoreView, p: Protocol, t: TaskTuning) -> Markup:
    if not any(f.kind == "default" for f in t.finals):
        return note("No default run (tuning.default = false): no gap to show.")
    if not t.gaps:
        return note("No optimizer has both a default and a tuned final in the store yet.")
    finals = [(f.cell.label, view.final_values(f.cell, p.final_metric)) for f in t.finals if f.cell is not None]
    svg = Markup(plots.distributions(p.final_metric, finals))
    return _macro("gaps", t.gaps, p, figure(svg))


def _comparison_html(p: Protocol, t: TaskTuning) -> Markup:
    if t.comparison is None:
        return note("No final cell is in the store yet.")
    return _macro("comparison", t.comparison, len(p.evaluation_seeds))


def _spread_html(p: Protocol, t: TaskTuning) -> Markup:
    sp = t.spread
    summary = bootstrap_ci(sp.winner_values) if sp.winner_values.size else None
    svg = figure(Markup(studies_svg(sp, p.final_metric))) if sp.rows else Markup("")
    return _macro("spread", sp, summary, svg)


EXTRA_SECTIONS.append(tuning_section)
