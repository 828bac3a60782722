"""The HTML report: one self-contained file built from a store, in sections.

Each section is a function of the store view returning HTML (tables and inline SVG plots), so
later work (probes) adds a section through `EXTRA_SECTIONS` without touching the others. The
statistics come from `optiscope.stats` via `optiscope.report.analysis`, the same code the
`optiscope compare` command prints.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from optiscope.report import plots
from optiscope.report.analysis import (
    BUDGETS,
    compare_task,
    metric_goal,
    profile_times,
    runtime_metric,
    task_runtimes,
    task_targets,
)
from optiscope.report.data import CellRuns, StoreView
from optiscope.stats import (
    best_setting,
    bootstrap_ci,
    performance_profile,
    runtime_ecdf,
    sensitivity,
    spearman,
    summarize,
)
from optiscope.store import RunStore

__all__ = ["EXTRA_SECTIONS", "Section", "SectionFn", "build_report", "esc", "fmt", "metric_goal"]


@dataclass
class Section:
    title: str
    anchor: str
    html: str


SectionFn = Callable[[StoreView], Section | None]


def esc(x: object) -> str:
    return html.escape(str(x))


def fmt(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "–" if x is None or np.isnan(x) else ("+inf" if x > 0 else "-inf")
    return f"{x:.4g}"


def figure(svg: str, caption: str = "") -> str:
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure class='plot'>{svg}{cap}</figure>"


def note(text: str) -> str:
    return f"<p class='note'>{esc(text)}</p>"


def _guard(title: str, fn: Callable[[], str]) -> str:
    """Run one sub-section; a failure is shown in the report instead of losing the report."""
    try:
        return fn()
    except Exception as exc:  # the report must always be written
        tb = traceback.format_exc(limit=3)
        return (f"<p class='bad'>{esc(title)} could not be computed: {esc(type(exc).__name__)}: "
                f"{esc(exc)}</p><details><summary>traceback</summary><pre>{esc(tb)}</pre></details>")


# -- setup and status ----------------------------------------------------------------------
def setup_section(view: StoreView) -> Section:
    rows = []
    for c in view.cells:
        seeds = _ranges(c.seeds)
        rows.append(
            f"<tr><td>{esc(c.task_key)}</td><td>{esc(c.label)}</td><td>{esc(c.optimizer)}</td>"
            f"<td><code>{esc(json.dumps(c.hyperparameters))}</code></td><td class=num>{len(c.seeds)}</td>"
            f"<td>{esc(seeds)}</td><td class=num>{c.steps}</td><td>{esc(c.mode)}</td>"
            f"<td class=num>{c.grad_evals}</td><td class=num>{c.wall_time_s:.1f}</td></tr>"
        )
    versions = view.store.fetch("SELECT DISTINCT versions, device FROM runs")
    vers = []
    for v, d in zip(versions["versions"], versions["device"], strict=True):
        try:
            parts = ", ".join(f"{k} {val}" for k, val in json.loads(str(v)).items())
        except (TypeError, ValueError):
            parts = str(v)
        vers.append(f"<li>{esc(parts)} on <code>{esc(d or 'n/a')}</code></li>")
    config = view.store.config_text()
    body = (
        "<table><tr><th>task</th><th>cell</th><th>optimizer</th><th>hyperparameters</th>"
        "<th>seeds</th><th>seed ids</th><th>steps</th><th>mode</th><th>grad evals</th>"
        "<th>wall s</th></tr>" + "".join(rows) + "</table>"
        + f"<p>Software and hardware:</p><ul>{''.join(vers)}</ul>"
        + (f"<details><summary>experiment file</summary><pre>{esc(config)}</pre></details>" if config else "")
    )
    return Section("Setup", "setup", body)


def _ranges(seeds: list[int]) -> str:
    s = sorted(seeds)
    if s and s == list(range(s[0], s[-1] + 1)) and len(s) > 2:
        return f"{s[0]}–{s[-1]}"
    return ", ".join(map(str, s))


def status_section(view: StoreView) -> Section:
    from optiscope.stats import success_rate

    rows = []
    for c in view.cells:
        cls = " class='bad'" if c.n_diverged or c.n_failed else ""
        steps = sorted(d for d in c.diverged_step if d is not None)
        rate = success_rate(c.n_ok, len(c.status))
        rows.append(
            f"<tr{cls}><td>{esc(c.task_key)}</td><td>{esc(c.label)}</td><td class=num>{c.n_ok}</td>"
            f"<td class=num>{c.n_diverged}</td><td class=num>{c.n_failed}</td>"
            f"<td class=num>{rate.estimate:.2f} [{rate.low:.2f}, {rate.high:.2f}]</td>"
            f"<td>{esc(', '.join(map(str, steps)) or '')}</td>"
            f"<td>{esc((c.error or '').splitlines()[0] if c.error else '')}</td></tr>"
        )
    body = (
        "<p>Every seed is counted. A diverged member (non-finite loss) is frozen at the step "
        "shown; rank tests count it as the worst outcome and runtimes as never reaching a target. "
        "Success rates carry 95% Wilson intervals.</p>"
        "<table><tr><th>task</th><th>cell</th><th>ok</th><th>diverged</th><th>failed</th>"
        "<th>success rate [95% CI]</th><th>divergence steps</th><th>error</th></tr>"
        + "".join(rows) + "</table>"
    )
    return Section("Success and divergence", "status", body)


# -- per task ------------------------------------------------------------------------------
def summary_table(view: StoreView, task_key: str, names: list[str]) -> str:
    cells = view.cells_of(task_key)
    rows = []
    for name in names:
        goal = metric_goal(cells[0].task, name)
        for c in cells:
            s = summarize(view.final_values(c, name))
            ci = s.median_ci
            rows.append(
                f"<tr><td>{esc(name)} ({goal})</td><td>{esc(c.label)}</td>"
                f"<td class=num>{s.n_finite} / {s.n}</td>"
                f"<td class=num>{fmt(s.median)}</td><td class=num>[{fmt(ci.low)}, {fmt(ci.high)}]</td>"
                f"<td class=num>{fmt(s.mean)} ± {fmt(s.std)}</td>"
                f"<td class=num>[{fmt(s.q25)}, {fmt(s.q75)}]</td>"
                f"<td class=num>{s.success.estimate:.2f} [{s.success.low:.2f}, {s.success.high:.2f}]</td>"
                f"<td class=note>{esc(s.note)}</td></tr>"
            )
    return (
        "<table><tr><th>metric (goal)</th><th>cell</th><th>finished seeds</th><th>median</th>"
        "<th>95% CI (BCa)</th><th>mean ± sd</th><th>IQR</th><th>success [Wilson 95%]</th>"
        "<th>note</th></tr>" + "".join(rows) + "</table>"
    )


def distributions_html(view: StoreView, task_key: str, names: list[str]) -> str:
    cells = view.cells_of(task_key)
    figs = []
    for name in names:
        finals = [(c.label, view.final_values(c, name)) for c in cells]
        figs.append(figure(plots.distributions(name, finals)))
        figs.append(figure(plots.final_ecdf(name, finals, metric_goal(cells[0].task, name))))
    return "<div class='grid'>" + "".join(figs) + "</div>"


def significance_html(view: StoreView, task_key: str, metric: str) -> str:
    cmp = compare_task(view, task_key, metric)
    if len(cmp.table.labels) < 2:
        return note("One cell with outcomes: nothing to compare.")
    eff, padj = cmp.table.matrix()
    svg = plots.significance_matrix(metric, cmp.table.labels, eff, padj)
    rows = []
    for r in cmp.table.rows():
        rows.append(
            f"<tr><td>{esc(r['a'])}</td><td>{esc(r['b'])}</td><td class=num>{fmt(r['statistic'])}</td>"
            f"<td class=num>{fmt(r['pvalue'])}</td><td class=num><b>{fmt(r['pvalue_holm'])}</b></td>"
            f"<td class=num>{fmt(r['p_a_better'])}</td>"
            f"<td class=num>{fmt(r['a12'])} [{fmt(r['a12_low'])}, {fmt(r['a12_high'])}]</td>"
            f"<td class=num>{fmt(r['cohens_d'])} [{fmt(r['cohens_d_low'])}, {fmt(r['cohens_d_high'])}]</td>"
            f"<td class=num>{r['diverged_a']} / {r['diverged_b']}</td><td class=note>{esc(r['note'])}</td></tr>"
        )
    return (
        f"<p>Two-sided Mann-Whitney U per pair (H0: same distribution) on the final {esc(metric)} "
        f"({cmp.goal}imised); diverged seeds rank worst. Holm's correction across the "
        f"{len(rows)} comparisons shown. The colour is P(row better than column) (A12).</p>"
        + figure(svg)
        + "<table><tr><th>a</th><th>b</th><th>U</th><th>p</th><th>p (Holm)</th><th>P(a better)</th>"
        "<th>A12 [95% CI]</th><th>Cohen's d [95% CI]</th><th>diverged a / b</th><th>note</th></tr>"
        + "".join(rows) + "</table>"
    )


def curves_html(view: StoreView, task_key: str) -> str:
    cells = view.cells_of(task_key)
    figs = []
    stored = view.metric_names(task_key)
    for name in view.outcome_metrics(task_key) + (["batch_loss"] if "batch_loss" in stored else []):
        series = [(c.label, *view.curves(c, name)) for c in cells]
        figs.append(figure(plots.learning_curves(name, series, log_y=("loss" in name or "gap" in name))))
    return "<div class='grid'>" + "".join(figs) + "</div>"


def runtime_html(view: StoreView, task_key: str) -> str:
    metric = runtime_metric(view, task_key)
    cells = view.cells_of(task_key)
    if metric is None:
        return note("No metric to measure runtimes on.")
    goal = metric_goal(cells[0].task, metric)
    targets = task_targets(view, task_key, metric, goal)
    if targets.size == 0:
        return note(f"No finite {metric} values: no targets can be set.")
    figs = []
    for budget in ("grad_evals", "time_s"):
        try:
            rts = task_runtimes(view, task_key, metric, targets, budget)
        except Exception as exc:
            figs.append(note(f"{BUDGETS[budget]}: {exc}"))
            continue
        series = [(label, runtime_ecdf(r)) for label, r in rts.items() if r.size]
        figs.append(figure(plots.runtime_ecdfs(
            f"runtime to {len(targets)} {metric} targets: ECDF over seeds and targets",
            series, BUDGETS[budget])))
    return (
        f"<p>For each run, the first evaluation at which {esc(metric)} reaches each of "
        f"{len(targets)} targets from {fmt(targets[0])} to {fmt(targets[-1])} "
        f"({'COCO targets' if metric == 'f_gap' else 'spaced from the median start to the best value reached'}); "
        "a target never reached (or reached only after diverging) counts as infinite time. The "
        "curves are the fraction of (run, target) pairs solved within a budget, with 95% "
        "bootstrap bands over runs. Runtimes are resolved to evaluation steps.</p>"
        "<div class='grid'>" + "".join(figs) + "</div>"
    )


def held_out_metric(view: StoreView, task_key: str) -> str | None:
    names = view.outcome_metrics(task_key)
    head = view.headline_metric(task_key)
    if head and head.startswith(("test_", "val_")):
        return head
    return next((n for n in names if n.startswith(("test_", "val_"))), None)


def generalisation_html(view: StoreView, task_key: str) -> str:
    names = view.outcome_metrics(task_key)
    held = held_out_metric(view, task_key)
    # Convex tasks call their full-data training objective `loss`.
    train = "train_loss" if "train_loss" in names else "loss" if "loss" in names else None
    if train is None or held is None:
        return note("Not applicable: this task logs no training loss and held-out metric pair "
                    "(synthetic functions have no held-out data).")
    cells = view.cells_of(task_key)
    g_held = metric_goal(cells[0].task, held)
    xs = {c.label: view.outcomes(c, train, "min") for c in cells}
    ys = {c.label: view.outcomes(c, held, g_held) for c in cells}
    pooled = spearman(np.concatenate(list(xs.values())), np.concatenate(list(ys.values())))
    med_x = [np.median(v) for v in xs.values() if v.size]
    med_y = [np.median(v) for v in ys.values() if v.size]
    across = spearman(med_x, med_y)
    rows = [("all runs (pooled)", pooled), ("cells (medians)", across)]
    rows += [(f"within {label}", spearman(xs[label], ys[label])) for label in xs]
    table = "".join(
        f"<tr><td>{esc(k)}</td><td class=num>{r.n}</td><td class=num>{fmt(r.statistic)}</td>"
        f"<td class=num>[{fmt(r.interval.low)}, {fmt(r.interval.high)}]</td>"
        f"<td class=num>{fmt(r.pvalue)}</td><td class=note>{esc(r.note or r.interval.note)}</td></tr>"
        for k, r in rows
    )
    svg = plots.correlation_scatter(
        f"final {train} vs {held}: Spearman rho = {fmt(pooled.statistic)} "
        f"[{fmt(pooled.interval.low)}, {fmt(pooled.interval.high)}]",
        [(c.label, view.final_values(c, train), view.final_values(c, held)) for c in cells],
        f"final {train}", f"final {held}",
    )
    return (
        f"<p>Does a lower training loss mean a better {esc(held)}? Spearman's rho with 95% BCa "
        "bootstrap intervals; diverged runs enter the ranks as the worst outcome of both.</p>"
        + figure(svg)
        + "<table><tr><th>across</th><th>n</th><th>rho</th><th>95% CI</th><th>p</th><th>note</th></tr>"
        + table + "</table>"
    )


def tuning_html(view: StoreView, task_key: str) -> str:
    cells = view.cells_of(task_key)
    metric = view.headline_metric(task_key)
    if metric is None:
        return note("No outcome metric.")
    goal = metric_goal(cells[0].task, metric)
    by_opt: dict[str, list[CellRuns]] = {}
    for c in cells:
        by_opt.setdefault(c.optimizer, []).append(c)
    tuned = {o: cs for o, cs in by_opt.items() if len(cs) > 1}
    if not tuned:
        return note("Every optimizer ran one setting on this task: nothing was tuned.")
    val = "val_" + metric.removeprefix("test_")
    has_val = val in view.outcome_metrics(task_key)
    rows, sens = [], []
    for opt, cs in tuned.items():
        n = min(len(c.seeds) for c in cs)
        if has_val:
            sel = {c.label: view.outcomes(c, val, metric_goal(c.task, val)) for c in cs}
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
        ci = bootstrap_ci(rep[best], "median")
        r = rep[best]
        rows.append(
            f"<tr><td>{esc(opt)}</td><td class=num>{len(cs)}</td><td>{esc(best)}</td><td>{esc(basis)}</td>"
            f"<td class=num>{fmt(ci.estimate)} [{fmt(ci.low)}, {fmt(ci.high)}]</td>"
            f"<td class=num>{int(np.isfinite(r).sum())} / {r.size}</td><td class=note>{esc(ci.note)}</td></tr>"
        )
        lrs = [c for c in cs if isinstance(c.hyperparameters.get("lr"), int | float)]
        groups: dict[str, list[CellRuns]] = {}
        for c in lrs:
            rest = {k: v for k, v in c.hyperparameters.items() if k != "lr"}
            groups.setdefault(json.dumps(rest, sort_keys=True), []).append(c)
        for rest, gc in groups.items():
            if len({c.hyperparameters["lr"] for c in gc}) > 1:
                curve = sensitivity([float(c.hyperparameters["lr"]) for c in gc],
                                    [view.final_values(c, metric) for c in gc])
                extra = "" if rest == "{}" else " " + rest
                sens.append((f"{opt}{extra}", curve))
    body = (
        f"<p>Each optimizer at its best setting on this task, chosen by the {esc(metric)} "
        "median on selection data, and the distribution at that setting on reporting data "
        "(median with 95% BCa CI).</p><table><tr><th>optimizer</th><th>settings</th><th>best</th>"
        "<th>selected on</th><th>median at best [95% CI]</th><th>finished seeds</th><th>note</th></tr>"
        + "".join(rows) + "</table>"
    )
    if sens:
        body += figure(plots.sensitivity_curves(
            f"sensitivity: final {metric} vs learning rate (median, IQR)", sens, "lr", f"final {metric}"))
    return body


def trajectories_html(view: StoreView, task_key: str, n_seeds: int = 4) -> str:
    from optiscope.report import trajectories as tr

    cells = view.cells_of(task_key)
    if not cells or not tr.is_2d_synthetic(cells[0]):
        return ""
    figs = []
    for c in cells:
        if c.n_failed == len(c.status):
            figs.append(note(f"{c.label}: the cell failed; no trajectory."))
            continue
        if c.steps > tr.MAX_STEPS:
            figs.append(note(f"{c.label}: {c.steps} steps is more than the report re-runs."))
            continue
        t = tr.rerun(c, view.store, n_seeds)
        grid, mins = tr.contour_grid(c.task, c.task_settings, t.z)
        check = ("no stored parameters to check against" if t.max_abs_diff_to_stored is None
                 else f"re-run vs stored final iterate: max |diff| = {t.max_abs_diff_to_stored:.2g}")
        figs.append(figure(plots.contour_trajectories(c.label, grid, t.z, t.seeds, mins), esc(check)))
    return (
        "<p>Iterates of the first seeds of each cell, re-run from the stored configuration and "
        "drawn in each instance's own coordinates z = R (x - shift), where every seed sees the "
        "same function (o: start, x: end, star: minimiser).</p>"
        "<div class='grid'>" + "".join(figs) + "</div>"
    )


def basins_html(view: StoreView, task_key: str) -> str:
    """Where terminal iterates ended: counts per listed minimiser (the stationary distribution)."""
    cells = view.cells_of(task_key)
    if "basin" not in view.metric_names(task_key):
        return ""
    finals = {c.label: view.final_values(c, "basin") for c in cells}
    ids = sorted({int(v) for f in finals.values() for v in f[np.isfinite(f)]})
    if len(ids) < 2:
        return ""
    head = "".join(f"<th>basin {i}</th>" for i in ids)
    rows = "".join(
        f"<tr><td>{esc(k)}</td>" + "".join(f"<td class=num>{int((f == i).sum())}</td>" for i in ids)
        + f"<td class=num>{int((~np.isfinite(f)).sum())}</td></tr>"
        for k, f in finals.items()
    )
    counts = np.array([[int((f == i).sum()) for i in ids] for f in finals.values()])
    counts = counts[counts.sum(axis=1) > 0]
    test = ""
    if counts.shape[0] > 1:
        from scipy import stats

        r = stats.chi2_contingency(counts)
        small = (r.expected_freq < 5).any()
        test = note(
            f"Chi-square test of homogeneity (H0: every cell ends in the basins with the same "
            f"probabilities; scipy.stats.chi2_contingency): chi2 = {r.statistic:.3g}, "
            f"dof = {r.dof}, p = {r.pvalue:.3g}"
            + (" (some expected counts are below 5: the p-value is approximate)" if small else "")
        )
    return ("<h3>Terminal basins</h3><p>The stationary distribution read by binning each seed's "
            "final iterate into the nearest listed minimiser (Inan, Liu & Shehu 2024).</p>"
            "<table><tr><th>cell</th>" + head + "<th>not finished</th></tr>" + rows + "</table>" + test)


def task_section(view: StoreView, k: int, task_key: str) -> Section:
    names = view.outcome_metrics(task_key)
    head = view.headline_metric(task_key)
    parts = [
        "<h3>Final metrics over seeds</h3>"
        + _guard("summary", lambda: summary_table(view, task_key, names)),
        "<h3>Distributions over seeds</h3>" + _guard("distributions", lambda: distributions_html(view, task_key, names)),
    ]
    if head:
        parts.append(f"<h3>Significance: final {esc(head)}</h3>"
                     + _guard("significance", lambda: significance_html(view, task_key, head)))
    parts.append("<h3>Learning curves</h3>" + _guard("learning curves", lambda: curves_html(view, task_key)))
    parts.append("<h3>Runtime to target</h3>" + _guard("runtime", lambda: runtime_html(view, task_key)))
    parts.append("<h3>Optimisation versus generalisation</h3>"
                 + _guard("generalisation", lambda: generalisation_html(view, task_key)))
    parts.append("<h3>Tuning</h3>" + _guard("tuning", lambda: tuning_html(view, task_key)))
    traj = _guard("trajectories", lambda: trajectories_html(view, task_key))
    if traj:
        parts.append("<h3>Trajectories on the contours</h3>" + traj)
    parts.append(_guard("basins", lambda: basins_html(view, task_key)))
    return Section(f"Task: {task_key}", f"task-{k}", "".join(parts))


def task_sections(view: StoreView) -> list[Section]:
    return [task_section(view, k, t) for k, t in enumerate(view.tasks())]


def profile_section(view: StoreView) -> Section:
    def body() -> str:
        inp = profile_times(view)
        if not inp.targets:
            return note("No task has a finite target: no profile.")
        prof = performance_profile(inp.times, inp.solvers, inp.problems)
        order = np.argsort(-prof.scores, kind="stable")
        rows = "".join(
            f"<tr><td>{esc(prof.solvers[i])}</td><td class=num>{prof.scores[i]:.3f}</td>"
            f"<td class=num>{int(np.isfinite(prof.ratios[i]).sum())} / {len(prof.problems)}</td>"
            f"<td class=num>{int((prof.ratios[i] == 1).sum())}</td></tr>"
            for i in order
        )
        targets = "".join(
            f"<li>{esc(t)}: {esc(inp.metric[t])} ≤ {fmt(v)}</li>" if metric_goal(
                view.cells_of(t)[0].task, inp.metric[t]) == "min"
            else f"<li>{esc(t)}: {esc(inp.metric[t])} ≥ {fmt(v)}</li>"
            for t, v in inp.targets.items()
        )
        return (
            "<p>Per task, the target is what the best cell reaches with half its seeds; a cell's "
            "time is the median over its seeds of the gradient evaluations to reach it (never: "
            "infinite). rho(tau) is the fraction of tasks a cell solves within tau times the "
            "fastest; the score is the integral of rho from 1 to 4 divided by 3 (AlgoPerf). A "
            f"cell not run on a task counts as not reaching it.</p><ul>{targets}</ul>"
            + figure(plots.performance_profile(prof))
            + "<table><tr><th>cell</th><th>score</th><th>tasks solved</th><th>fastest on</th></tr>"
            + rows + "</table>"
        )

    return Section("Performance profile", "profile", _guard("performance profile", body))


#: Extra sections other modules contribute (statistics, probes). Each is called with the view.
EXTRA_SECTIONS: list[SectionFn] = []


def build_report(store: RunStore, out: str | Path, title: str | None = None) -> Path:
    """Write the HTML report for `store` to `out` and return its path."""
    view = StoreView.load(store)
    sections: list[Section] = []
    if view.cells:
        sections.append(setup_section(view))
        sections.extend(task_sections(view))
        sections.append(profile_section(view))
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
        title=esc(title or (view.cells and _experiment_name(store)) or store.root.name),
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
