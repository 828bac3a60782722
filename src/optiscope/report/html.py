"""The HTML report: one self-contained file built from a store, in sections.

Each section is a function of the store view returning HTML (tables and inline SVG plots), so
later work (statistics, probes) adds a section without touching the others.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from optiscope.report import plots
from optiscope.report.data import BOOKKEEPING, StoreView
from optiscope.stats import bootstrap_ci
from optiscope.store import RunStore
from optiscope.tasks.registry import task_class


@dataclass
class Section:
    title: str
    anchor: str
    html: str


SectionFn = Callable[[StoreView], Section | None]


def esc(x: object) -> str:
    return html.escape(str(x))


def metric_goal(task: str, name: str) -> str:
    """'min' or 'max' for a task's metric (losses and gaps are minimised by default)."""
    try:
        info = task_class(task).metrics
    except Exception:
        return "min"
    for m in info:
        if m.name == name:
            return m.goal
    return "max" if name.endswith("acc") else "min"


def fmt(x: float) -> str:
    if not np.isfinite(x):
        return "–"
    return f"{x:.4g}"


# -- sections ------------------------------------------------------------------------------
def setup_section(view: StoreView) -> Section:
    rows = []
    for c in view.cells:
        rows.append(
            f"<tr><td>{esc(c.task_key)}</td><td>{esc(c.label)}</td><td>{esc(c.optimizer)}</td>"
            f"<td><code>{esc(json.dumps(c.hyperparameters))}</code></td><td class=num>{len(c.seeds)}</td>"
            f"<td>{esc(c.mode)}</td><td class=num>{c.grad_evals}</td><td class=num>{c.wall_time_s:.1f}</td></tr>"
        )
    versions = view.store.fetch("SELECT DISTINCT versions, device FROM runs")
    vers = "".join(
        f"<li><code>{esc(v)}</code> on <code>{esc(d)}</code></li>"
        for v, d in zip(versions["versions"], versions["device"], strict=True)
    )
    config = view.store.config_text()
    body = (
        "<table><tr><th>task</th><th>cell</th><th>optimizer</th><th>hyperparameters</th>"
        "<th>seeds</th><th>mode</th><th>grad evals</th><th>wall s</th></tr>"
        + "".join(rows) + "</table>"
        + f"<p>Software and hardware:</p><ul>{vers}</ul>"
        + (f"<details><summary>experiment file</summary><pre>{esc(config)}</pre></details>" if config else "")
    )
    return Section("Setup", "setup", body)


def status_section(view: StoreView) -> Section:
    rows = []
    for c in view.cells:
        cls = " class='bad'" if c.n_diverged or c.n_failed else ""
        steps = sorted(d for d in c.diverged_step if d is not None)
        rows.append(
            f"<tr{cls}><td>{esc(c.task_key)}</td><td>{esc(c.label)}</td><td class=num>{c.n_ok}</td>"
            f"<td class=num>{c.n_diverged}</td><td class=num>{c.n_failed}</td>"
            f"<td>{esc(', '.join(map(str, steps)) or '')}</td>"
            f"<td>{esc((c.error or '').splitlines()[0] if c.error else '')}</td></tr>"
        )
    body = (
        "<p>Every seed is counted: a diverged member (non-finite loss) is frozen at the step "
        "shown and excluded from medians, never silently dropped.</p>"
        "<table><tr><th>task</th><th>cell</th><th>ok</th><th>diverged</th><th>failed</th>"
        "<th>divergence steps</th><th>error</th></tr>" + "".join(rows) + "</table>"
    )
    return Section("Success and divergence", "status", body)


def task_sections(view: StoreView) -> list[Section]:
    out = []
    for k, task_key in enumerate(view.tasks()):
        cells = view.cells_of(task_key)
        names = [n for n in view.metric_names(task_key) if n not in BOOKKEEPING]
        curve_svgs, dist_svgs, table_rows = [], [], []
        for name in names:
            series = [(c.label, *view.curves(c, name)) for c in cells]
            curve_svgs.append(
                plots.learning_curves(name, series, log_y=("loss" in name or "gap" in name))
            )
            if name == "batch_loss":
                continue
            finals = [(c.label, view.final_values(c, name)) for c in cells]
            dist_svgs.append(plots.distributions(name, finals))
            goal = metric_goal(cells[0].task, name)
            for c, (_, vals) in zip(cells, finals, strict=True):
                ci = bootstrap_ci(vals, "median")
                note = f" ({esc(ci.note)})" if ci.note else ""
                table_rows.append(
                    f"<tr><td>{esc(name)} ({goal})</td><td>{esc(c.label)}</td>"
                    f"<td class=num>{fmt(ci.estimate)}</td>"
                    f"<td class=num>[{fmt(ci.low)}, {fmt(ci.high)}]{note}</td>"
                    f"<td class=num>{int(np.isfinite(vals).sum())} / {len(vals)}</td></tr>"
                )
        body = (
            "<h3>Final metrics: median with 95% bootstrap CI</h3>"
            "<table><tr><th>metric</th><th>cell</th><th>median</th><th>95% CI (BCa)</th>"
            "<th>seeds used</th></tr>" + "".join(table_rows) + "</table>"
            "<h3>Distributions over seeds</h3><div class='grid'>"
            + "".join(f"<figure class='plot'>{s}</figure>" for s in dist_svgs)
            + "</div><h3>Learning curves</h3><div class='grid'>"
            + "".join(f"<figure class='plot'>{s}</figure>" for s in curve_svgs)
            + "</div>"
        )
        out.append(Section(f"Task: {task_key}", f"task-{k}", body))
    return out


#: Extra sections other modules contribute (statistics, probes). Each is called with the view.
EXTRA_SECTIONS: list[SectionFn] = []


def build_report(store: RunStore, out: str | Path, title: str | None = None) -> Path:
    """Write the HTML report for `store` to `out` and return its path."""
    view = StoreView.load(store)
    sections: list[Section] = []
    if view.cells:
        sections.append(setup_section(view))
        sections.extend(task_sections(view))
        for fn in EXTRA_SECTIONS:
            s = fn(view)
            if s is not None:
                sections.append(s)
        sections.append(status_section(view))
    else:
        sections.append(Section("Empty store", "empty", "<p>No completed cells yet.</p>"))
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("optiscope.report", "templates"),
        autoescape=False,  # sections are HTML built here; user text is escaped with esc()
    )
    page = env.get_template("report.html").render(
        title=esc(title or (view.cells[0].label and _experiment_name(store)) or store.root.name),
        generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        store_path=esc(store.root),
        n_cells=len(view.cells),
        n_runs=sum(len(c.seeds) for c in view.cells),
        sections=sections,
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out


def _experiment_name(store: RunStore) -> str:
    rows = store.fetch("SELECT DISTINCT experiment FROM runs")["experiment"]
    return ", ".join(str(r) for r in rows)
