"""The HTML report: one self-contained file built from a store, in sections.

Rendering only: the numbers come from the analysis layer (`tables`, `analysis`, `runtime`,
`selection`, `trajectories`, all reading the store alone), the plots from `plots`, and the
markup from Jinja templates with autoescaping on (`templates/parts.html` holds the building
blocks). Other modules add a section through `EXTRA_SECTIONS` (the probe panels do). The summary
(`summary.py`) comes first; the interactive figures are Vega-Lite specs (`interactive.py`), each
with its matplotlib figure as the static fallback (`build_report(static=True)`).
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from markupsafe import Markup

from optiscope.formatting import format_number
from optiscope.report import plots, tables
from optiscope.report.budget import budget_line
from optiscope.report.data import StoreView, configured_seeds
from optiscope.report.metrics import LEGACY_NOTE
from optiscope.report.runtime import profile_analysis, runtime_analysis
from optiscope.report.selection import generalisation, tuning
from optiscope.report.trajectories import has_iterates, stored_trajectories
from optiscope.store import RunStore

__all__ = ["EXTRA_SECTIONS", "LEADING_SECTIONS", "Section", "SectionFn", "build_report", "figure", "fmt", "note", "render"]


@dataclass
class Section:
    """A titled part of the report; `html` is trusted markup (made by a renderer)."""

    title: str
    anchor: str
    html: str


SectionFn = Callable[[StoreView], Section | None]


def fmt(x: Any, digits: int = 4) -> str:
    """The report's one number format (optiscope.formatting): 4 significant digits."""
    return format_number(x, digits)


def _interval2(p: Any) -> str:
    return f"{p.estimate:.2f} [{p.low:.2f}, {p.high:.2f}]"


ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("optiscope.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
def settings_text(settings: Any) -> str:
    """A settings dict as "k=v, ..." with numbers to 4 significant digits (full precision stays
    in the store)."""
    if not isinstance(settings, dict):
        return fmt(settings)
    return ", ".join(f"{k}={fmt(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v}"
                     for k, v in settings.items()) or "defaults"


ENV.filters.update(
    num=fmt,
    settings=settings_text,
    interval2=_interval2,
    seed_ranges=tables.seed_ranges,
    finite_count=lambda a: int(np.isfinite(a).sum()),
    ones_count=lambda a: int((np.asarray(a) == 1).sum()),
)


def render(macro: str, *args: Any) -> Markup:
    """Call one macro of templates/parts.html."""
    return Markup(getattr(ENV.get_template("parts.html").module, macro)(*args))


def figure(svg: str, caption: str = "") -> Markup:
    return render("figure", Markup(svg), caption)


def note(text: str) -> Markup:
    return render("note", text)


def grid(figures: list[Markup]) -> Markup:
    return render("grid", figures)


def _guard(title: str, fn: Callable[[], Markup | str]) -> Markup:
    """Run one sub-section; a failure is shown in the report instead of losing the report."""
    try:
        return Markup(fn())
    except Exception as exc:  # the report must always be written
        return render("failed", title, f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=3))


# -- setup and status ------------------------------------------------------------------------
def setup_section(view: StoreView) -> Section:
    return Section("Setup", "setup", render("setup", tables.setup(view), LEGACY_NOTE if view.legacy else ""))


def status_section(view: StoreView) -> Section:
    return Section("Success and divergence", "status", render("status", tables.status_rows(view)))


# -- per task --------------------------------------------------------------------------------
def distributions_html(view: StoreView, task_key: str, names: list[str]) -> Markup:
    from optiscope.report import interactive

    figs, constant = [], []
    seeds = [c.seeds for c in view.cells_of(task_key)]
    for fv in tables.final_values(view, task_key, names):
        every = np.concatenate([v for _, v in fv.finals]) if fv.finals else np.array([])
        if plots.constant(every):
            constant.append((fv.metric, every[np.isfinite(every)][0]))
            continue
        log_y = plots.wants_log(fv.metric, every)
        figs.append(interactive.vega_figure(
            interactive.distributions(fv.metric, fv.finals, log_y=log_y, seeds=seeds),
            lambda fv=fv, log_y=log_y: plots.distributions(fv.metric, fv.finals, log_y=log_y),
            kind="distribution"))
        figs.append(figure(plots.final_ecdf(fv.metric, fv.finals, fv.goal, log_x=log_y)))
    out = grid(figs)
    if constant:
        out += note("Not plotted, the same value for every cell and seed: "
                    + ", ".join(f"{m} = {fmt(v)}" for m, v in constant) + ".")
    return out


def significance_html(view: StoreView, task_key: str, metric: str) -> Markup:
    sig = tables.significance(view, task_key, metric)
    labels = sig.comparison.table.labels
    if len(labels) < 2:
        return note("One cell with outcomes: nothing to compare.")
    from optiscope.report import interactive

    eff, padj = sig.comparison.table.matrix()
    fig = interactive.vega_figure(interactive.significance_matrix(metric, labels, eff, padj),
                                  lambda: plots.significance_matrix(metric, labels, eff, padj), kind="matrix")
    return render("significance", sig, fig)


def curves_html(view: StoreView, task_key: str) -> Markup:
    from optiscope.report import interactive

    figs, constant = [], []
    x_axes = tables.x_axes(view, task_key)
    for c in tables.learning_curves(view, task_key):
        every = np.concatenate([v.ravel() for _, _, v in c.series]) if c.series else np.array([])
        if plots.constant(every):
            constant.append((c.metric, every[np.isfinite(every)][0]))
            continue
        log_y = c.log_y or plots.wants_log(c.metric, every)
        figs.append(interactive.vega_figure(
            interactive.learning_curves(c.metric, c.series, log_y=log_y, x_axes=x_axes,
                                        seed_ids=[cell.seeds for cell in view.cells_of(task_key)]),
            lambda c=c, log_y=log_y: plots.learning_curves(c.metric, c.series, log_y=log_y), kind="curves"))
    out = grid(figs)
    if constant:
        out += note("Not plotted, constant over training for every cell and seed: "
                    + ", ".join(f"{m} = {fmt(v)}" for m, v in constant) + ".")
    return out


def runtime_html(view: StoreView, task_key: str) -> Markup:
    ra = runtime_analysis(view, task_key)
    if ra.metric is None:
        return note("No metric to measure runtimes on.")
    if ra.targets.size == 0:
        return note(f"No finite {ra.metric} values: no targets can be set.")
    figs = []
    for curves in ra.curves:
        if curves.error is not None:
            figs.append(note(f"{curves.budget_label}: {curves.error}"))
            continue
        figs.append(figure(plots.runtime_ecdfs(
            f"runtime to {len(ra.targets)} {ra.metric} targets: ECDF over seeds and targets",
            curves.series, curves.budget_label)))
    return render("runtime", ra, figs)


def generalisation_html(view: StoreView, task_key: str) -> Markup:
    g = generalisation(view, task_key)
    if g is None:
        return note("Not applicable: this task logs no pair of a training loss and a held-out "
                    "metric, so there is nothing to correlate.")
    p = g.pooled
    svg = plots.correlation_scatter(
        f"final {g.train} vs {g.held}: Spearman rho = {fmt(p.statistic)} "
        f"[{fmt(p.interval.low)}, {fmt(p.interval.high)}]",
        g.scatter, f"final {g.train}", f"final {g.held}",
    )
    return render("generalisation", g, Markup(svg))


def tuning_html(view: StoreView, task_key: str) -> Markup:
    t = tuning(view, task_key)
    if t is None:
        return note("No outcome metric.")
    if not t.tuned:
        return note("Every optimizer ran one setting on this task: nothing was tuned.")
    svg = ""
    if t.sensitivity:
        svg = Markup(plots.sensitivity_curves(
            f"sensitivity: final {t.metric} vs learning rate (median, IQR)", t.sensitivity, "lr",
            f"final {t.metric}"))
    return render("tuning", t, svg)


def trajectories_html(view: StoreView, task_key: str, n_seeds: int = 4) -> Markup:
    figs = []
    for c in view.cells_of(task_key):
        t = stored_trajectories(view, c, n_seeds)
        if t is None:
            figs.append(note(f"{c.label}: no iterates recorded (the cell failed)."))
            continue
        if t.surface is None:
            figs.append(note(f"{c.label}: no contour surface stored; iterates only."))
            continue
        figs.append(figure(plots.contour_trajectories(
            c.label, t.surface.grid, t.points, t.seeds, t.surface.minimizers)))
    intro = note(
        "Iterates of the first seeds of each cell, as recorded during training (every step, or "
        "at most 500 points per run), drawn in each instance's own coordinates z = R (x - shift), "
        "where every seed sees the same function (o: start, x: end, star: minimiser)."
    )
    return Markup(intro + grid(figs))


def basins_html(view: StoreView, task_key: str) -> Markup:
    """Where terminal iterates ended, for each categorical metric of the task."""
    out = Markup()
    for name in view.categorical_metrics(task_key):
        t = tables.basin_table(view, task_key, name)
        if t is not None:
            out += render("basins", t)
    return out


def task_section(view: StoreView, k: int, task_key: str) -> Section:
    title = f"Task: {view.task_name(task_key)}"
    if all(c.n_failed == len(c.status) for c in view.cells_of(task_key)):
        return Section(title, f"task-{k}", note(
            "Every cell of this task failed, so it has no results: the errors are in the banner at "
            "the top and in the status table."))
    names = view.outcome_metrics(task_key)
    head = view.headline_metric(task_key)
    parts = [
        _guard("budget", lambda: note(budget_line(view, task_key))),
        Markup("<h3>Final metrics over seeds</h3>")
        + _guard("summary", lambda: render("summary", tables.summary_rows(view, task_key, names))),
        Markup("<h3>Distributions over seeds</h3>")
        + _guard("distributions", lambda: distributions_html(view, task_key, names)),
    ]
    if head:
        parts.append(Markup("<h3>Significance: final {}</h3>").format(head)
                     + _guard("significance", lambda: significance_html(view, task_key, head)))
    parts.append(Markup("<h3>Learning curves</h3>") + _guard("learning curves", lambda: curves_html(view, task_key)))
    parts.append(Markup("<h3>Runtime to target</h3>") + _guard("runtime", lambda: runtime_html(view, task_key)))
    parts.append(Markup("<h3>Optimisation versus generalisation</h3>")
                 + _guard("generalisation", lambda: generalisation_html(view, task_key)))
    parts.append(Markup("<h3>Tuning</h3>") + _guard("tuning", lambda: tuning_html(view, task_key)))
    if has_iterates(view, task_key):
        parts.append(Markup("<h3>Trajectories on the contours</h3>")
                     + _guard("trajectories", lambda: trajectories_html(view, task_key)))
    parts.append(_guard("basins", lambda: basins_html(view, task_key)))
    return Section(title, f"task-{k}", Markup("").join(parts))


def profile_section(view: StoreView) -> Section:
    def body() -> Markup:
        pa = profile_analysis(view)
        if pa.profile is None:
            return note("No task has a finite target: no profile.")
        names = {t: view.task_name(t) for t in view.tasks()}
        return render("profile", pa, Markup(plots.performance_profile(pa.profile)), names)

    return Section("Performance profile", "profile", _guard("performance profile", body))


#: The sections an experiment exists for (tuning, probes, continual learning), contributed by
#: other modules; drawn right after the summary and the verdicts, before the per-task detail.
EXTRA_SECTIONS: list[SectionFn] = []
#: Sections that follow the summary first of all (the hypotheses' verdicts).
LEADING_SECTIONS: list[SectionFn] = []


def summary_section(view: StoreView, later: list[Section]) -> Section:
    """The answer first: rankings, significant differences, the failed/diverged banner, links."""
    from optiscope.report import summary

    def body() -> Markup:
        banner = render("trouble_banner", summary.troubles(view), summary.every_cell_failed(view),
                        str(view.store.root))
        tasks = [summary.task_summary(view, k, t) for k, t in enumerate(view.tasks())]
        return render("summary_section", banner, tasks, [(s.title, s.anchor) for s in later],
                      view.extras.get("verdicts"))

    return Section("Summary", "summary", _guard("summary", body))


def build_report(store: RunStore, out: str | Path, title: str | None = None, *, static: bool = False) -> Path:
    """Write the HTML report for `store` to `out` and return its path.

    Order: the summary (the answer), the hypotheses' verdicts, the section the experiment exists
    for (tuning, probes, continual learning), then per-task detail, the performance profile
    (two tasks or more), the status of every cell, and the setup with the experiment file last.
    `static`: matplotlib figures only (vector SVG, no JavaScript), for papers and archives.
    """
    from optiscope.report import interactive

    view = StoreView.load(store, seeds=configured_seeds(store.config_text(), store))
    sections: list[Section] = []
    token = interactive.STATIC.set(static)
    interactive.reset()
    try:
        if view.cells:
            later: list[Section] = []
            later.extend(s for fn in LEADING_SECTIONS if (s := fn(view)) is not None)
            later.extend(s for fn in EXTRA_SECTIONS if (s := fn(view)) is not None)
            later.extend(task_section(view, k, t) for k, t in enumerate(view.tasks()))
            if len(view.tasks()) > 1:
                later.append(profile_section(view))
            later.append(status_section(view))
            later.append(setup_section(view))
            sections = [summary_section(view, later), *later]
        else:
            sections.append(Section("Empty store", "empty", "<p>No completed cells yet.</p>"))
        sections = [Section(s.title, s.anchor, Markup(s.html)) for s in sections]  # trusted markup
        from optiscope.report.store_notes import store_notes  # here: it imports this module
        page = ENV.get_template("report.html").render(
            title=title or (view.cells and _experiment_name(store)) or store.root.name,
            generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            store_path=str(store.root),
            n_cells=len(view.cells),
            n_runs=sum(len(c.seeds) for c in view.cells),
            store_notes=store_notes(view),
            sections=sections,
            script=Markup(interactive.page_script()) if interactive.used() else "",
        )
    finally:
        interactive.STATIC.reset(token)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out


def _experiment_name(store: RunStore) -> str:
    rows = store.fetch("SELECT DISTINCT experiment FROM runs")["experiment"]
    return ", ".join(str(r) for r in rows)
