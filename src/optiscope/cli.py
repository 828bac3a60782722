"""The `optiscope` command line: run, report, list, query (and compare, probe).

Errors a user can fix are printed in one line without a traceback and exit with status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from optiscope.errors import OptiscopeError

app = typer.Typer(
    help="optiscope: train many seeds under many optimizers, store every run, compare "
    "distributions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


class _RichProgress:
    """Feeds the runner's progress callbacks into a rich progress bar with steps/s."""

    def __init__(self, progress: Progress):
        self.p = progress
        self.task_id: Any = None

    def start(self, total_steps: int) -> None:
        self.task_id = self.p.add_task("training", total=max(total_steps, 1), rate="")

    def cell(self, cell: Any, index: int, n: int) -> None:
        name = f"{cell.task} · {cell.display_name}"
        name = name if len(name) <= 36 else name[:35] + "…"
        self.p.update(self.task_id, description=f"[{index + 1}/{n}] {name}")

    def advance(self, steps: int) -> None:
        self.p.advance(self.task_id, steps)
        speed = self.p.tasks[self.task_id].speed
        if speed:
            self.p.update(self.task_id, rate=f"{speed:,.1f} steps/s")


@app.command()
def run(
    experiment: Annotated[Path, typer.Argument(help="experiment TOML file")],
    store: Annotated[Path | None, typer.Option(help="store directory (default runs/<name>)")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N or auto (overrides the file)")] = None,
    report: Annotated[bool, typer.Option(help="write STORE/report.html when done")] = False,
) -> None:
    """Train every cell of EXPERIMENT not already in the store (a rerun resumes)."""
    from optiscope.config import load_config
    from optiscope.engine.runner import resolve_device, run_experiment
    from optiscope.store import RunStore

    try:
        cfg = load_config(experiment)
        root = store or Path("runs") / cfg.experiment.name
        run_store = RunStore.create(root)  # fails before training if it cannot be written
        dev = resolve_device(device or cfg.experiment.device)
        probe_factory = _probe_factory()
    except OptiscopeError as exc:
        fail(str(exc))
        return
    cells = cfg.cells()
    done = run_store.completed_cells() - run_store.failed_cells()
    console.print(
        f"[bold]{cfg.experiment.name}[/]: {len(cells)} cells × {len(cfg.experiment.seed_list())} seeds "
        f"on {dev}; {sum(c.cell_id in done for c in cells)} already in {root}"
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        try:
            summary = run_experiment(
                cfg, run_store, device=dev, progress=_RichProgress(bar),
                config_text=experiment.read_text(), probe_runner_factory=probe_factory,
            )
        except OptiscopeError as exc:
            fail(str(exc))
            return
    console.print(
        f"trained {len(summary.trained)} cells, skipped {len(summary.skipped)} already complete, "
        f"{len(summary.failed)} failed. Store: {root}"
    )
    for cid, msg in summary.failed.items():
        err_console.print(f"[red]cell {cid} failed:[/] {msg}")
    if report:
        _write_report(root, root / "report.html")
    if summary.failed:
        raise typer.Exit(1)


def _probe_factory():
    try:
        from optiscope.probes.schedule import probe_runner_from_config
    except ImportError:
        return None
    return probe_runner_from_config


def _write_report(store: Path, out: Path) -> None:
    from optiscope.report import build_report
    from optiscope.store import RunStore

    try:
        path = build_report(RunStore.open(store), out)
    except OptiscopeError as exc:
        fail(str(exc))
        return
    console.print(f"report written to [bold]{path}[/]")


@app.command()
def report(
    store: Annotated[Path, typer.Argument(help="store directory")],
    out: Annotated[Path | None, typer.Option(help="HTML file (default STORE/report.html)")] = None,
) -> None:
    """Write the HTML report of a store: one self-contained file."""
    _write_report(store, out or store / "report.html")


@app.command("list")
def list_(
    what: Annotated[str, typer.Argument(help="tasks or optimizers")],
) -> None:
    """List the tasks or optimizers available, with their settings and defaults."""
    if what == "tasks":
        _list_tasks()
    elif what == "optimizers":
        _list_optimizers()
    else:
        fail(f"cannot list '{what}': choose 'tasks' or 'optimizers'")


def _list_tasks() -> None:
    from optiscope.settings import defaults_of
    from optiscope.tasks import TASKS, make_task

    table = Table(title="tasks", show_lines=True)
    for col in ("name", "family", "settings (defaults)", "metrics", "params", "description"):
        table.add_column(col, overflow="fold")
    for name in sorted(TASKS, key=lambda n: (TASKS[n].family, n)):
        cls = TASKS[name]
        try:
            n_params = f"{make_task(name).num_params():,}"
        except Exception as exc:  # a task whose data is not present (say, needs data_root)
            n_params = f"({type(exc).__name__})"
        settings = ", ".join(f"{k}={v}" for k, v in defaults_of(cls.__init__).items())
        metrics = ", ".join(f"{m.name} ({m.goal})" for m in cls.metrics)
        table.add_row(name, cls.family, settings, metrics, n_params, cls.description)
    console.print(table)


def _list_optimizers() -> None:
    from optiscope.optim import OPTIMIZERS
    from optiscope.optim.registry import optimizer_info

    table = Table(title="optimizers (any torch.optim.Optimizer also runs as \"module:Class\")", show_lines=True)
    for col in ("name", "class", "norm", "hyperparameters (defaults)", "grad evals / step", "tested against"):
        table.add_column(col, overflow="fold")
    for name in sorted(OPTIMIZERS):
        info = optimizer_info(name)
        hp = ", ".join(f"{k}={v}" for k, v in info.hyperparameters.items())
        table.add_row(name, info.cls.__name__, info.norm, hp, str(info.grad_evals_per_step), info.reference)
    console.print(table)


@app.command()
def query(
    store: Annotated[Path, typer.Argument(help="store directory")],
    sql: Annotated[str, typer.Argument(help="SQL over the views `runs` and `metrics`")],
    output: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Run SQL against a store and print the result."""
    from optiscope.store import RunStore

    try:
        columns, rows = RunStore.open(store).query(sql)
    except OptiscopeError as exc:
        fail(str(exc))
        return
    if output == "csv":
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(columns)
        w.writerows(rows)
    elif output == "json":
        print(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=1))
    elif output == "table":
        table = Table(*columns)
        for r in rows:
            table.add_row(*("NULL" if v is None else str(v) for v in r))
        console.print(table)
    else:
        fail(f"--format must be table, csv or json, not '{output}'")


# -- compare (statistics of one task's cells; the report's comparison, in the terminal) ----------
@app.command()
def compare(
    store: Annotated[Path, typer.Argument(help="store directory")],
    task: Annotated[str, typer.Option(help="task as the report names it (e.g. rosenbrock, or quadratic(dim=2))")],
    metric: Annotated[str | None, typer.Option(help="final metric to compare (default: the task's headline)")] = None,
    test: Annotated[str, typer.Option(help="mannwhitney, ks, welch or permutation")] = "mannwhitney",
    csv: Annotated[Path | None, typer.Option(help="write the per-cell summaries here (and FILE.pairwise.csv)")] = None,
    parquet: Annotated[Path | None, typer.Option(help="write the summaries as Parquet (and FILE.pairwise.parquet)")] = None,
) -> None:
    """Compare every cell of TASK on a final metric: summaries, pairwise tests (Holm), effect sizes."""
    from optiscope.report.analysis import compare_task
    from optiscope.report.data import StoreView
    from optiscope.store import RunStore

    try:
        view = StoreView.load(RunStore.open(store))
        result = compare_task(view, task, metric, test)
        written = result.export(csv, parquet)
    except OptiscopeError as exc:
        fail(str(exc))
        return
    console.print(_compare_summary_table(result))
    console.print(_compare_pairwise_table(result))
    for path in written:
        console.print(f"wrote [bold]{path}[/]")


def _num(x: float) -> str:
    import math

    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    return f"{x:.4g}"


def _compare_summary_table(result: Any) -> Table:
    table = Table(title=f"{result.task_key}: final {result.metric} ({result.goal}imise)", show_lines=False)
    for col in ("cell", "finished", "median", "95% CI (BCa)", "mean ± sd", "IQR", "success [Wilson]", "note"):
        table.add_column(col, overflow="fold", justify="left" if col in ("cell", "note") else "right")
    for r in result.summary_rows():
        table.add_row(
            str(r["cell"]), f"{r['n_finite']}/{r['n']}", _num(r["median"]),
            f"[{_num(r['median_ci_low'])}, {_num(r['median_ci_high'])}]",
            f"{_num(r['mean'])} ± {_num(r['std'])}", f"[{_num(r['q25'])}, {_num(r['q75'])}]",
            f"{_num(r['success_rate'])} [{_num(r['success_low'])}, {_num(r['success_high'])}]",
            str(r["note"]),
        )
    return table


def _compare_pairwise_table(result: Any) -> Table:
    table = Table(
        title=f"pairwise {result.test} (two-sided), Holm across {len(result.table.results)} comparisons; "
        "diverged seeds rank worst",
    )
    for col in ("a", "b", "statistic", "p", "p (Holm)", "P(a better)", "A12 [95% CI]", "Cohen's d [95% CI]", "note"):
        table.add_column(col, overflow="fold", justify="left" if col in ("a", "b", "note") else "right")
    for r in result.pairwise_rows():
        star = "[bold green]" if r["pvalue_holm"] < 0.05 else ""
        table.add_row(
            str(r["a"]), str(r["b"]), _num(r["statistic"]), _num(r["pvalue"]),
            f"{star}{_num(r['pvalue_holm'])}", _num(r["p_a_better"]),
            f"{_num(r['a12'])} [{_num(r['a12_low'])}, {_num(r['a12_high'])}]",
            f"{_num(r['cohens_d'])} [{_num(r['cohens_d_low'])}, {_num(r['cohens_d_high'])}]",
            str(r["note"]),
        )
    return table


# -- probe (probes on saved final parameters, after training) ------------------------------------
@app.command()
def probe(
    store: Annotated[Path, typer.Argument(help="store directory")],
    cell: Annotated[list[str] | None, typer.Option(help="cell id or unique prefix (repeatable; default: every cell with saved parameters)")] = None,
    tier: Annotated[str, typer.Option(help="cheap, geometry or full")] = "geometry",
    probes: Annotated[str | None, typer.Option(help="comma-separated probe groups (overrides --tier)")] = None,
    samples: Annotated[int, typer.Option(help="Hutchinson probes for trace and R_med")] = 8,
    top_k: Annotated[int, typer.Option(help="how many top Hessian eigenvalues")] = 1,
    write: Annotated[bool, typer.Option(help="also store the values as metrics at each cell's last step")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto")] = "cpu",
) -> None:
    """Compute probes on the saved final parameters of a store's cells (safetensors; no pickle)."""
    from optiscope.engine.runner import resolve_device
    from optiscope.probes.posthoc import probe_cell, resolve_cells, write_probe_metrics
    from optiscope.probes.schedule import parse_probe_config
    from optiscope.store import RunStore

    try:
        raw: dict[str, Any] = {"tier": tier, "samples": samples, "top_k": top_k}
        if probes:
            raw["probes"] = [p.strip() for p in probes.split(",") if p.strip()]
        config = parse_probe_config(raw)
        run_store = RunStore.open(store)
        dev = resolve_device(device)
        cell_ids = resolve_cells(run_store, cell)
        if not cell_ids:
            fail(f"no cell in {store} has saved parameters (run with save_params = true)")
            return
        for cid in cell_ids:
            result = probe_cell(run_store, cid, config, device=dev)
            console.print(_probe_table(result))
            if write:
                n = write_probe_metrics(run_store, result)
                console.print(f"wrote {n} metric rows for cell {cid} at step {result.step}")
    except OptiscopeError as exc:
        fail(str(exc))
        return


def _probe_num(x: float) -> str:
    import math

    return "–" if math.isnan(x) else ("+inf" if x == math.inf else "-inf" if x == -math.inf else f"{x:.4g}")


def _probe_table(result: Any) -> Table:
    import numpy as np

    ok = sum(s == "ok" for s in result.status)
    table = Table(title=f"{result.task} · {result.label} ({result.cell_id}, step {result.step}, {ok}/{len(result.status)} ok)")
    width = max((len(n) for n in result.values), default=5)
    table.add_column("probe", no_wrap=True, min_width=width)
    for col in ("median", "IQR", "min", "max"):
        table.add_column(col, justify="right", overflow="fold")
    for name, values in result.values.items():
        v = values[np.isfinite(values)]
        if v.size:
            q1, med, q3 = np.percentile(v, [25, 50, 75])
            table.add_row(name, _probe_num(float(med)), f"[{_probe_num(float(q1))}, {_probe_num(float(q3))}]", _probe_num(float(v.min())), _probe_num(float(v.max())))
        else:
            table.add_row(name, "–", "–", "–", "–")
    return table


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
